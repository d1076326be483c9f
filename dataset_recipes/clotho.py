"""Clotho v2.1 (automated audio captioning, five captions per clip).

Layout (Zenodo record 4783391), after extracting ``clotho_audio_<split>.7z``::

    clotho_captions_{development,validation,evaluation}.csv   file_name,caption_1..caption_5
    clotho_metadata_{development,validation,evaluation}.csv   file_name,keywords,...,license
    {development,validation,evaluation}/<file_name>           (44.1 kHz wav, 15-30 s)

One caption row: ``Santa Motor.wav,A machine whines and squeals while rhythmically punching...``
Each caption becomes one task entry of the clip; the audio is stored once.

Keys: the file name without ``.wav``, key-safe; a name that sanitizing changes gets a hash
suffix (:func:`~dataset_recipes.common.source_key`), since the development set holds both
``Car Keys.wav`` and ``Car_Keys.wav``.  The captions CSVs are UTF-8; a row that is not is
a reject quoting the bytes (captions are targets: no guessing of another encoding).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path

import numpy as np
import soundfile as sf

from dataset_recipes.common import (
    Folder,
    Rejects,
    file_names,
    find_root,
    read_csv_fields,
    rel,
    stem_key,
)
from dataset_recipes.samples.synth import clotho_sound
from pipeline.download import Downloads, Remote
from pipeline.recipe import CorpusInfo, Recipe
from pipeline.record import Label, Record, Reject, labels_of

SPLITS = {"development": "train", "validation": "valid", "evaluation": "test"}
CAPTIONS = tuple(f"caption_{i}" for i in range(1, 6))
_CONTROL = bytes([*range(32), 127])  # the ASCII characters that are not printable
ZENODO = "https://zenodo.org/records/4783391/files/{name}?download=1"
#: md5 of every file of Zenodo record 4783391 (Clotho v2.1), as the record lists them.
MD5 = {
    "clotho_audio_development.7z": "c8b05bc7acdb13895bb3c6a29608667e",
    "clotho_audio_validation.7z": "7dba730be08bada48bd15dc4e668df59",
    "clotho_audio_evaluation.7z": "4569624ccadf96223f19cb59fe4f849f",
    "clotho_captions_development.csv": "d4090b39ce9f2491908eebf4d5b09bae",
    "clotho_captions_validation.csv": "5879e023032b22a2c930aaa0528bead4",
    "clotho_captions_evaluation.csv": "1b16b9e57cf7bdb7f13a13802aeb57e2",
    "clotho_metadata_development.csv": "170d20935ecfdf161ce1bb154118cda5",
    "clotho_metadata_validation.csv": "2e010427c56b1ce6008b0f03f41048ce",
    "clotho_metadata_evaluation.csv": "13946f054d4e1bf48079813aac61bf77",
}

INFO = CorpusInfo(
    name="clotho",
    title="Clotho v2.1",
    homepage="https://zenodo.org/records/4783391",
    licence="per-file Freesound licences (see clotho_metadata_<split>.csv); captions: "
    "Tampere University licence, see the Zenodo record",
    citation="""@inproceedings{drossos2020clotho,
  title={Clotho: an Audio Captioning Dataset},
  author={Drossos, Konstantinos and Lipping, Samuel and Virtanen, Tuomas},
  booktitle={ICASSP}, pages={736--740}, year={2020}}""",
    tasks=("aac",),
    splits=SPLITS,
    layout="  clotho_captions_<split>.csv (file_name,caption_1..caption_5)\n"
    "  <split>/<file_name>.wav   with <split> among development, validation, evaluation",
    download_hint="download clotho_captions_<split>.csv and clotho_audio_<split>.7z from "
    "https://zenodo.org/records/4783391 into RAW and extract the .7z files there "
    "(7z x clotho_audio_development.7z)",
)


def _is_root(path: Path) -> bool:
    return any((path / f"clotho_captions_{s}.csv").is_file() for s in SPLITS)


def locate(raw: Path) -> Path:
    """The folder holding ``clotho_captions_<split>.csv``: ``raw`` or a direct child."""
    return find_root(raw, INFO, _is_root, ("clotho", "Clotho"))


def _parse_split(root: Path, split: str) -> Iterator[Record | Reject]:
    csv_path = root / f"clotho_captions_{split}.csv"
    src, audio = rel(csv_path, root), file_names(root / split)
    rejects, folder = Rejects(INFO.name, root), Folder(root / split, root)
    audio_at, source_at = folder.audio(""), folder.source("")
    columns, rows = read_csv_fields(csv_path, root, INFO.name, split, ("file_name",))
    name_at = columns["file_name"]
    captions_at = [(col, columns.get(col)) for col in CAPTIONS]  # (None: no such column)
    # The five captions of a row at once (a tuple made in C), where the file has them all
    ats = [at for _, at in captions_at]
    five = itemgetter(*ats) if None not in ats else None
    for item in rows:
        if item.__class__ is not tuple:  # (a Reject)
            yield item
            continue
        line, fields = item
        name = fields[name_at].strip()
        if five is not None:
            # Each caption is its collapsed form (" ".join(caption.split())) when it is
            # printable (so holds no whitespace but the space), not empty, with no two
            # spaces in a row and no space at an end.  Joined by two spaces, the five
            # are then a printable text whose only double spaces are the four joins (no
            # run of three, no space at its ends), and only then: nearly every row is,
            # checked without splitting (else caption by caption, below).  (ASCII text
            # is printable when deleting control characters deletes nothing: a C pass,
            # where str.isprintable looks up each character.)
            captions = five(fields)
            joined = "  ".join(captions)
            if ((len(joined.encode().translate(None, _CONTROL)) == len(joined)
                 if joined.isascii() else joined.isprintable())
                    and joined.count("  ") == 4 and "   " not in joined
                    and joined[0] != " " and joined[-1] != " "):
                if name not in audio:
                    yield rejects.missing(split, root / split / name, csv_path, line)
                else:
                    yield Record(INFO.name, split, stem_key(name), audio_at + name,
                                 source_at + name, "unknown", labels_of("aac", captions),
                                 False, (), src, line)
                continue
        labels = []
        for col, at in captions_at:
            caption = fields[at] if at is not None else ""
            # (the check above, for one caption)
            if not (caption and caption.isprintable() and "  " not in caption
                    and caption[0] != " " and caption[-1] != " "):
                caption = " ".join(caption.split())
            if caption:
                labels.append(Label("aac", caption))  # (Label.make's, no arguments)
            else:
                yield Reject(INFO.name, split, src, f"{name}: {col} is empty", line=line,
                             task="aac")
        if name not in audio:
            yield rejects.missing(split, root / split / name, csv_path, line)
            continue
        if labels:
            yield Record(INFO.name, split, stem_key(name), audio_at + name,
                         source_at + name, "unknown", tuple(labels), False, (), src, line)


def prepare(root: Path) -> Iterator[Record | Reject]:
    """Records of every split whose captions file is present."""
    for split in SPLITS:
        if (root / f"clotho_captions_{split}.csv").is_file():
            yield from _parse_split(root, split)


# ------------------------------------------------------------------ sample corpus
_KINDS = {
    "beeps": ["A high pitched beep repeats on and off at a steady pace.",
              "An electronic tone beeps over and over again.",
              "A shrill beeping sound turns on and off repeatedly.",
              "A single high tone keeps beeping in a regular rhythm.",
              "Short electronic beeps sound again and again."],
    "hiss": ["A steady hiss of static slowly gets quieter.",
             "White noise hisses and fades away gradually.",
             "Static noise rushes loudly and then softens.",
             "A loud hissing sound becomes quieter over time.",
             "Noise like a radio between stations slowly fades."],
    "sweep": ["A tone rises steadily in pitch.",
              "A single sound glides from low to high.",
              "An electronic tone slides upward without stopping.",
              "A whistling tone climbs higher and higher.",
              "A pure tone sweeps up from a low pitch to a high one."],
    "hum": ["A low hum drones on without changing.",
            "A deep electrical buzz continues steadily.",
            "A machine hums at a low constant pitch.",
            "A low droning sound fills the background.",
            "A steady low frequency hum with faint noise."],
    "clicks": ["Sharp clicks sound in a fast steady rhythm.",
               "A clock like ticking repeats quickly.",
               "Regular clicking noises continue at an even pace.",
               "Something taps sharply four times every second.",
               "A series of quick clicks keeps a steady beat."],
}
_SAMPLE_FILES = {
    "development": [("beeps", "Beep Sequence 01.wav"), ("hiss", "radio.static.02.wav"),
                    ("sweep", "rising_tone.wav"), ("hum", "Fridge Hum.wav"),
                    ("clicks", "clock ticking 3.wav"), ("beeps", "alarm beeps.wav"),
                    ("hiss", "wind noise.wav"), ("sweep", "Slide Whistle.wav")],
    "validation": [("hum", "transformer hum.wav"), ("clicks", "metronome.wav"),
                   ("sweep", "siren up.wav")],
    "evaluation": [("beeps", "microwave done.wav"), ("hiss", "tv static.wav"),
                   ("clicks", "typing clicks.wav")],
}


def make_sample(target: Path) -> Path:
    """Write a small Clotho corpus of generated sounds whose captions describe them."""
    root = Path(target)
    rng = np.random.default_rng(0)
    for split, files in _SAMPLE_FILES.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        rows, meta = [], []
        for i, (kind, name) in enumerate(files):
            seconds = 4.0 + i % 3
            sound = clotho_sound(kind, seconds, rng).astype(np.float32)
            sf.write(root / split / name, sound, 44100, subtype="PCM_16")
            rows.append([name, *_KINDS[kind]])
            meta.append([name, kind, str(1000 + i), "", f"[0, {int(seconds * 44100)}]", "",
                         "http://creativecommons.org/publicdomain/zero/1.0/"])
        with open(root / f"clotho_captions_{split}.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["file_name", *CAPTIONS], *rows])
        with open(root / f"clotho_metadata_{split}.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["file_name", "keywords", "sound_id", "sound_link",
                                      "start_end_samples", "manufacturer", "license"], *meta])
    return root


#: The three files of each split on Zenodo, in download order.
DOWNLOADS = Downloads(per_split={
    s: tuple(Remote(ZENODO.format(name=n), md5=MD5[n], name=n) for n in (
        f"clotho_captions_{s}.csv", f"clotho_metadata_{s}.csv", f"clotho_audio_{s}.7z"))
    for s in SPLITS})


RECIPE = Recipe(info=INFO, locate=locate, prepare=prepare, make_sample=make_sample,
                download=DOWNLOADS)
