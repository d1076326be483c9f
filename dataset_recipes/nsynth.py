"""NSynth (music note analysis: pitch, velocity, instrument family, sonic qualities).

Layout (magenta.tensorflow.org/datasets/nsynth), after extracting
``nsynth-{train,valid,test}.jsonwav.tar.gz``::

    nsynth-<split>/examples.json        {note_str: {note, note_str, pitch, velocity, ...}}
    nsynth-<split>/audio/<note_str>.wav (4 s, 16 kHz)

One entry: ``"bass_synthetic_033-022-050": {"note": 201034, "pitch": 22, "velocity": 50,
"instrument_family_str": "bass", "qualities_str": ["dark"], ...}``

Target, in the order Qwen-Audio's note-analysis scorer parses::

    <|pitch|><|midi_pitch_N|><|velocity|><|midi_velocity_N|><|instrument|>FAMILY<|sonic|>q1, q2

``FAMILY`` is ``instrument_family_str`` verbatim (``synth_lead`` keeps its underscore, like
the quality names of the released vocabulary), the qualities are ``qualities_str`` in the
official order.  A note with no quality (about a third of NSynth) gets ``<|sonic|>none``:
the field stays present so every target has the same five fields, and ``none`` is not a
quality name, so it cannot be mistaken for one (documented choice).

``examples.json`` is read in one pass (:func:`~dataset_recipes.jsonfiles.json_members`),
each entry with the line it starts on, so the 289,205 entries of nsynth-train parse in
seconds (a usable entry read by orjson, any other by json, whose reading decides).
A note listed twice is kept once; the second is a duplicate-key reject naming
its line.  The file is UTF-8 (JSON); an entry holding bytes that are not is a reject
quoting them, the others are read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import soundfile as sf

from dataset_recipes.common import Folder, Rejects, file_names, find_root, rel, source_key
from dataset_recipes.jsonfiles import json_members, read_json_text, undecodable
from dataset_recipes.samples.synth import note
from pipeline.download import Downloads, Remote
from pipeline.errors import InputError
from pipeline.recipe import CorpusInfo, Recipe
from pipeline.record import Label, Record, Reject

SPLITS = {"nsynth-train": "train", "nsynth-valid": "valid", "nsynth-test": "test"}
FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed",
            "string", "synth_lead", "vocal")
QUALITIES = ("bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic",
             "nonlinear_env", "percussive", "reverb", "tempo-synced")
NO_QUALITY = "none"
URL = "http://download.magenta.tensorflow.org/datasets/nsynth/{split}.jsonwav.tar.gz"
ARCHIVES = tuple(URL.format(split=s) for s in SPLITS)
#: md5 of each archive at exactly these URLs, as listed (and verified on download) by the HEAR
#: benchmark's preprocessing (hearbenchmark/hear-preprocess, hearpreprocess/nsynth_pitch.py,
#: generic_task_config["download_urls"]).  Magenta does not publish them next to the
#: archives, and no size is given there.
MD5 = {
    "nsynth-train": "fde6665a93865503ba598b9fac388660",
    "nsynth-valid": "87e94a00a19b6dbc99cf6d4c0c0cae87",
    "nsynth-test": "5e6f8719bf7e16ad0a00d518b78af77d",
}
DOWNLOADS = Downloads(per_split={s: (Remote(URL.format(split=s), md5=MD5[s]),) for s in SPLITS})

INFO = CorpusInfo(
    name="nsynth",
    title="NSynth",
    homepage="https://magenta.tensorflow.org/datasets/nsynth",
    licence="CC BY 4.0",
    citation="""@inproceedings{engel2017neural,
  title={Neural Audio Synthesis of Musical Notes with WaveNet Autoencoders},
  author={Engel, Jesse and Resnick, Cinjon and Roberts, Adam and Dieleman, Sander and
  Norouzi, Mohammad and Eck, Douglas and Simonyan, Karen},
  booktitle={ICML}, pages={1068--1077}, year={2017}}""",
    tasks=("mna",),
    splits=SPLITS,
    layout="  nsynth-{train,valid,test}/examples.json and nsynth-<split>/audio/<note_str>.wav",
    download_hint="make download, or fetch " + ", ".join(ARCHIVES)
    + " into RAW and extract them there (tar xzf nsynth-valid.jsonwav.tar.gz)",
    notes="Target: <|pitch|><|midi_pitch_N|><|velocity|><|midi_velocity_N|><|instrument|>"
    "FAMILY<|sonic|>q1, q2 with instrument_family_str and qualities_str verbatim; a note "
    "with no quality gets '<|sonic|>none' (documented choice).",
)
_FIELDS = ("note_str", "pitch", "velocity", "instrument_family_str", "qualities_str")
_QUALITY_SET = frozenset(QUALITIES)


def _is_root(path: Path) -> bool:
    return any((path / s / "examples.json").is_file() for s in SPLITS)


def locate(raw: Path) -> Path:
    """The folder holding ``nsynth-<split>/``; also accepts one ``nsynth-<split>`` folder."""
    raw = Path(raw)
    if raw.name in SPLITS and (raw / "examples.json").is_file():
        return raw.parent
    return find_root(raw, INFO, _is_root, ("nsynth",))


def _midi(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 127:
        raise ValueError(f"{name} {value!r} is not a MIDI value 0-127")


def target(entry: dict[str, Any]) -> str:
    """The note-analysis target of one ``examples.json`` entry; ``ValueError`` says what is
    wrong with an entry that cannot make one."""
    try:
        pitch, velocity = entry["pitch"], entry["velocity"]
        family, qualities = entry["instrument_family_str"], entry["qualities_str"]
        entry["note_str"]
    except KeyError:
        raise ValueError(f"missing field(s) {[f for f in _FIELDS if f not in entry]}") from None
    if pitch.__class__ is not int or not 0 <= pitch <= 127:  # (else the general check)
        _midi("pitch", pitch)
    if velocity.__class__ is not int or not 0 <= velocity <= 127:
        _midi("velocity", velocity)
    if family not in FAMILIES:
        raise ValueError(f"unknown instrument family {family!r}; known: {', '.join(FAMILIES)}")
    try:
        known = isinstance(qualities, list) and _QUALITY_SET.issuperset(qualities)
    except TypeError:  # an unhashable element (a JSON list or object) is no quality name
        known = False
    if not known:
        raise ValueError(f"unknown sonic quality in {qualities!r}; known: {', '.join(QUALITIES)}")
    sonic = ", ".join(qualities) if qualities else NO_QUALITY
    return (f"<|pitch|><|midi_pitch_{pitch}|><|velocity|><|midi_velocity_{velocity}|>"
            f"<|instrument|>{family}<|sonic|>{sonic}")


def _check(key: str, entry: Any, text: str | None) -> str:
    """The note-analysis target of an entry (``text``: its JSON text when the file holds
    undecodable bytes); ``ValueError`` says why there is none."""
    bad = undecodable(text) if text else None
    if bad:
        raise ValueError(bad)
    if not isinstance(entry, dict):
        raise ValueError("entry is not a JSON object")
    if not key:
        raise ValueError("the entry's key is empty: it names no audio file")
    if entry.get("note_str", key) != key:
        raise ValueError(f"note_str {entry['note_str']!r} differs from its key")
    return target(entry)


def _parse_split(root: Path, split: str) -> Iterator[Record | Reject]:
    path = root / split / "examples.json"
    src, audio_dir = rel(path, root), root / split / "audio"
    text, dirty = read_json_text(path)
    if text.lstrip()[:1] not in ("{", ""):
        raise InputError(f"{path}: expected a JSON object keyed by note_str; is this NSynth's "
                         "examples.json?")
    # Nothing is yielded before the whole file has parsed (a syntax error anywhere rejects
    # the split), so each entry is checked as it is parsed and only its labels (or why it
    # has none) are kept: the entries' dicts, most of the memory, are dropped at once.
    # One labels tuple per distinct target (labels are frozen): notes of one instrument
    # family, pitch, velocity and qualities share it, which saves making and keeping one.
    labels: dict[str, tuple[Label]] = {}

    def shared_labels(target: str) -> tuple[Label]:
        shared = labels.get(target)
        if shared is None:
            shared = labels[target] = (Label("mna", target),)
        return shared

    def labels_of(key: str, entry: Any) -> tuple[Label] | None:
        """The shared labels of a usable entry as orjson read it, else ``None`` (json
        reads it again and _check says why: only what json reads alike is taken)."""
        try:
            return shared_labels(_check(key, entry, None))
        except ValueError:
            return None

    checked: list[tuple[int, str, tuple[Label] | str]] = []  # (line, key, labels or reason)
    add = checked.append
    try:
        for line, key, entry, start, end in json_members(text, quick=None if dirty else
                                                          labels_of):
            if entry.__class__ is tuple:  # (labels_of's: json's values never are tuples)
                add((line, key, entry))
                continue
            try:
                add((line, key, shared_labels(_check(key, entry,
                                                     text[start:end] if dirty else None))))
            except ValueError as err:
                add((line, key, str(err)))
    except json.JSONDecodeError as err:
        yield Reject(INFO.name, split, src, f"malformed JSON ({err.msg}, column {err.colno}); "
                     "no note of this split can be read: re-extract the archive", line=err.lineno)
        return
    del text
    audio, rejects, listed = file_names(audio_dir), Rejects(INFO.name, root), set()
    folder, recipe = Folder(audio_dir, root), INFO.name
    audio_path, source_path = folder.audio, folder.source
    for line, key, shared in checked:
        name = f"{key}.wav"
        listed.add(name)
        if shared.__class__ is str:  # (why the entry has no target)
            yield Reject(recipe, split, src, f"{key}: {shared}", line=line)
            continue
        if name not in audio:
            yield rejects.missing(split, audio_dir / name, path, line)
            continue
        yield Record(recipe, split, source_key(key), audio_path(name), source_path(name),
                     "unknown", shared, False, (), src, line)
    yield from rejects.unlisted(split, (audio_dir / n for n in sorted(audio) if
                                        n.endswith(".wav")), listed,
                                "audio file has no entry in examples.json")


def prepare(root: Path) -> Iterator[Record | Reject]:
    """Records of every ``nsynth-<split>`` folder present."""
    for split in SPLITS:
        if (root / split / "examples.json").is_file():
            yield from _parse_split(root, split)


# ------------------------------------------------------------------ sample corpus
_SAMPLE = {
    "nsynth-train": [("bass", "synthetic", 33, 22, 50, ["dark"]),
                     ("keyboard", "acoustic", 1, 60, 100, ["bright", "percussive"]),
                     ("brass", "acoustic", 4, 58, 127, []),
                     ("guitar", "electronic", 12, 64, 75, ["fast_decay"]),
                     ("reed", "acoustic", 7, 70, 25, ["reverb"]),
                     ("synth_lead", "synthetic", 3, 72, 100, ["bright", "distortion"])],
    "nsynth-valid": [("flute", "acoustic", 2, 76, 50, []),
                     ("organ", "electronic", 5, 48, 100, ["long_release"])],
    "nsynth-test": [("mallet", "acoustic", 9, 84, 75, ["percussive"]),
                    ("string", "acoustic", 11, 55, 127, [])],
}


def make_sample(target: Path) -> Path:
    """Write a small NSynth corpus whose notes sound at the stated pitch and velocity."""
    raw = Path(target)
    for split, notes in _SAMPLE.items():
        (raw / split / "audio").mkdir(parents=True, exist_ok=True)
        table = {}
        for i, (family, source, inst, pitch, velocity, qualities) in enumerate(notes):
            key = f"{family}_{source}_{inst:03d}-{pitch:03d}-{velocity:03d}"
            sf.write(raw / split / "audio" / f"{key}.wav", note(pitch, velocity, family),
                     16000, subtype="PCM_16")
            table[key] = {
                "note": 1000 + i, "note_str": key, "instrument": inst,
                "instrument_str": f"{family}_{source}_{inst:03d}", "pitch": pitch,
                "velocity": velocity, "sample_rate": 16000,
                "qualities": [int(q in qualities) for q in QUALITIES], "qualities_str": qualities,
                "instrument_family": FAMILIES.index(family), "instrument_family_str": family,
                "instrument_source": ("acoustic", "electronic", "synthetic").index(source),
                "instrument_source_str": source,
            }
        (raw / split / "examples.json").write_text(json.dumps(table, indent=4) + "\n")
    return raw


RECIPE = Recipe(info=INFO, locate=locate, prepare=prepare, make_sample=make_sample,
                download=DOWNLOADS)
