"""ESC-50 (environmental sound classification, 50 classes, task ``sec``).

Layout (github.com/karolpiczak/ESC-50), after extracting the GitHub archive::

    ESC-50-master/meta/esc50.csv   filename,fold,target,category,esc10,src_file,take
    ESC-50-master/audio/<fold>-<src_file>-<take>-<target>.wav   (5 s, 44.1 kHz mono)

One label row: ``1-100032-A-0.wav,1,0,dog,True,100032,A``

Prompt: ESC-50 is not among the released evaluation scripts; sound events use the
closest existing output instruction, ``<|event|>`` (documented choice of
:func:`pipeline.tags.sec_prompt`).  Target: the category with underscores read as spaces
(``crying_baby`` -> ``crying baby``), the human-readable class name a scorer compares.
Splits: the five official folds ``fold1`` ... ``fold5``; ESC-50 is meant for 5-fold
cross-validation, and the roles follow the common single split (folds 1-4 train, fold 5
test).  Rows whose target index, fold or file name disagree with the category are rejects.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from dataset_recipes.common import find_root, read_csv_rows, rel
from pipeline.recipe import CorpusInfo, Recipe
from pipeline.record import Label, Record, Reject, sanitize_key

SPLITS = {"fold1": "train", "fold2": "train", "fold3": "train", "fold4": "train",
          "fold5": "test"}
URL = "https://github.com/karolpiczak/ESC-50/archive/master.zip"
COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
#: The 50 categories in target-index order, as spelled in ``meta/esc50.csv``.
CATEGORIES = (
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
    "rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds", "water_drops",
    "wind", "pouring_water", "toilet_flush", "thunderstorm",
    "crying_baby", "sneezing", "clapping", "breathing", "coughing", "footsteps",
    "laughing", "brushing_teeth", "snoring", "drinking_sipping",
    "door_wood_knock", "mouse_click", "keyboard_typing", "door_wood_creaks",
    "can_opening", "washing_machine", "vacuum_cleaner", "clock_alarm", "clock_tick",
    "glass_breaking",
    "helicopter", "chainsaw", "siren", "car_horn", "engine", "train", "church_bells",
    "airplane", "fireworks", "hand_saw",
)
_NAME = re.compile(r"^(\d)-(\w+)-([A-Z])-(\d{1,2})\.wav$")

INFO = CorpusInfo(
    name="esc50",
    title="ESC-50",
    homepage="https://github.com/karolpiczak/ESC-50",
    licence="CC BY-NC 3.0 (clips from freesound.org; see the repository's LICENSE)",
    citation="""@inproceedings{piczak2015esc,
  title={{ESC}: Dataset for Environmental Sound Classification},
  author={Piczak, Karol J.}, booktitle={Proceedings of the 23rd Annual ACM Conference on
  Multimedia}, pages={1015--1018}, year={2015}, doi={10.1145/2733373.2806390}}""",
    tasks=("sec",),
    splits=SPLITS,
    layout="  ESC-50-master/meta/esc50.csv (filename,fold,target,category,esc10,src_file,take)\n"
    "  ESC-50-master/audio/<fold>-<src_file>-<take>-<target>.wav",
    download_hint=f"download {URL} and unzip it into RAW (it extracts to ESC-50-master/), "
    "or let the recipe's download() do it",
    notes="Task sec uses <|event|> (documented choice: no released ESC-50 prompt). Target = "
    "category with '_' -> ' ' (e.g. crying_baby -> crying baby). Splits fold1..fold5; roles: "
    "folds 1-4 train, fold 5 test (ESC-50 itself prescribes 5-fold cross-validation).",
)


def label_text(category: str) -> str:
    """The target of an ESC-50 category: underscores read as spaces."""
    return category.replace("_", " ")


def _is_root(path: Path) -> bool:
    return (path / "meta" / "esc50.csv").is_file()


def locate(raw: Path) -> Path:
    """The ``ESC-50-master`` folder: ``raw`` itself or a direct child of it."""
    return find_root(raw, INFO, _is_root, ("ESC-50-master", "ESC-50"))


def _check_row(row: dict[str, str]) -> str | None:
    """Why a label row is unusable, or ``None``."""
    name, category = row["filename"].strip(), row["category"].strip()
    if category not in CATEGORIES:
        return f"unknown category {category!r} (not one of the 50 ESC-50 classes)"
    if row["fold"].strip() not in {"1", "2", "3", "4", "5"}:
        return f"fold {row['fold']!r} is not 1-5"
    if row["target"].strip() != str(CATEGORIES.index(category)):
        return f"target {row['target']!r} does not match category {category!r}"
    m = _NAME.match(name)
    if not m or m.group(1) != row["fold"].strip() or m.group(4) != row["target"].strip():
        return f"file name {name!r} does not match fold and target"
    return None


def prepare(root: Path) -> Iterator[Record | Reject]:
    """Records of every row of ``meta/esc50.csv``, in file order."""
    csv_path = root / "meta" / "esc50.csv"
    listed: set[str] = set()
    for item in read_csv_rows(csv_path, root, INFO.name, "unknown", COLUMNS):
        if isinstance(item, Reject):
            yield item
            continue
        line, row = item
        name = row["filename"].strip()
        listed.add(name)
        split = f"fold{row['fold'].strip()}"
        problem = _check_row(row)
        if problem:
            yield Reject(INFO.name, split, rel(csv_path, root), problem, line=line)
            continue
        wav = root / "audio" / name
        if not wav.is_file():
            yield Reject(INFO.name, split, rel(wav, root),
                         f"listed in esc50.csv line {line} but the audio file is missing",
                         line=line)
            continue
        label = Label.make("sec", label_text(row["category"].strip()))
        yield Record(INFO.name, split, sanitize_key(Path(name).stem), str(wav), rel(wav, root),
                     "unknown", (label,), meta=(("fold", int(row["fold"])),))
    for wav in sorted((root / "audio").glob("*.wav")):
        if wav.name not in listed:
            fold = wav.name.split("-", 1)[0]
            split = f"fold{fold}" if f"fold{fold}" in SPLITS else "unknown"
            yield Reject(INFO.name, split, rel(wav, root), "audio file has no row in esc50.csv")


def download(target_dir: Path) -> Path:
    """Fetch and extract the ESC-50 GitHub archive into ``target_dir``; return the corpus root."""
    from pipeline.download import Remote, download_corpus

    # No checksum: the archive of the master branch is regenerated by GitHub and its bytes
    # are not guaranteed stable, so a fixed md5 would break; the parse checks every row.
    download_corpus([Remote(URL, name="ESC-50-master.zip")], Path(target_dir))
    return locate(Path(target_dir))


# ------------------------------------------------------------------ sample corpus
def _sound(category: str, rng: np.random.Generator, sr: int = 44100) -> np.ndarray:
    """Five seconds of a generated sound that a listener would file under ``category``."""
    t = np.arange(5 * sr) / sr
    if category == "clock_tick":  # one sharp tick per second
        x = np.zeros(len(t))
        for k in range(5):
            i = k * sr + sr // 10
            x[i:i + 200] = np.hanning(200) * np.sin(2 * np.pi * 3000 * t[:200])
        return 0.8 * x
    if category == "clock_alarm":  # fast beeping
        return 0.4 * np.sin(2 * np.pi * 2000 * t) * (np.floor(t * 8) % 2 == 0)
    if category == "siren":  # wailing up-and-down tone
        phase = 2 * np.pi * (700 * t - 300 / (2 * np.pi * 0.5) * np.cos(2 * np.pi * 0.5 * t))
        return 0.4 * np.sin(phase)
    if category == "rain":  # dense random droplets on a noise bed
        x = 0.05 * rng.standard_normal(len(t))
        drops = rng.integers(0, len(t) - 100, 400)
        for d in drops:
            x[d:d + 100] += 0.3 * rng.standard_normal(100) * np.hanning(100)
        return x
    if category == "church_bells":  # struck inharmonic partials, decaying, every 1.25 s
        x = np.zeros(len(t))
        step = int(1.25 * sr)
        for start in range(0, len(t), step):
            tt = t[: len(t) - start]
            env = np.exp(-tt * 1.2)
            x[start:] += sum(a * np.sin(2 * np.pi * f * tt) * env
                             for f, a in ((440, 0.3), (528, 0.15), (880, 0.1), (1210, 0.05)))
        return x / np.abs(x).max() * 0.6
    raise ValueError(f"no sample sound for {category!r}")


def make_sample(target: Path) -> Path:
    """Write a small ESC-50 corpus: one generated clip of five classes in each fold."""
    root = Path(target) / "ESC-50-master"
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(50)
    rows = []
    for fold in range(1, 6):
        for j, category in enumerate(("clock_tick", "clock_alarm", "siren", "rain",
                                      "church_bells")):
            src, target_idx = str(900000 + fold * 10 + j), CATEGORIES.index(category)
            name = f"{fold}-{src}-A-{target_idx}.wav"
            sf.write(root / "audio" / name, _sound(category, rng).astype(np.float32), 44100,
                     subtype="PCM_16")
            esc10 = category in {"clock_tick", "rain"}
            rows.append([name, fold, target_idx, category, str(esc10), src, "A"])
    with open(root / "meta" / "esc50.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([list(COLUMNS), *rows])
    return Path(target)


RECIPE = Recipe(info=INFO, locate=locate, prepare=prepare, make_sample=make_sample,
                download=download)
