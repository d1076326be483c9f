"""MELD (speech emotion recognition on Friends utterances; audio taken from the mp4 clips).

Layout (affective-meld.github.io), after extracting ``MELD.Raw.tar.gz`` and the
``train.tar.gz``, ``dev.tar.gz`` and ``test.tar.gz`` inside it::

    MELD.Raw/{train,dev,test}_sent_emo.csv   Sr No.,Utterance,Speaker,Emotion,Sentiment,
                                             Dialogue_ID,Utterance_ID,Season,Episode,
                                             StartTime,EndTime
    MELD.Raw/train_splits/dia<D>_utt<U>.mp4
    MELD.Raw/dev_splits_complete/dia<D>_utt<U>.mp4
    MELD.Raw/output_repeated_splits_test/dia<D>_utt<U>.mp4

One row: ``1,also I was the point person on my company's transition from the KL-5 to GR-6
system.,Chandler,neutral,neutral,0,0,8,21,"00:16:16,059","00:16:21,731"``

The audio track of each mp4 is decoded (PyAV) and normalized like any clip.  Target: the
``Emotion`` column as given (neutral, joy, sadness, anger, surprise, fear, disgust), the
seven lower-case words Qwen-Audio's SER scorer compares; any other value is rejected.
``Sentiment`` and the transcript are not used (the release's SER prompt has no task for
them).  Keys: ``dia<D>_utt<U>`` from the two whole numbers, one to one with the clip.

The CSVs are UTF-8, but their ``Utterance`` column holds stray Windows-1252 bytes in some
copies; a line that is not UTF-8 is read as latin-1, which is safe because the fields used
(emotion, dialogue and utterance ids) are ASCII and checked, and the utterance text is not
used.  Utterances with quoted line breaks are reported at the line the row starts on.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

from dataset_recipes.common import (
    SAMPLES_DIR,
    Folder,
    Rejects,
    file_names,
    find_root,
    read_csv_rows,
    rel,
)
from dataset_recipes.samples.synth import write_mp4
from dataset_recipes.textfiles import UTF8_OR_LATIN1
from pipeline.download import Downloads, Remote
from pipeline.recipe import CorpusInfo, Recipe
from pipeline.record import Label, Record, Reject

SPLITS = {"train": "train", "dev": "valid", "test": "test"}
MEDIA = {"train": "train_splits", "dev": "dev_splits_complete",
         "test": "output_repeated_splits_test"}
EMOTIONS = ("neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust")
URL = "http://web.eecs.umich.edu/~mihalcea/downloads/MELD.Raw.tar.gz"
_CLIP = re.compile(r"^dia(\d+)_utt(\d+)\.mp4$")
_REQUIRED = ("Emotion", "Dialogue_ID", "Utterance_ID")

INFO = CorpusInfo(
    name="meld",
    title="MELD (Multimodal EmotionLines Dataset)",
    homepage="https://affective-meld.github.io",
    licence="GPL-3.0 (see the MELD repository); clips are excerpts of the TV series Friends "
    "for research use",
    citation="""@inproceedings{poria2019meld,
  title={{MELD}: A Multimodal Multi-Party Dataset for Emotion Recognition in Conversations},
  author={Poria, Soujanya and Hazarika, Devamanyu and Majumder, Navonil and Naik, Gautam and
  Cambria, Erik and Mihalcea, Rada},
  booktitle={ACL}, pages={527--536}, year={2019}}""",
    tasks=("ser",),
    splits=SPLITS,
    layout="  {train,dev,test}_sent_emo.csv\n  train_splits/, dev_splits_complete/, "
    "output_repeated_splits_test/ holding dia<D>_utt<U>.mp4",
    download_hint=f"make download, or fetch {URL} into RAW, extract it (tar xzf "
    "MELD.Raw.tar.gz -C RAW) and then train.tar.gz, dev.tar.gz and test.tar.gz inside "
    "RAW/MELD.Raw",
    notes="Audio is the mp4's audio track. Target: the Emotion column (7 lower-case "
    "classes); Sentiment is not used.",
)


def _is_root(path: Path) -> bool:
    return any((path / f"{s}_sent_emo.csv").is_file() for s in SPLITS)


def locate(raw: Path) -> Path:
    """The folder holding ``<split>_sent_emo.csv``: ``raw`` or ``raw/MELD.Raw``."""
    return find_root(raw, INFO, _is_root, ("MELD.Raw",))


def _parse_split(root: Path, split: str) -> Iterator[Record | Reject]:
    csv_path = root / f"{split}_sent_emo.csv"
    src, media = rel(csv_path, root), root / MEDIA[split]
    listed: set[str] = set()
    audio, rejects, folder = file_names(media), Rejects(INFO.name, root), Folder(media, root)
    for item in read_csv_rows(csv_path, root, INFO.name, split, _REQUIRED,
                              encoding=UTF8_OR_LATIN1):
        if isinstance(item, Reject):
            yield item
            continue
        line, row = item
        dia, utt = row["Dialogue_ID"].strip(), row["Utterance_ID"].strip()
        if not (dia.isdigit() and utt.isdigit()):
            yield Reject(INFO.name, split, src, f"Dialogue_ID {dia!r} / Utterance_ID {utt!r} "
                         "are not whole numbers", line=line)
            continue
        name = f"dia{int(dia)}_utt{int(utt)}"
        listed.add(name)
        emotion = row["Emotion"].strip().lower()
        if emotion not in EMOTIONS:
            yield Reject(INFO.name, split, src, f"unknown emotion {row['Emotion']!r}; "
                         f"known: {', '.join(EMOTIONS)}", line=line)
            continue
        if f"{name}.mp4" not in audio:
            yield rejects.missing(split, media / f"{name}.mp4", csv_path, line, "media file")
            continue
        yield Record(INFO.name, split, name, folder.audio(f"{name}.mp4"),
                     folder.source(f"{name}.mp4"), "en",
                     (Label.make("ser", emotion),), listing=src, line=line)
    yield from rejects.unlisted(split, (media / n for n in sorted(audio) if _CLIP.match(n)),
                                listed, f"media file has no row in {csv_path.name}",
                                name=lambda mp4: mp4.stem)


def prepare(root: Path) -> Iterator[Record | Reject]:
    """Records of every split whose ``<split>_sent_emo.csv`` is present."""
    for split in SPLITS:
        if (root / f"{split}_sent_emo.csv").is_file():
            yield from _parse_split(root, split)


def _unpack_splits(raw: Path) -> None:
    """Extract ``train.tar.gz``, ``dev.tar.gz`` and ``test.tar.gz`` inside ``MELD.Raw``
    (members outside it refused), unless their folder exists already."""
    root = locate(raw)
    for split, folder in MEDIA.items():
        archive = root / f"{split}.tar.gz"
        if archive.is_file() and not (root / folder).is_dir():
            with tarfile.open(archive) as tar:
                tar.extractall(root, filter="data")


#: No checksum is published for the archive (the size is still checked when known).
DOWNLOADS = Downloads(files=(Remote(URL),), unpack=_unpack_splits)


# ------------------------------------------------------------------ sample corpus
def make_sample(target: Path) -> Path:
    """Write a small MELD corpus: mp4 clips whose audio is synthetic English speech
    (espeak-ng, flat voice), all labelled ``neutral`` so that the label is true."""
    import csv
    import json

    import soundfile as sf

    root = Path(target) / "MELD.Raw"
    sentences = json.loads((SAMPLES_DIR / "espeak" / "sentences.json").read_text())
    header = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID",
              "Utterance_ID", "Season", "Episode", "StartTime", "EndTime"]
    ids = sorted(sentences)
    plan = {"train": ids[:6], "dev": ids[6:8], "test": ids[8:10]}
    for split, clips in plan.items():
        rows = [header]
        for i, sid in enumerate(clips):
            data, sr = sf.read(SAMPLES_DIR / "espeak" / f"{sid}.flac", dtype="float32")
            write_mp4(root / MEDIA[split] / f"dia{i // 2}_utt{i % 2}.mp4", data, sr, 40 * i)
            rows.append([str(i + 1), sentences[sid], "Narrator", "neutral", "neutral",
                         str(i // 2), str(i % 2), "1", "1", "00:00:01,000", "00:00:04,000"])
        with open(root / f"{split}_sent_emo.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(rows)
    return Path(target)


RECIPE = Recipe(info=INFO, locate=locate, prepare=prepare, make_sample=make_sample,
                download=DOWNLOADS)
