"""Any corpus with a Lhotse recipe, read from its Lhotse manifests (registered as ``lhotse``).

Run the corpus's Lhotse recipe first (``lhotse prepare <corpus> <corpus_dir> <out_dir>``,
e.g. ``lhotse prepare librispeech LibriSpeech manifests``); RAW is that output folder::

    <prefix>_recordings_<part>.jsonl.gz     RecordingSet (one AudioSource of type "file")
    <prefix>_supervisions_<part>.jsonl.gz   SupervisionSet (text, language, optional
                                            word alignment ``alignment["word"]``)

One supervision line: ``{"id": "1272-128104-0000", "recording_id": "1272-128104-0000",
"start": 0.0, "duration": 5.855, "channel": 0, "text": "MISTER QUILTER ...",
"language": "English", "speaker": "1272"}``

Manifests are read as :func:`lhotse.load_manifest` reads them: as light tuples of the fields
of Lhotse's objects, without importing Lhotse (and torch, seconds), where every
line is in the plain form Lhotse writes (:mod:`dataset_recipes.lhotse_plain`), else with
:func:`lhotse.load_manifest` itself (a transform, a video source, an old alignment format,
a line that is not JSON...); both ways give the same records and rejects.

Each supervision gives one record with an ASR label (released ASR prompt, audio language
from ``language``: a code such as ``en`` or a name such as ``English``; a language without
a Qwen-Audio token is a reject naming it).  Target style: the prompt's ``<|wo_itn|>`` asks
for spoken form, so the text goes through :func:`pipeline.tags.spoken_form`
(``MISTER QUILTER.`` -> ``mister quilter``: lower case, punctuation removed, apostrophes
inside words and digits kept, no spaces in Chinese/Japanese); the SRWT words get the same
treatment (a word left empty is dropped).  When the supervision has word alignments, the
SRWT target is written from them here (pause symbols such as ``""``, ``<eps>``, ``sil``,
``<sil>`` are gaps, and gaps over 0.2 s become ``<|sil|>``) and the alignment stage is
skipped (``align=False``); otherwise ``align=True`` lets the alignment stage add SRWT when
it is enabled.

Audio: the record's audio is the recording's file, so only supervisions that cover their
whole recording (start 0, duration within 0.05 s of the recording's) are used.  A
supervision that is a segment of a longer recording is a reject saying how to cut the
recordings with Lhotse first (``CutSet.from_manifests(...).trim_to_supervisions()
.save_audios(dir)`` and new manifests).  Recordings with several sources, non-file
sources, or transforms (speed perturbation...) are rejects too.
Split names are the manifest part names (``dev-clean``, ``train``...); the role comes
from the name: ``dev``/``val`` -> valid, ``test``/``eval`` -> test, anything else train.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dataset_recipes import lhotse_plain
from dataset_recipes.common import (
    SAMPLES_DIR,
    FileIndex,
    RoleByName,
    find_root,
    rel,
    rel_str,
    source_key,
)
from dataset_recipes.lhotse_audio import Folders, audio_path
from dataset_recipes.textfiles import UTF8
from pipeline import tags
from pipeline.recipe import CorpusInfo, Recipe
from pipeline.record import Label, Record, Reject

_REC = re.compile(r"^(?:(.*)_)?recordings(?:_(.+))?\.jsonl(?:\.gz)?$")
PAUSE_SYMBOLS = frozenset({"", "<eps>", "sil", "<sil>", "sp", "spn", "<unk>"})
LANGUAGE_NAMES = {"english": "en", "chinese": "zh", "mandarin": "zh", "german": "de",
                  "spanish": "es", "korean": "ko", "french": "fr", "japanese": "ja",
                  "italian": "it"}
WHOLE_TOLERANCE = 0.05


INFO = CorpusInfo(
    name="lhotse",
    title="Lhotse manifests (any corpus with a Lhotse recipe)",
    homepage="https://github.com/lhotse-speech/lhotse",
    licence="that of the underlying corpus (see its Lhotse recipe); Lhotse: Apache-2.0",
    citation="""@inproceedings{zelasko2021lhotse,
  title={Lhotse: a speech data representation library for the modern deep learning
  ecosystem}, author={{\\.Z}elasko, Piotr and Povey, Daniel and Trmal, Jan and
  Khudanpur, Sanjeev}, booktitle={NeurIPS Data-Centric AI Workshop}, year={2021}}""",
    tasks=("asr", "srwt"),
    splits=RoleByName(),
    layout="  <prefix>_recordings_<part>.jsonl.gz and <prefix>_supervisions_<part>.jsonl.gz\n"
    "  (the output folder of `lhotse prepare <corpus> ...`)",
    download_hint="run the corpus's Lhotse recipe, e.g. `lhotse download librispeech DIR` and "
    "`lhotse prepare librispeech DIR/LibriSpeech RAW`, and pass that output folder as RAW",
    notes="ASR target (<|wo_itn|>): the supervision text in spoken form (lower case, "
    "punctuation removed, apostrophes inside words and digits kept; no spaces in zh/ja); "
    "SRWT words likewise. SRWT written from Lhotse word alignments when present "
    "(align=False), else left to the alignment stage. Only supervisions covering their whole "
    "recording are used; segments of longer recordings are rejects (cut them with Lhotse "
    "first). Split roles from part names: dev/val -> valid, test/eval -> test, else train.",
)


def _pairs(root: Path) -> list[tuple[str, Path, Path]]:
    """``(split, recordings, supervisions)`` for every manifest pair in ``root``."""
    out = []
    for path in sorted(root.iterdir()):
        m = _REC.match(path.name)
        if m:
            sup = path.with_name(path.name.replace("recordings", "supervisions", 1))
            out.append((m.group(2) or m.group(1) or "all", path, sup))
    return out


def locate(raw: Path) -> Path:
    """The folder holding ``*_recordings_*.jsonl.gz``: ``raw`` or a direct child of it."""
    return find_root(raw, INFO, lambda p: bool(_pairs(p)), ("manifests", "data"))


def language_code(lang: str | None) -> str | None:
    """Qwen-Audio language code of a Lhotse language field, or ``None`` if it has no token."""
    if not lang:
        return None
    low = lang.strip().lower()
    code = LANGUAGE_NAMES.get(low, low)
    return code if code in tags.LANGUAGES else None


@functools.lru_cache(maxsize=256)
def _language_code(lang: str | None) -> str | None:
    """:func:`language_code`, once per distinct language field."""
    return language_code(lang)


def _srwt(sup: Any, duration: float, lang: str) -> str | None:
    """The SRWT target of the word alignment, its words in the ASR target's spoken form."""
    words = (sup.alignment or {}).get("word")
    if not words:
        return None
    timed = [(tags.spoken_form(w.symbol, lang), w.start, w.start + w.duration) for w in words
             if w.symbol.strip().lower() not in PAUSE_SYMBOLS]
    return tags.srwt_target([w for w in timed if w[0]], duration)


def _record(sup: Any, rec: Any, split: str, where: tuple[str, str, str], line: int,
            files: FileIndex) -> tuple[Record | Reject, ...]:
    """The record of one supervision on ``line`` of its manifest (with a reject before it
    when the word alignment is unusable), or its reject; ``where`` is the manifest relative
    to the root, the manifest's folder (with a trailing separator) and the root."""
    src, base, _ = where
    if sup.start > WHOLE_TOLERANCE or abs(sup.duration - rec.duration) > WHOLE_TOLERANCE:
        return (_reject(sup, split, src, line, f"supervision {sup.id} covers {sup.start:.2f}-"
                        f"{sup.end:.2f} s of a {rec.duration:.2f} s recording; only "
                        "whole-recording supervisions are supported: cut first with "
                        "CutSet.from_manifests(...).trim_to_supervisions().save_audios(DIR) "
                        "and export new manifests"),)
    lang = _language_code(sup.language)
    text = tags.spoken_form(sup.text or "", lang or "")  # the <|wo_itn|> style
    audio = audio_path(rec, base, files)
    if lang is None:
        why = (f"language {sup.language!r} has no Qwen-Audio token (choose one of "
               f"{', '.join(tags.LANGUAGES)})")
    elif not text:
        why = f"supervision {sup.id} has no text"
    elif isinstance(audio, str):
        why = audio
    else:
        return _labelled(sup, rec, split, where, line, lang, text, audio[0])
    return (_reject(sup, split, src, line, why),)


def _labelled(sup: Any, rec: Any, split: str, where: tuple[str, str, str], line: int,
              lang: str, text: str, audio: str) -> tuple[Record | Reject, ...]:
    """The record of a usable supervision: its ASR label, and SRWT from its word alignment
    (a reject for the SRWT task before the record when the alignment is unusable)."""
    src, _, root = where
    asr = Label("asr", text, (("lang", lang),))  # Label.make's args
    if not sup.alignment:  # (most supervisions)
        return (Record(INFO.name, split, source_key(sup.id), audio, rel_str(audio, root), lang,
                       (asr,), align=True, listing=src, line=line),)
    out: list[Record | Reject] = []
    labels = [asr]
    try:
        srwt = _srwt(sup, rec.duration, lang)
    except tags.TagError as err:
        srwt = None
        out.append(_reject(sup, split, src, line, f"word alignment unusable for SRWT: {err}",
                           task="srwt"))
    if srwt:
        labels.append(Label("srwt", srwt, (("lang", lang),)))
    has_words = bool(sup.alignment.get("word"))
    out.append(Record(INFO.name, split, source_key(sup.id), audio, rel_str(audio, root), lang,
                      tuple(labels), align=not has_words, listing=src, line=line))
    return tuple(out)


def _reject(sup: Any, split: str, src: str, line: int, reason: str,
            task: str | None = None) -> Reject:
    """The reject of the supervision on ``line`` of the manifest ``src``."""
    return Reject(INFO.name, split, src, reason, line=line, key=source_key(sup.id), task=task)


def _load(path: Path, split: str, root: Path, plain: Callable[[Any, int], Any]
          ) -> tuple[list[Any] | None, list[tuple[int, Any]], list[Reject]]:
    """``(rows, [], [])`` of a manifest whose lines are all plain (:mod:`lhotse_plain`
    rows), else ``(None, [(line, item)], rejects)`` with Lhotse's objects from
    :func:`lhotse.load_manifest`; when Lhotse cannot read the file, each bad line is a
    reject and the others are kept."""
    rows = lhotse_plain.read_plain(path, plain)
    if rows is not None:
        return rows, [], []
    from lhotse import load_manifest

    try:
        return None, list(enumerate(load_manifest(path), 1)), []
    except Exception:  # noqa: BLE001 - any failure: reread line by line to name the bad lines
        pass
    opener = gzip.open if path.suffix == ".gz" else open
    rejects, good = [], []
    with opener(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            line, bad = UTF8.decode(raw)
            try:
                if bad:
                    raise ValueError(bad)
                good.append((n, json.loads(line)))
            except ValueError as err:  # JSONDecodeError is one
                why = f"malformed JSON line: {err.msg}" if isinstance(
                    err, json.JSONDecodeError) else str(err)
                rejects.append(Reject(INFO.name, split, rel(path, root), why, line=n))
    from lhotse.serialization import deserialize_item

    return None, [(n, deserialize_item(d)) for n, d in good], rejects


def prepare(root: Path) -> Iterator[Record | Reject]:
    """Records of every manifest pair in ``root``; the split is the manifest's part name."""
    files = FileIndex()
    for split, rec_path, sup_path in _pairs(root):
        if not sup_path.is_file():
            yield Reject(INFO.name, split, rel(rec_path, root),
                         f"no supervisions manifest {sup_path.name} next to it")
            continue
        rec_rows, recs, bad_recs = _load(rec_path, split, root, lhotse_plain.plain_recording)
        sup_rows, sups, bad_sups = _load(sup_path, split, root,
                                         lhotse_plain.plain_supervision)
        yield from bad_recs + bad_sups
        where = (rel(sup_path, root), os.path.join(str(sup_path.parent), ""), str(root))
        if rec_rows is not None and sup_rows is not None:
            yield from _plain_pair(rec_rows, sup_rows, split, rec_path, where, files)
            continue
        if rec_rows is not None:
            recs = [(row[0], lhotse_plain.recording_view(row)) for row in rec_rows]
        if sup_rows is not None:
            sups = [(row[0], lhotse_plain.supervision_view(row)) for row in sup_rows]
        yield from _pair(recs, sups, split, rec_path, where, files)


def _pair(recs: list[tuple[int, Any]], sups: list[tuple[int, Any]], split: str,
          rec_path: Path, where: tuple[str, str, str], files: FileIndex
          ) -> Iterator[Record | Reject]:
    """The records and rejects of a manifest pair, ``(line, item)`` with Lhotse's
    objects or :mod:`lhotse_plain`'s views; ``where`` as :func:`_record` takes it."""
    by_id = {r.id: r for _, r in recs}
    used: set[Any] = set()
    for line, sup in sups:
        rec = by_id.get(sup.recording_id)
        if rec is None:
            yield _orphan(sup.id, sup.recording_id, split, rec_path, where[0], line)
            continue
        used.add(rec.id)
        yield from _record(sup, rec, split, where, line, files)
    rec_src = rel(rec_path, Path(where[2]))
    for line, rec in recs:
        if rec.id not in used:
            yield _unused(rec.id, split, rec_src, line)


def _plain_pair(recs: list[lhotse_plain.RecordingRow], sups: list[lhotse_plain.SupervisionRow],
                split: str, rec_path: Path, where: tuple[str, str, str], files: FileIndex
                ) -> Iterator[Record | Reject]:
    """:func:`_pair` of two plain manifests (rows), the common case made inline: a whole
    recording of one file source that exists, a known language, some text, no alignment
    (the same checks in the same order as :func:`_record`, the record :func:`_labelled`
    makes); any other supervision goes through :func:`_record`.  Inline, a supervision
    takes 11 us instead of 27 (its views and :func:`_record`)."""
    src, base, root = where
    folders = Folders(base, root, files)
    by_id = {r[1]: r for r in recs}
    used: set[Any] = set()
    for sup in sups:
        line, sid, rid, start, duration, text, language, alignment = sup
        rec = by_id.get(rid)
        if rec is None:
            yield _orphan(sid, rid, split, rec_path, src, line)
            continue
        used.add(rec[1])
        if (not (start > WHOLE_TOLERANCE or abs(duration - rec[2]) > WHOLE_TOLERANCE)
                and (lang := _language_code(language)) is not None
                and (target := tags.spoken_form(text or "", lang))
                and len(rec) == 5 and rec[3] == "file" and not alignment
                and (found := folders.locate(rec[4])) is not None):
            yield Record(INFO.name, split, source_key(sid), found[0], found[1], lang,
                         (Label("asr", target, (("lang", lang),)),), True, (), src, line)
        else:
            yield from _record(lhotse_plain.supervision_view(sup),
                               lhotse_plain.recording_view(rec), split, where, line, files)
    rec_src = rel(rec_path, Path(root))
    for rec in recs:
        if rec[1] not in used:
            yield _unused(rec[1], split, rec_src, rec[0])


def _orphan(sid: Any, rid: Any, split: str, rec_path: Path, src: str, line: int) -> Reject:
    """The reject of a supervision on ``line`` of ``src`` whose recording is absent."""
    return Reject(INFO.name, split, src, f"supervision {sid} names recording {rid}, absent "
                  f"from {rec_path.name}", line=line)


def _unused(rid: Any, split: str, rec_src: str, line: int) -> Reject:
    """The reject of the recording on ``line`` of ``rec_src`` that no supervision names."""
    return Reject(INFO.name, split, rec_src, f"recording {rid} has no supervision", line=line)


def make_sample(target: Path) -> Path:
    """Write Lhotse manifests (made with Lhotse's classes) over the bundled speech."""
    import json
    import shutil

    from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

    root = Path(target)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    sentences = json.loads((SAMPLES_DIR / "espeak" / "sentences.json").read_text())
    parts = {"train": sorted(sentences)[:16], "dev": sorted(sentences)[16:]}
    for part, ids in parts.items():
        recs, sups = [], []
        for sid in ids:
            shutil.copyfile(SAMPLES_DIR / "espeak" / f"{sid}.flac", root / "audio" / f"{sid}.flac")
            rec = Recording.from_file(root / "audio" / f"{sid}.flac", recording_id=sid)
            rec.sources[0].source = f"audio/{sid}.flac"  # relative to the manifest folder
            recs.append(rec)
            sups.append(SupervisionSegment(id=sid, recording_id=sid, start=0.0,
                                           duration=rec.duration, channel=0,
                                           text=sentences[sid], language="English"))
        RecordingSet.from_recordings(recs).to_file(root / f"sample_recordings_{part}.jsonl.gz")
        SupervisionSet.from_segments(sups).to_file(root / f"sample_supervisions_{part}.jsonl.gz")
    return root


RECIPE = Recipe(info=INFO, locate=locate, prepare=prepare, make_sample=make_sample)
