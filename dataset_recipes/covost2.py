"""CoVoST 2 (speech-to-text translation) with ASR of the source speech from Common Voice v4.

Layout (github.com/facebookresearch/covost; the layout fairseq's CoVoST loader reads): the
Common Voice **v4** release (``cv-corpus-4``), one folder per language, with each pair's
CoVoST TSV (from ``covost_v2.<src>_<tgt>.tsv.tar.gz``) extracted into its source folder::

    <cv_root>/<src>/validated.tsv                  client_id, path, sentence, up_votes, ...
    <cv_root>/<src>/clips/common_voice_<src>_<n>.mp3
    <cv_root>/<src>/covost_v2.<src>_<tgt>.tsv      path, sentence, translation, split

One CoVoST row: ``common_voice_fr_17299384.mp3	Il y a ...	There is ...	train``

Each clip becomes one record with an ASR entry (the ``sentence`` of ``validated.tsv``) and
an S2TT entry per pair that lists it (the ``translation``).  Target style follows each
prompt's ITN tag, as the release does (``evaluate_st.py`` translates under ``<|itn|>``,
its ASR prompts use ``<|wo_itn|>``): the ASR target is the sentence in the ``<|wo_itn|>``
spoken form of :func:`pipeline.tags.spoken_form` (``The museum is closed today.`` ->
``the museum is closed today``; lower case, punctuation removed, inner apostrophes kept:
``aujourd'hui``; Chinese/Japanese without spaces); digits stay as written, since
spelling them out is lossy and Common Voice's sentence rules already ask for numbers in
words.  The S2TT target is the written form (``<|itn|>``): the translation verbatim,
whitespace collapsed.  Splits are CoVoST's ``train`` (including
``train_covost``), ``dev`` and ``test``.  Language codes map onto Qwen-Audio tokens (``zh-CN``
-> ``zh``); a pair whose source or target language has no token (ca, ru, cy, ...) is
rejected as a whole, naming the language and the number of rows skipped.  A CoVoST row
whose clip is not in ``validated.tsv`` is rejected (CoVoST 2 matches Common Voice v4 only).
``clips/`` also holds clips outside CoVoST by design, so unlisted clips are not rejects.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import starmap
from pathlib import Path
from typing import Any

from dataset_recipes.common import (
    SAMPLES_DIR,
    Folder,
    Rejects,
    file_names,
    find_root,
    rel,
    stem_key,
)
from dataset_recipes.textfiles import read_lines
from pipeline import tags
from pipeline.errors import InputError
from pipeline.recipe import CorpusInfo, Recipe
from pipeline.record import Label, Record, Reject

SPLITS = {"train": "train", "dev": "valid", "test": "test"}
_SPLIT_NAMES = {"train": "train", "train_covost": "train", "dev": "dev", "test": "test"}
#: Common Voice / CoVoST language code -> Qwen-Audio language token.
TOKENS = {"en": "en", "de": "de", "es": "es", "fr": "fr", "it": "it", "ja": "ja", "zh-CN": "zh"}
TSV_URL = "https://dl.fbaipublicfiles.com/covost/covost_v2.{src}_{tgt}.tsv.tar.gz"
_PAIR = re.compile(r"^covost_v2\.([A-Za-z-]+)_([A-Za-z-]+)\.tsv$")

INFO = CorpusInfo(
    name="covost2",
    title="CoVoST 2",
    homepage="https://github.com/facebookresearch/covost",
    licence="CoVoST 2 translations: CC0; Common Voice v4 audio and sentences: CC0",
    citation="""@inproceedings{wang2021covost,
  title={{CoVoST} 2 and Massively Multilingual Speech Translation},
  author={Wang, Changhan and Wu, Anne and Gu, Jiatao and Pino, Juan},
  booktitle={Interspeech}, pages={2247--2251}, year={2021}}""",
    tasks=("s2tt", "asr"),
    splits=SPLITS,
    layout="  <src>/validated.tsv, <src>/clips/*.mp3   (Common Voice v4, one folder per language)\n"
    "  <src>/covost_v2.<src>_<tgt>.tsv          (path, translation, split)",
    download_hint="Common Voice v4 sits behind an e-mail form: download the 'Common Voice "
    "Corpus 4' archive of each source language from https://commonvoice.mozilla.org/datasets "
    "and extract it so that RAW/<lang>/validated.tsv and RAW/<lang>/clips/ exist; then fetch "
    "each pair's TSV from " + TSV_URL.format(src="<src>", tgt="<tgt>")
    + " and extract it into RAW/<src>/",
    notes="ASR target (<|wo_itn|>): Common Voice's sentence lower-cased without punctuation "
    "(inner apostrophes and digits kept). S2TT target (<|itn|>): the CoVoST translation "
    "verbatim. Pairs whose languages have no Qwen-Audio token "
    "(anything but en, de, es, fr, it, ja, zh-CN) are rejected.",
)


#: A clip of the CoVoST pairs: ``(split, line, pair TSV (relative to the root), language
#: token, S2TT label, ...)``, each S2TT label as its ``(task, target, args)`` and the ASR
#: label made with the record: strings and tuples only, which the garbage collector stops
#: tracking (every clip is held until all pairs are read).
_Clip = tuple[Any, ...]


def _lang_dirs(root: Path) -> list[Path]:
    if (root / "validated.tsv").is_file():
        return [root]
    return sorted(p for p in root.iterdir() if (p / "validated.tsv").is_file())


def _is_root(path: Path) -> bool:
    return any(d.glob("covost_v2.*_*.tsv") for d in _lang_dirs(path))


def locate(raw: Path) -> Path:
    """The Common Voice folder holding ``<lang>/validated.tsv`` (or one language folder)."""
    return find_root(raw, INFO, _is_root, ("cv-corpus-4",))


def _tsv(path: Path, root: Path, required: tuple[str, ...]
         ) -> tuple[dict[str, int], Iterator[tuple[int, list[str]] | Reject]]:
    """The columns of a Common Voice style TSV (tab separated, quotes are plain text,
    UTF-8: a line that is not is a reject quoting the bytes, as sentences are targets)
    and its rows, ``(line, fields)`` or a reject; a column named twice means its last."""
    src = rel(path, root)
    lines = read_lines(path, src, INFO.name, "unknown")
    first = next(lines, None)
    header = first[1].split("\t") if isinstance(first, tuple) else []
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; found {header}. "
                         "Is this the official file, unmodified?")
    columns = {c: i for i, c in enumerate(header)}
    return columns, _rows(lines, src, len(header), [(c, columns[c]) for c in required])


def _rows(lines: Iterator[tuple[int, str] | Reject], src: str, width: int,
          required: list[tuple[str, int]]) -> Iterator[tuple[int, list[str]] | Reject]:
    # Each row checks three required fields by index, unrolled (a call per field would cost
    # more than the rest of the check); with fewer required, the first is checked again.
    indexes = [i for _, i in required]
    if not 1 <= len(indexes) <= 3:
        raise ValueError("one to three required columns")
    a, b, c = indexes + indexes[:1] * (3 - len(indexes))
    for item in lines:
        if isinstance(item, Reject):
            yield item
            continue
        n, line = item
        cols = line.split("\t")
        if len(cols) != width:
            yield Reject(INFO.name, "unknown", src,
                         f"malformed row: expected {width} tab-separated fields", line=n)
        elif cols[a].strip() and cols[b].strip() and cols[c].strip():
            yield n, cols
        else:
            empty = [c for c, i in required if not cols[i].strip()]
            yield Reject(INFO.name, "unknown", src, f"empty field(s) {empty}", line=n)


def asr_text(sentence: str, lang: str) -> str:
    """The ``<|wo_itn|>`` ASR target of a Common Voice sentence (see the module doc)."""
    return tags.spoken_form(sentence, lang)


def _pair(tsv: Path, root: Path, sentences: dict[str, str], clips: dict[str, _Clip]
          ) -> Iterator[Reject]:
    src, tgt = _PAIR.match(tsv.name).groups()  # type: ignore[union-attr]
    lacking = [lang for lang in (src, tgt) if lang not in TOKENS]
    if lacking or (src != tsv.parent.name and tsv.parent != root):
        with open(tsv, "rb") as f:
            rows = sum(1 for _ in f) - 1
        why = (f"language {', '.join(lacking)} has no Qwen-Audio token" if lacking else
               f"source language {src} does not match its folder {tsv.parent.name}")
        yield Reject(INFO.name, "unknown", rel(tsv, root), f"{why}; {rows} row(s) skipped "
                     f"(tokens exist for {', '.join(TOKENS)})")
        return
    columns, rows = _tsv(tsv, root, ("path", "translation", "split"))
    ipath, itrans, isplit = columns["path"], columns["translation"], columns["split"]
    lang = TOKENS[src]
    s2tt_args = (("src_lang", TOKENS[src]), ("tgt_lang", TOKENS[tgt]))  # Label.make's order
    src_rel, splits = rel(tsv, root), _SPLIT_NAMES
    for item in rows:
        if isinstance(item, Reject):
            yield item
            continue
        n, row = item
        split = splits.get(row[isplit].strip())
        name = row[ipath].strip()
        clip = clips.get(name)
        if split is None or name not in sentences or (clip is not None and clip[0] != split):
            if split is None:
                reason = (f"unknown split {row[isplit]!r}; expected one of "
                          f"{', '.join(_SPLIT_NAMES)}")
            elif name not in sentences:
                reason = f"{name} is not in validated.tsv (CoVoST 2 needs Common Voice v4)"
            else:
                reason = f"{name} is in split {split} here but {clip[0]} in another pair"  # type: ignore[index]
            yield Reject(INFO.name, split or "unknown", src_rel, reason, line=n)
            continue
        s2tt = ("s2tt", " ".join(row[itrans].split()), s2tt_args)
        clips[name] = (split, n, src_rel, lang, s2tt) if clip is None else (*clip, s2tt)


def _language(folder: Path, root: Path) -> Iterator[Record | Reject]:
    # validated.tsv's sentences as written: asr_text collapses their whitespace
    sentences: dict[str, str] = {}
    columns, rows = _tsv(folder / "validated.tsv", root, ("path", "sentence"))
    ipath, isentence = columns["path"], columns["sentence"]
    for item in rows:
        if isinstance(item, Reject):
            yield item
        else:
            path = item[1][ipath].strip()
            sentences[path if path.endswith(".mp3") else f"{path}.mp3"] = item[1][isentence]
    clips: dict[str, _Clip] = {}
    for tsv in sorted(folder.glob("covost_v2.*_*.tsv")):
        if _PAIR.match(tsv.name):
            yield from _pair(tsv, root, sentences, clips)
    audio, rejects = file_names(folder / "clips"), Rejects(INFO.name, root)
    mp3s, asr_args = Folder(folder / "clips", root), {}
    for name, (split, line, listing, lang, *s2tt) in clips.items():
        if name not in audio:
            yield rejects.missing(split, folder / "clips" / name, listing, line)
            continue
        args = asr_args.get(lang)
        if args is None:
            args = asr_args[lang] = (("lang", lang),)
        asr = Label("asr", asr_text(sentences[name], lang), args)
        labels = (asr, Label(*s2tt[0])) if len(s2tt) == 1 else (asr, *starmap(Label, s2tt))
        yield Record(INFO.name, split, stem_key(name), mp3s.audio(name),
                     mp3s.source(name), lang, labels, False, (), listing, line)


def prepare(root: Path) -> Iterator[Record | Reject]:
    """Records of every language folder that has CoVoST TSVs next to its ``validated.tsv``."""
    for folder in _lang_dirs(root):
        if any(folder.glob("covost_v2.*_*.tsv")):
            yield from _language(folder, root)


# ------------------------------------------------------------------ sample corpus
#: espeak sentence id -> (CoVoST split, German, Chinese) translations written for the sample.
_SAMPLE = {
    "espeak_00": ("train", "Der schnelle braune Fuchs springt über den faulen Hund.",
                  "敏捷的棕色狐狸跳过了懒狗。"),
    "espeak_04": ("train", "Wir treffen uns am Bahnhof, bevor der Zug in die Stadt fährt.",
                  "我们会在火车开往城市之前在车站见面。"),
    "espeak_05": ("train", "Mein Großvater pflanzte einen Apfelbaum hinter der alten Scheune.",
                  "我的祖父在旧谷仓后面种了一棵苹果树。"),
    "espeak_08": ("train", "Er öffnete den Brief vorsichtig und las ihn zweimal.",
                  "他小心地打开信，读了两遍。"),
    "espeak_12": ("dev", "Nach der Schule spielten Kinder im Park Fußball.",
                  "放学后孩子们在公园里踢足球。"),
    "espeak_15": ("test", "Das Museum wird im Winter wegen Reparaturen geschlossen sein.",
                  "博物馆冬季将因维修而关闭。"),
}


def make_sample(target: Path) -> Path:
    """Write a small Common Voice v4 + CoVoST 2 corpus (en->de, en->zh-CN): English
    sentences spoken by espeak-ng, encoded as mp3 like Common Voice clips, with their
    sentences and translations."""
    import json

    import soundfile as sf

    root = Path(target) / "cv-corpus-4" / "en"
    (root / "clips").mkdir(parents=True, exist_ok=True)
    sentences = json.loads((SAMPLES_DIR / "espeak" / "sentences.json").read_text())
    validated = ["client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent"]
    pairs: dict[str, list[str]] = {"de": [], "zh-CN": []}
    for i, (sid, (split, de, zh)) in enumerate(_SAMPLE.items()):
        name = f"common_voice_en_{9000 + i}.mp3"
        data, sr = sf.read(SAMPLES_DIR / "espeak" / f"{sid}.flac", dtype="float32")
        sf.write(root / "clips" / name, data, sr, format="MP3")
        validated.append(f"espeak{i:04d}\t{name}\t{sentences[sid]}\t2\t0\t\t\tus")
        for tgt, text in (("de", de), ("zh-CN", zh)):
            pairs[tgt].append(f"{name}\t{sentences[sid]}\t{text}\t{split}")
    (root / "validated.tsv").write_text("\n".join(validated) + "\n", encoding="utf-8")
    for tgt, rows in pairs.items():
        head = "path\tsentence\ttranslation\tsplit"
        (root / f"covost_v2.en_{tgt}.tsv").write_text("\n".join([head, *rows]) + "\n",
                                                       encoding="utf-8")
    return Path(target)


RECIPE = Recipe(info=INFO, locate=locate, prepare=prepare, make_sample=make_sample)
