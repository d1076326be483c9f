"""VocalSound (vocal sound classification, 6 classes, task ``vsc``).

Layout (github.com/YuanGongND/vocalsound, ``vocalsound_16k.zip`` unzipped)::

    vocalsound_16k/audio_16k/<speaker>_<session>_<label>.wav      16 kHz mono
    vocalsound_16k/datafiles/{tr,val,te}.json                      speaker-independent splits

One datafile entry (``{"data": [...]}``; ``wav`` holds the authors' absolute path, only its
file name is used): ``{"wav": "/data/.../audio_16k/f0003_0_cough.wav", "labels": "/m/01b_21"}``

Prompt: the released one, ``<|vocal_classification|>`` with audio language ``en``.
Target: the class's display name of VocalSound's ``class_labels_indices_vs.csv``
(``Laughter, Sigh, Cough, Throat clearing, Sneeze, Sniff``); ``labels`` may hold the
AudioSet MID (as released) or the file-name label; it must agree with the file name.
Splits ``tr``/``val``/``te`` keep their names (roles train/valid/test).  Keys: the file
name without ``.wav`` (already key-safe by the pattern it must match).  The datafiles are
JSON (UTF-8); an entry holding bytes that are not UTF-8 is a reject quoting them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from dataset_recipes.common import Folder, Rejects, file_names, find_root, rel, source_key, stem
from dataset_recipes.jsonfiles import json_items, read_json_text, undecodable
from dataset_recipes.samples.synth import vocal_sound
from pipeline.errors import InputError
from pipeline.recipe import CorpusInfo, Recipe
from pipeline.record import Label, Record, Reject

SPLITS = {"tr": "train", "val": "valid", "te": "test"}
#: file-name label -> (AudioSet MID, display name), as in class_labels_indices_vs.csv
CLASSES = {
    "laughter": ("/m/01j3sz", "Laughter"), "sigh": ("/m/07plz5l", "Sigh"),
    "cough": ("/m/01b_21", "Cough"), "throatclearing": ("/m/0dl9sf8", "Throat clearing"),
    "sneeze": ("/m/01hsr_", "Sneeze"), "sniff": ("/m/07ppn3j", "Sniff"),
}
_BY_MID = {mid: name for name, (mid, _) in CLASSES.items()}
_FILE = re.compile(r"^([fm]\d+)_(\d+)_([a-z]+)$")

INFO = CorpusInfo(
    name="vocalsound",
    title="VocalSound",
    homepage="https://github.com/YuanGongND/vocalsound",
    licence="CC BY-SA 4.0",
    citation="""@inproceedings{gong2022vocalsound,
  title={Vocalsound: A Dataset for Improving Human Vocal Sounds Recognition},
  author={Gong, Yuan and Yu, Jin and Glass, James}, booktitle={ICASSP},
  pages={151--155}, year={2022}, doi={10.1109/ICASSP43922.2022.9746828}}""",
    tasks=("vsc",),
    splits=SPLITS,
    layout="  audio_16k/<speaker>_<session>_<label>.wav\n"
    "  datafiles/{tr,val,te}.json   ({\"data\": [{\"wav\": ..., \"labels\": <MID>}]})",
    download_hint="download the 16 kHz release (vs_release_16k.zip, linked from "
    "https://github.com/YuanGongND/vocalsound) by hand and unzip it into RAW",
    notes="Task vsc uses the released prompt. Target = VocalSound display name (Laughter, "
    "Sigh, Cough, Throat clearing, Sneeze, Sniff). The sample corpus's audio is synthetic "
    "(noise bursts shaped like each sound, voiced 'ha' pulses for laughter), not real vocal "
    "sounds.",
)


def _is_root(path: Path) -> bool:
    return (path / "audio_16k").is_dir() and (path / "datafiles").is_dir()


def locate(raw: Path) -> Path:
    """The ``vocalsound_16k`` folder: ``raw`` itself or a direct child of it."""
    return find_root(raw, INFO, _is_root, ("vocalsound_16k", "vocalsound"))


def _entries(path: Path) -> list[tuple[int, object, str | None]]:
    """``(line, entry, undecodable bytes or None)`` for each element of the datafile's
    ``data`` list, in one pass."""
    text, dirty = read_json_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err}); re-extract the official "
                         "datafiles") from None
    start = re.search(r'"data"\s*:\s*\[', text)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list) or not start:
        raise InputError(f'{path}: expected {{"data": [...]}}, the official datafile layout')
    return [(line, entry, undecodable(text[a:b]) if dirty else None)
            for line, entry, a, b in json_items(text, start.end() - 1)]


def _wav_name(entry: object) -> str | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("wav"), str):
        return None
    return entry["wav"].replace("\\", "/").rsplit("/", 1)[-1]


#: Each class's label: one shared (immutable) object for all of its entries.
_LABELS = {c: Label.make("vsc", display) for c, (_, display) in CLASSES.items()}


def _parse_entry(entry: object, name: str | None) -> tuple[str, str] | str:
    """``(file stem, class)`` of an entry whose ``wav`` file name is ``name``, or why it
    is unusable."""
    if name is None or not isinstance(entry, dict):
        return "entry has no 'wav' string"
    key = stem(name)
    m = _FILE.match(key)
    if not m:
        return f"file name {name!r} is not <speaker>_<session>_<label>.wav"
    label = m.group(3)
    if label not in CLASSES:
        return f"unknown label {label!r} in {name!r}; known: {', '.join(CLASSES)}"
    given = str(entry.get("labels", "")).strip()  # an AudioSet MID or a file-name label
    if given and _BY_MID.get(given, given.lower().replace(" ", "")) != label:
        return f"labels {given!r} disagree with the file name {name!r}"
    return key, label


def prepare(root: Path) -> Iterator[Record | Reject]:
    """Records of every split whose datafile is present, then unlisted audio as rejects."""
    listed: set[str] = set()
    audio, rejects = file_names(root / "audio_16k"), Rejects(INFO.name, root)
    folder = Folder(root / "audio_16k", root)
    for split in SPLITS:
        path = root / "datafiles" / f"{split}.json"
        if not path.is_file():
            continue
        src = rel(path, root)
        for line, entry, bad in _entries(path):
            name = _wav_name(entry)
            listed.add(name or "")
            parsed = bad or _parse_entry(entry, name)
            if isinstance(parsed, str):
                yield Reject(INFO.name, split, src, parsed, line=line)
                continue
            key, label = parsed
            if name not in audio:
                yield rejects.missing(split, root / "audio_16k" / name, path, line)
                continue
            yield Record(INFO.name, split, source_key(key), folder.audio(name),
                         folder.source(name), "en", (_LABELS[label],), listing=src, line=line)
    yield from rejects.unlisted("unknown", sorted((root / "audio_16k").glob("*.wav")), listed,
                                "audio file is listed in no datafiles/{tr,val,te}.json")


# ------------------------------------------------------------------ sample corpus
def make_sample(target: Path) -> Path:
    """Write a small VocalSound corpus: 6 classes x 2 speakers per split, datafiles as released."""
    root = Path(target) / "vocalsound_16k"
    (root / "audio_16k").mkdir(parents=True, exist_ok=True)
    (root / "datafiles").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(6)
    speakers = {"tr": ("f0003", "m0083"), "val": ("f1001",), "te": ("m2002",)}
    for split, spks in speakers.items():
        data = []
        for spk in spks:
            for label, (mid, _) in CLASSES.items():
                name = f"{spk}_0_{label}.wav"
                sf.write(root / "audio_16k" / name, vocal_sound(label, rng), 16000,
                         subtype="PCM_16")
                data.append({"wav": f"/data/vocalsound/audio_16k/{name}", "labels": mid})
        (root / "datafiles" / f"{split}.json").write_text(json.dumps({"data": data}, indent=1),
                                                          encoding="utf-8")
    return Path(target)


RECIPE = Recipe(info=INFO, locate=locate, prepare=prepare, make_sample=make_sample)
