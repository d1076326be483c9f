"""Clotho-AQA (audio question answering on Clotho clips, three annotator answers each).

Layout (Zenodo record 6473207), after extracting ``audio_files.zip``::

    clotho_aqa_{train,val,test}.csv    file_name,QuestionText,answer,confidence
    audio_files/<file_name>            (Clotho clips, 15-30 s, 44.1 kHz wav)

One row: ``river_mouth3.wav,Are there waves?,yes,yes``

Each row (one annotator's answer) becomes one AQA entry of its clip: the question sits in
the prompt (``<|question|>...<|answer|>``), the answer is the target.  Answers are
lower-cased with whitespace collapsed and a trailing full stop removed, the form the
yes/no and one-word answers mostly have already and Qwen-Audio's AQA scorer compares.

``confidence`` (the annotator's own ``yes``/``maybe``/``no`` about their answer): every
answer is kept whatever its confidence, as in the official splits (dropping ``no`` would
change the answer distribution the benchmark is scored on); the confidences are stored,
aligned with the clip's AQA entries, in the sample's ``meta.aqa_confidence``.  A value
outside yes/maybe/no is an unknown label and rejects the row.

Encoding: the authors' own code reads the official CSVs as latin-1
(github.com/partha2409/AquaNet, ``split_dataset.py``: ``pd.read_csv(..., encoding='latin1')``).
Each line is decoded as UTF-8 when it is valid UTF-8 (a copy re-saved as UTF-8 reads
right) and as latin-1 otherwise (:data:`ENCODING`); latin-1 decodes any byte, so no row is
lost to its encoding.  Keys as in Clotho: the file name without ``.wav``, with a hash
suffix where sanitizing changed it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from dataset_recipes.common import (
    Folder,
    Rejects,
    file_names,
    find_root,
    read_csv_rows,
    rel,
    stem_key,
)
from dataset_recipes.samples.synth import clotho_sound
from dataset_recipes.textfiles import Encoding
from pipeline.download import Downloads, Remote
from pipeline.recipe import CorpusInfo, Recipe
from pipeline.record import Label, Record, Reject

SPLITS = {"train": "train", "val": "valid", "test": "test"}
CONFIDENCES = ("yes", "maybe", "no")
HOMEPAGE = "https://zenodo.org/records/6473207"
FILES = (*(f"clotho_aqa_{s}.csv" for s in SPLITS), "audio_files.zip")
#: Zenodo publishes MD5s for these files, but they were not at hand when this was written.
DOWNLOADS = Downloads(files=tuple(Remote(f"{HOMEPAGE}/files/{name}") for name in FILES))

INFO = CorpusInfo(
    name="clotho_aqa",
    title="Clotho-AQA",
    homepage=HOMEPAGE,
    licence="audio: per-file Freesound licences of Clotho; questions and answers: see the "
    "Zenodo record (Tampere University)",
    citation="""@inproceedings{lipping2022clothoaqa,
  title={Clotho-{AQA}: A Crowdsourced Dataset for Audio Question Answering},
  author={Lipping, Samuel and Sudarsanam, Parthasaarathy and Drossos, Konstantinos and
  Virtanen, Tuomas},
  booktitle={EUSIPCO}, pages={1140--1144}, year={2022}}""",
    tasks=("aqa",),
    splits=SPLITS,
    layout="  clotho_aqa_{train,val,test}.csv (file_name,QuestionText,answer,confidence)\n"
    "  audio_files/<file_name>.wav",
    download_hint=f"make download, or fetch {', '.join(FILES)} from {HOMEPAGE} into RAW and "
    "unzip audio_files.zip there",
    notes="One AQA entry per annotator answer (about 3 per question). Answers lower-cased, "
    "whitespace collapsed, trailing '.' removed. Every answer is kept whatever the "
    "annotator's confidence; confidences are stored in meta.aqa_confidence.",
)
_REQUIRED = ("file_name", "QuestionText", "answer")
#: UTF-8 where a line is valid UTF-8, else latin-1, the encoding the authors read with.
ENCODING = Encoding("utf-8", "latin-1")


def _is_root(path: Path) -> bool:
    return any((path / f"clotho_aqa_{s}.csv").is_file() for s in SPLITS)


def locate(raw: Path) -> Path:
    """The folder holding ``clotho_aqa_<split>.csv``: ``raw`` or a direct child."""
    return find_root(raw, INFO, _is_root, ("clotho_aqa", "Clotho-AQA"))


def normalize_answer(answer: str) -> str:
    """Lower case, single spaces, no trailing full stop (``"Yes."`` -> ``"yes"``)."""
    return " ".join(answer.split()).lower().rstrip(".").strip()


def _parse_split(root: Path, split: str, listed: set[str]) -> Iterator[Record | Reject]:
    csv_path = root / f"clotho_aqa_{split}.csv"
    src = rel(csv_path, root)
    clips: dict[str, tuple[int, list[Label], list[str]]] = {}
    for item in read_csv_rows(csv_path, root, INFO.name, split, _REQUIRED, encoding=ENCODING):
        if isinstance(item, Reject):
            yield item
            continue
        line, row = item
        name = row["file_name"].strip()
        listed.add(name)
        confidence = (row.get("confidence") or "").strip().lower()
        answer = normalize_answer(row["answer"])
        if confidence and confidence not in CONFIDENCES:
            yield Reject(INFO.name, split, src, f"unknown confidence {row['confidence']!r}; "
                         f"expected one of {', '.join(CONFIDENCES)}", line=line)
            continue
        if not answer:
            yield Reject(INFO.name, split, src, "answer is empty after normalization", line=line)
            continue
        _, labels, confs = clips.setdefault(name, (line, [], []))
        labels.append(Label.make("aqa", answer, question=" ".join(row["QuestionText"].split())))
        confs.append(confidence)
    audio, rejects = file_names(root / "audio_files"), Rejects(INFO.name, root)
    folder = Folder(root / "audio_files", root)
    for name, (first, labels, confs) in clips.items():
        if name not in audio:
            yield rejects.missing(split, root / "audio_files" / name, csv_path, first)
            continue
        yield Record(INFO.name, split, stem_key(name), folder.audio(name),
                     folder.source(name), "unknown", tuple(labels),
                     meta=(("aqa_confidence", confs),), listing=src, line=first)


def prepare(root: Path) -> Iterator[Record | Reject]:
    """Records of every split whose CSV is present; audio no CSV lists becomes a reject."""
    listed: set[str] = set()
    for split in SPLITS:
        if (root / f"clotho_aqa_{split}.csv").is_file():
            yield from _parse_split(root, split, listed)
    yield from Rejects(INFO.name, root).unlisted(
        "unknown", sorted((root / "audio_files").glob("*.wav")), listed,
        "audio file has no row in any clotho_aqa_<split>.csv")


# ------------------------------------------------------------------ sample corpus
#: clip -> (sound kind, [(question, [three annotator answers], [their confidences])])
_SAMPLE = {
    "train": {
        "beeping alarm.wav": ("beeps", [
            ("Is there a beeping sound?", ["yes", "Yes", "yes."], ["yes", "yes", "maybe"]),
            ("Is a person talking?", ["no", "no", "no"], ["yes", "yes", "yes"])]),
        "static_radio.wav": ("hiss", [
            ("Does the noise get quieter?", ["yes", "yes", "no"], ["yes", "maybe", "no"]),
            ("What kind of sound is heard?", ["static", "noise", "static"], ["yes"] * 3)]),
        "clock ticks 2.wav": ("clicks", [
            ("Is the sound rhythmic?", ["yes", "yes", "yes"], ["yes"] * 3)]),
    },
    "val": {"rising tone.wav": ("sweep", [
        ("Does the pitch go up?", ["yes", "yes", "yes"], ["yes", "yes", "maybe"])])},
    "test": {"fridge_hum.wav": ("hum", [
        ("Is the sound high pitched?", ["no", "no", "no"], ["yes", "maybe", "yes"])])},
}


def make_sample(target: Path) -> Path:
    """Write a small Clotho-AQA corpus of generated sounds whose answers are true."""
    import csv

    raw = Path(target)
    (raw / "audio_files").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, clips in _SAMPLE.items():
        rows = [["file_name", "QuestionText", "answer", "confidence"]]
        for name, (kind, qas) in clips.items():
            sf.write(raw / "audio_files" / name, clotho_sound(kind, 3.0, rng).astype(np.float32),
                     44100, subtype="PCM_16")
            for question, answers, confs in qas:
                rows += [[name, question, a, c] for a, c in zip(answers, confs, strict=True)]
        with open(raw / f"clotho_aqa_{split}.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(rows)
    return raw


RECIPE = Recipe(info=INFO, locate=locate, prepare=prepare, make_sample=make_sample,
                download=DOWNLOADS)
