"""CochlScene (acoustic scene classification, 13 urban scenes).

Layout (Zenodo record 7080122, after joining and extracting the split zip ``CochlScene.zip``)::

    CochlScene/{Train,Val,Test}/<Class>/<Class>_<id>.wav     (10 s, 44.1 kHz)

There is no label file: the class is the folder name, e.g. ``CochlScene/Train/Bus/Bus_1.wav``.

Labels: Qwen-Audio's ASC scorer compares the generated scene name with the reference as
text, so the target is a human-readable class name: the official CamelCase folder name split
into lower-case words (``CrowdedIndoor`` -> ``crowded indoor``, ``SubwayStation`` ->
``subway station``); see :data:`CLASSES` for the whole mapping.  A folder whose name is not
one of the 13 classes is an unknown label: each of its files becomes a reject.  Keys: the
file name without ``.wav``, with a hash suffix where sanitizing changed it
(:func:`~dataset_recipes.common.source_key`).  No label file: nothing to decode.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from dataset_recipes.common import Folder, file_names, find_root, rel, stem_key
from dataset_recipes.samples.synth import scene_sound
from pipeline.recipe import CorpusInfo, Recipe
from pipeline.record import Label, Record, Reject

SPLITS = {"Train": "train", "Val": "valid", "Test": "test"}
#: Official folder name -> target text.
CLASSES = {
    "Bus": "bus", "Cafe": "cafe", "Car": "car", "CrowdedIndoor": "crowded indoor",
    "Elevator": "elevator", "Kitchen": "kitchen", "Park": "park",
    "ResidentialArea": "residential area", "Restaurant": "restaurant", "Restroom": "restroom",
    "Street": "street", "Subway": "subway", "SubwayStation": "subway station",
}
HOMEPAGE = "https://zenodo.org/records/7080122"

INFO = CorpusInfo(
    name="cochlscene",
    title="CochlScene",
    homepage=HOMEPAGE,
    licence="CC BY-SA 3.0 (see the Zenodo record)",
    citation="""@inproceedings{jeong2022cochlscene,
  title={CochlScene: Acquisition of acoustic scene data using crowdsourcing},
  author={Jeong, Il-Young and Park, Jeongsoo},
  booktitle={APSIPA ASC}, pages={17--21}, year={2022}}""",
    tasks=("asc",),
    splits=SPLITS,
    layout="  CochlScene/{Train,Val,Test}/<Class>/*.wav\n"
    f"  with <Class> among {', '.join(CLASSES)}",
    download_hint=f"download every part of the split zip (CochlScene.zip, CochlScene.z01, ...) "
    f"from {HOMEPAGE} into one folder, join and extract it into RAW "
    "(7z x CochlScene.zip -oRAW), giving RAW/CochlScene/Train/...",
    long_audio="truncate",
    notes="Target: the class folder name as lower-case words (CrowdedIndoor -> crowded "
    "indoor). Clips are 10 s; a longer clip is truncated to 30 s (the scene holds for any "
    "part of it).",
)


def _is_root(path: Path) -> bool:
    return any((path / s).is_dir() for s in SPLITS)


def locate(raw: Path) -> Path:
    """The ``CochlScene`` folder: ``raw`` itself or ``raw/CochlScene``."""
    return find_root(raw, INFO, _is_root, ("CochlScene",))


def _parse_split(root: Path, split: str) -> Iterator[Record | Reject]:
    for folder in sorted(p for p in (root / split).iterdir() if p.is_dir()):
        label, at = CLASSES.get(folder.name), Folder(folder, root)
        for name in sorted(n for n in file_names(folder) if n.endswith(".wav")):
            if label is None:
                yield Reject(INFO.name, split, at.source(name),
                             f"unknown class folder {folder.name!r}; the 13 classes are "
                             f"{', '.join(CLASSES)}")
                continue
            yield Record(INFO.name, split, stem_key(name), at.audio(name),
                         at.source(name), "unknown", (Label.make("asc", label),))
    for stray in sorted((root / split).glob("*.wav")):
        yield Reject(INFO.name, split, rel(stray, root),
                     "audio file outside a class folder: its scene is unknown")


def prepare(root: Path) -> Iterator[Record | Reject]:
    """Records of every split folder present (Train, Val, Test)."""
    for split in SPLITS:
        if (root / split).is_dir():
            yield from _parse_split(root, split)


# ------------------------------------------------------------------ sample corpus
_SAMPLE = {"Train": ["Bus", "Cafe", "CrowdedIndoor", "Park", "SubwayStation", "Street"],
           "Val": ["Kitchen", "Restroom"], "Test": ["Elevator", "ResidentialArea"]}


def make_sample(target: Path) -> Path:
    """Write a small CochlScene corpus (2 s clips, one or two per class) of generated ambience."""
    root = Path(target) / "CochlScene"
    rng = np.random.default_rng(0)
    for split, classes in _SAMPLE.items():
        for i, cls in enumerate(classes):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for n in range(1 + i % 2):
                x = scene_sound(CLASSES[cls], 2.0, rng).astype(np.float32)
                sf.write(d / f"{cls}_{100 + n}.wav", x, 44100, subtype="PCM_16")
    return Path(target)


RECIPE = Recipe(info=INFO, locate=locate, prepare=prepare, make_sample=make_sample)
