"""A user's own corpus, described by one manifest file (JSONL or CSV).

RAW is the manifest file itself, or its folder holding ``manifest.jsonl`` /
``manifest.csv`` (or exactly one ``*.jsonl`` / ``*.csv``).  One row per task entry:

=========== ========================================================================
field       meaning
=========== ========================================================================
audio       audio file, relative to the manifest's folder (or absolute); required
task        one of pipeline.tags.TASKS: asr srwt s2tt aac asc ser vsc mna aqa sec mc mgr
text        the target text (``label`` is accepted as another name for it); required
language    spoken language code (en zh de es ko fr ja it); required for asr, srwt and
            s2tt, ``unknown`` (no speech) by default
split       split name, ``train`` by default; role from the name (dev/val -> valid,
            test/eval -> test, else train)
question    the question of an ``aqa`` row
src_lang    ``s2tt`` source language (default: ``language``); tgt_lang: its target
key         sample key (default: the audio path without extension, made key-safe, and
            ``-`` plus a hash of the whole path, so ``a/b.wav`` and ``a_b.flac`` keep two
            keys; a given key that is not key-safe gets the same treatment)
=========== ========================================================================

Example ``manifest.jsonl`` lines::

    {"audio": "clips/a.wav", "task": "asr", "text": "hello world", "language": "en"}
    {"audio": "clips/a.wav", "task": "s2tt", "text": "hallo Welt", "language": "en",
     "tgt_lang": "de"}
    {"audio": "clips/b.wav", "task": "aqa", "question": "Is a dog barking?", "text": "yes",
     "split": "test"}

Rows naming the same audio in the same split become one sample with several task entries
(the audio is stored once).  Prompts are those of :data:`pipeline.tags.TASKS` (released
ones, or the documented choices for sec/mc/mgr).  Target style follows the prompt's ITN
tag: an ``asr`` text is put in the ``<|wo_itn|>`` spoken form
(:func:`pipeline.tags.spoken_form`: ``Hello, World!`` -> ``hello world``; lower case,
punctuation removed, apostrophes inside words and digits kept); an ``s2tt`` text
(``<|itn|>``) and every other text are kept as written.  An ``srwt`` text must already be
an SRWT target: the continuation of the prompt's ``<|0.00|>``, words (in the ASR style)
each followed by its end time token, e.g. ``hello<|0.48|>world<|0.95|>``.  An ``asr``
sample without an ``srwt`` row asks
the alignment stage for SRWT (``align=True``).  Every bad row is a reject naming the file
and line; a file without the required columns raises ``InputError`` naming it.  The file
is UTF-8: a line that is not is a reject quoting the bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from dataset_recipes.common import SAMPLES_DIR, FileIndex, RoleByName, path_key, source_key
from dataset_recipes.textfiles import csv_records, decoded_lines, text_lines
from pipeline import tags
from pipeline.errors import InputError
from pipeline.recipe import CorpusInfo, Recipe, not_found
from pipeline.record import Label, Record, Reject

NAMES = ("manifest.jsonl", "manifest.csv")
REQUIRED = ("audio", "task")
_ARGS = {"asr": ("lang",), "srwt": ("lang",), "s2tt": ("src_lang", "tgt_lang"),
         "aqa": ("question",)}

INFO = CorpusInfo(
    name="manifest",
    title="User manifest (JSONL or CSV)",
    homepage="https://github.com/QwenLM/Qwen-Audio",
    licence="that of the user's own audio and labels",
    citation="(cite the user's corpus)",
    tasks=tuple(tags.TASKS),
    splits=RoleByName(),
    layout="  manifest.jsonl or manifest.csv with fields audio, task, text (or label) and "
    "optional language, split, question, src_lang, tgt_lang, key; audio paths relative to it",
    download_hint="write a manifest for your own audio (see dataset_recipes/manifest.py) and "
    "pass the file or its folder as RAW",
    notes="Tasks and prompts as in pipeline.tags.TASKS. Rows on the same audio and split share "
    "one sample. asr samples without an srwt row are sent to the alignment stage. asr text "
    "(<|wo_itn|>) is put in spoken form (lower case, punctuation removed, apostrophes inside "
    "words and digits kept); other texts are kept as written.",
)


def locate(raw: Path) -> Path:
    """The manifest file: ``raw`` itself, or the one manifest inside the folder ``raw``."""
    raw = Path(raw)
    if raw.is_file() and raw.suffix in (".jsonl", ".csv"):
        return raw
    if raw.is_dir():
        for name in NAMES:
            if (raw / name).is_file():
                return raw / name
        found = sorted([*raw.glob("*.jsonl"), *raw.glob("*.csv")])
        if len(found) == 1:
            return found[0]
    raise not_found(INFO, raw, INFO.name)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """``(line, row)``, or ``(line, reason)`` for a malformed line."""
    if path.suffix == ".csv":
        records = csv_records(path)
        header = next((fields for _, fields, _ in records), [])
        missing = [c for c in REQUIRED if c not in header]
        if missing or not {"text", "label"} & set(header):
            raise InputError(f"{path}: missing column(s) {missing or ['text']}; found "
                             f"{header}. Columns: audio, task, text, ...")
        for n, fields, bad in records:
            if bad is not None:
                yield n, bad
            elif len(fields) != len(header):
                yield n, "malformed CSV row: wrong number of fields"
            else:
                yield n, {k: v for k, v in zip(header, fields, strict=True) if v != ""}
        return
    lines = text_lines(path)
    if lines is not None:  # the common case: all of the file is UTF-8
        loads = orjson.loads
        for n, line in lines:
            # _json_row's answer where orjson reads an object whose values are all
            # strings (joining them raises TypeError at any other value), without a call
            try:
                row = loads(line)
                strings = row.__class__ is dict and "".join(row.values()).__class__ is str
            except (orjson.JSONDecodeError, TypeError):
                strings = False
            if strings:
                yield n, row
            elif line.strip():
                yield n, _json_row(line)
        return
    for n, line, bad in decoded_lines(path):
        if bad is not None:
            yield n, bad
        elif line.strip():
            yield n, _json_row(line)


def _json_row(line: str) -> dict[str, Any] | str:
    """A JSON line's object, or why it has none, as :func:`json.loads` reads it.  orjson
    reads a line several times faster with the same values, except that it rejects some
    lines json reads (NaN, lone surrogate escapes, a BOM) and reads an integer beyond 64
    bits as a float: json reads those lines and any row with a value that is not a
    string (rare in a manifest), and words every error."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        row = None
    if row.__class__ is dict:
        for value in row.values():
            if value.__class__ is not str:
                row = None
                break
    if row is None:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            return f"malformed JSON line: {err.msg}"
    return row if row.__class__ is dict else "JSON line is not an object"


_SPEECH_TASKS = frozenset(("asr", "srwt", "s2tt"))
if any(list(names) != sorted(names) for names in _ARGS.values()):
    raise AssertionError("each task's argument names must be sorted, as Label.make's are")


#: A label's prompt arguments, and the label as ``(task, target, args)``: those of
#: :class:`Label`.
_Args = tuple[tuple[str, str], ...]
_LabelArgs = tuple[str, str, _Args]


def _label(row: dict[str, Any], lang: str, prompts: dict[tuple[str, _Args], _Args],
           langs: dict[str, _Args]) -> _LabelArgs | str:
    """The row's label as ``(task, target, args)``, or why it is unusable (checked as the
    build will check it).  ``lang``: the row's language (``unknown`` if none).
    ``prompts``: the (task, arguments) whose prompt was already built without error,
    each to one shared ``args`` tuple; ``langs``: each language seen to its ``lang``
    arguments (made once)."""
    get = row.get
    task = get("task", "")
    text = row["text"] if "text" in row else get("label", "")
    if task.__class__ is not str:
        task = str(task)
    if text.__class__ is not str:
        text = str(text)
    audio = get("audio", "")
    if not task.strip() or not text.strip() or not (
            audio if audio.__class__ is str else str(audio)).strip():
        missing = [c for c in REQUIRED if not str(row.get(c, "")).strip()]
        return f"missing field(s) {missing + ([] if text.strip() else ['text'])}"
    if task == "asr" or task == "srwt":  # (one arguments tuple per language)
        args: tuple[tuple[str, str], ...] = langs.get(lang) or langs.setdefault(
            lang, (("lang", lang),))
    elif task in _ARGS:
        values = {"lang": lang, "src_lang": str(get("src_lang") or lang),
                  "tgt_lang": str(get("tgt_lang", "")), "question": str(get("question", ""))}
        args = tuple((a, values[a]) for a in _ARGS[task])
    else:
        args = ()
    if lang == "unknown" and task in _SPEECH_TASKS:
        return f"task {task} needs the spoken 'language'"
    if task == "asr":  # the ASR prompt's <|wo_itn|> asks for spoken form (whitespace too)
        text = tags.spoken_form(text, lang)
        if not text:
            return "asr text has no words once punctuation is removed"
    else:
        text = " ".join(text.split())
    # tags.make_entry's checks: an empty target, tokens (none without '<' or the pad's
    # '['), then the prompt (the same for the same task and arguments)
    known = prompts.get((task, args))
    if known is None or "<" in text or "[" in text:
        try:
            tags.make_entry(task, text, **dict(args))
        except tags.TagError as err:
            return str(err)
        known = prompts.setdefault((task, args), args)
    if task == "srwt":
        try:
            tags.parse_srwt(text)
        except tags.TagError as err:
            return str(err)
    return task, text, known  # (args in Label.make's sorted order)


def prepare(root: Path) -> Iterator[Record | Reject]:
    """One record per (split, audio) of the manifest ``root``; bad rows are rejects."""
    base, name, files = str(root.parent), root.name, FileIndex()
    prompts: dict[tuple[str, _Args], _Args] = {}
    langs: dict[str, _Args] = {}
    #: (split, audio) -> (key, language, line, path, task, target, args, task, ...): each
    #: label as the arguments of Label, in one flat tuple of strings and shared argument
    #: tuples, which the garbage collector stops tracking at its first collection (every
    #: sample is held until the file has been read)
    samples: dict[tuple[str, str], tuple[Any, ...]] = {}
    normpath, sep, altsep = os.path.normpath, os.sep, os.altsep
    sep_dot, sep_sep = sep + ".", sep + sep
    prefix = base if not base or base.endswith(sep) else base + sep  # os.path.join's
    for line, row in _rows(root):
        if row.__class__ is str:  # (why the line has no row)
            yield Reject(INFO.name, "unknown", name, row, line=line)
            continue
        split, lang = row.get("split") or "train", row.get("language") or "unknown"
        if split.__class__ is not str:  # (str() of a str is itself, but a call)
            split = str(split)
        if lang.__class__ is not str:
            lang = str(lang)
        label = _label(row, lang, prompts, langs)
        if label.__class__ is str:  # (why the row has no label)
            yield Reject(INFO.name, split, name, label, line=line)
            continue
        audio = row["audio"]
        if audio.__class__ is not str:
            audio = str(audio)
        if (not audio or audio[0] == "." or audio[-1] == sep or sep_dot in audio
                or sep_sep in audio or altsep):  # else normpath would leave it as is
            audio = normpath(audio)
        at = (split, audio)
        sample = samples.get(at)
        if sample is None:
            path = audio if audio.startswith(sep) else prefix + audio  # os.path.join's
            if not files.exists(path):
                yield Reject(INFO.name, split, audio, f"listed in {name} line {line} but "
                             "the audio file is missing", line=line)
                continue
        given = row.get("key")
        if sample is None or given:  # (a given key is checked on every row)
            key = source_key(str(given)) if given else path_key(audio)
        if sample is None:
            samples[at] = (key, lang, line, path, *label)
        elif sample[1] != lang:
            yield Reject(INFO.name, split, name, f"language {lang!r} differs from "
                         f"{sample[1]!r} of an earlier row on {audio}", line=line)
        else:
            samples[at] = (*sample, *label)
    for (split, audio), sample in samples.items():
        if len(sample) == 7:  # one label (most samples): no slicing of the flat fields
            key, lang, line, path, task, target, args = sample
            yield Record(INFO.name, split, key, path, audio, lang,
                         (Label(task, target, args),), task == "asr", (), name, line)
            continue
        key, lang, line, path, *labels = sample
        tasks_of = labels[::3]
        yield Record(INFO.name, split, key, path, audio, lang, _labels(labels),
                     "asr" in tasks_of and "srwt" not in tasks_of, (), name, line)


def _labels(flat: list[Any]) -> tuple[Label, ...]:
    """The labels of a sample's flat ``task, target, args, task, ...`` fields."""
    return tuple(Label(*flat[i:i + 3]) for i in range(0, len(flat), 3))


def make_sample(target: Path) -> Path:
    """Write a sample manifest: real speech (ASR, S2TT) and a beep clip (AQA, AAC)."""
    import numpy as np
    import soundfile as sf

    root = Path(target)
    (root / "clips").mkdir(parents=True, exist_ok=True)
    sentences = json.loads((SAMPLES_DIR / "espeak" / "sentences.json").read_text())
    rows: list[dict[str, str]] = []
    for i, sid in enumerate(("espeak_00", "espeak_11", "espeak_17")):
        data, sr = sf.read(SAMPLES_DIR / "espeak" / f"{sid}.flac")
        sf.write(root / "clips" / f"{sid}.wav", data, sr, subtype="PCM_16")
        rows.append({"audio": f"clips/{sid}.wav", "task": "asr", "text": sentences[sid],
                     "language": "en", "split": "test" if i == 2 else "train"})
    rows.append({"audio": "clips/espeak_00.wav", "task": "s2tt", "language": "en",
                 "tgt_lang": "de", "text": "Der schnelle braune Fuchs springt über den faulen "
                 "Hund."})
    t = np.arange(3 * 16000) / 16000
    beeps = 0.4 * np.sin(2 * np.pi * 1000 * t) * (np.floor(t * 2) % 2 == 0)
    sf.write(root / "clips" / "three_beeps.wav", beeps.astype(np.float32), 16000,
             subtype="PCM_16")
    rows.append({"audio": "clips/three_beeps.wav", "task": "aqa", "text": "three",
                 "question": "How many beeps are there?"})
    rows.append({"audio": "clips/three_beeps.wav", "task": "aac",
                 "text": "A high pitched electronic tone beeps three times."})
    (root / "manifest.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return root


RECIPE = Recipe(info=INFO, locate=locate, prepare=prepare, make_sample=make_sample)
