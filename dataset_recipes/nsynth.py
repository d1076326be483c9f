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
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from dataset_recipes.common import find_root, rel
from pipeline.recipe import CorpusInfo, Recipe
from pipeline.record import Label, Record, Reject, sanitize_key

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


def _is_root(path: Path) -> bool:
    return any((path / s / "examples.json").is_file() for s in SPLITS)


def locate(raw: Path) -> Path:
    """The folder holding ``nsynth-<split>/``; also accepts one ``nsynth-<split>`` folder."""
    raw = Path(raw)
    if raw.name in SPLITS and (raw / "examples.json").is_file():
        return raw.parent
    return find_root(raw, INFO, _is_root, ("nsynth",))


def target(entry: dict[str, Any]) -> str:
    """The note-analysis target of one ``examples.json`` entry; ``ValueError`` says what is
    wrong with an entry that cannot make one."""
    missing = [f for f in _FIELDS if f not in entry]
    if missing:
        raise ValueError(f"missing field(s) {missing}")
    pitch, velocity = entry["pitch"], entry["velocity"]
    for name, value in (("pitch", pitch), ("velocity", velocity)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 127:
            raise ValueError(f"{name} {value!r} is not a MIDI value 0-127")
    family = entry["instrument_family_str"]
    if family not in FAMILIES:
        raise ValueError(f"unknown instrument family {family!r}; known: {', '.join(FAMILIES)}")
    qualities = entry["qualities_str"]
    if not isinstance(qualities, list) or any(q not in QUALITIES for q in qualities):
        raise ValueError(f"unknown sonic quality in {qualities!r}; known: {', '.join(QUALITIES)}")
    sonic = ", ".join(qualities) if qualities else NO_QUALITY
    return (f"<|pitch|><|midi_pitch_{pitch}|><|velocity|><|midi_velocity_{velocity}|>"
            f"<|instrument|>{family}<|sonic|>{sonic}")


def _line_of(text: str, key: str) -> int:
    """Line of ``"key":`` in the JSON text (1 when the file is one long line)."""
    pos = text.find(json.dumps(key) + ":")
    return text.count("\n", 0, pos) + 1 if pos >= 0 else 1


def _parse_split(root: Path, split: str) -> Iterator[Record | Reject]:
    path = root / split / "examples.json"
    src = rel(path, root)
    text = path.read_text(encoding="utf-8")
    try:
        table = json.loads(text)
    except json.JSONDecodeError as err:
        yield Reject(INFO.name, split, src, f"malformed JSON ({err.msg}, column {err.colno}); "
                     "no note of this split can be read: re-extract the archive", line=err.lineno)
        return
    if not isinstance(table, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by note_str; is this NSynth's "
                         "examples.json?")
    for key, entry in table.items():
        line = _line_of(text, key)
        try:
            if not isinstance(entry, dict):
                raise ValueError("entry is not a JSON object")
            if entry.get("note_str", key) != key:
                raise ValueError(f"note_str {entry['note_str']!r} differs from its key")
            label = target(entry)
        except ValueError as err:
            yield Reject(INFO.name, split, src, f"{key}: {err}", line=line)
            continue
        wav = root / split / "audio" / f"{key}.wav"
        if not wav.is_file():
            yield Reject(INFO.name, split, rel(wav, root),
                         f"listed in examples.json line {line} but the audio file is missing",
                         line=line)
            continue
        yield Record(INFO.name, split, sanitize_key(key), str(wav), rel(wav, root), "unknown",
                     (Label.make("mna", label),))
    for wav in sorted((root / split / "audio").glob("*.wav")):
        if wav.stem not in table:
            yield Reject(INFO.name, split, rel(wav, root), "audio file has no entry in "
                         "examples.json")


def prepare(root: Path) -> Iterator[Record | Reject]:
    """Records of every ``nsynth-<split>`` folder present."""
    for split in SPLITS:
        if (root / split / "examples.json").is_file():
            yield from _parse_split(root, split)


def download(target_dir: Path) -> Path:
    """Fetch and extract the three official ``.jsonwav.tar.gz`` archives into ``target_dir``."""
    from pipeline.download import Remote, download_corpus

    return download_corpus([Remote(URL.format(split=s), md5=MD5[s]) for s in SPLITS],
                           Path(target_dir))


# ------------------------------------------------------------------ sample corpus
def note(pitch: int, velocity: int, family: str, seconds: float = 4.0,
         sr: int = 16000) -> np.ndarray:
    """A synthetic note at MIDI ``pitch`` whose loudness follows ``velocity``: harmonics
    shaped by the family (odd harmonics for reeds, bright for brass), plucked or sustained."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    odd = family in ("reed", "flute")
    x = np.zeros_like(t)
    for h in range(1, 8):
        if (h == 1 or f0 * h < sr / 2) and not (odd and h % 2 == 0):  # f0 always sounds
            x += np.sin(2 * np.pi * f0 * h * t) / (h if family != "brass" else h**0.5)
    plucked = family in ("guitar", "mallet", "keyboard", "bass")
    env = np.exp(-3 * t) if plucked else np.clip(t / 0.05, 0, 1) * (t < seconds - 1)
    return (velocity / 127 * 0.8 * env * x / np.max(np.abs(x))).astype(np.float32)


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
                download=download)
