"""TUT Acoustic Scenes 2017 (acoustic scene classification, DCASE 2017 task 1).

Layout (Zenodo records 400515 and 1040168), after extracting the ``.zip`` files into RAW::

    TUT-acoustic-scenes-2017-development/meta.txt      audio/<file>.wav<TAB>scene<TAB>location
    TUT-acoustic-scenes-2017-development/error.txt     audio/<file>.wav<TAB>... (bad segments)
    TUT-acoustic-scenes-2017-development/evaluation_setup/fold{1-4}_{train,evaluate,test}.txt
    TUT-acoustic-scenes-2017-development/audio/<file>.wav   (10 s, 44.1 kHz stereo)
    TUT-acoustic-scenes-2017-evaluation/meta.txt       audio/<n>.wav<TAB>scene[<TAB>...]
    TUT-acoustic-scenes-2017-evaluation/audio/<n>.wav

One meta line: ``audio/b020_90_100.wav	beach	b020``

Splits: the official fold 1 of the development set gives ``fold1_train`` (train) and
``fold1_evaluate`` (valid); the evaluation set is ``evaluation`` (test), as in DCASE 2017
and Qwen-Audio's TUT2017 test.  A fold row must agree with ``meta.txt`` (same scene); a
development file in ``meta.txt`` but in neither fold-1 list, and a file in ``audio/`` but
not in ``meta.txt``, become rejects.  ``error.txt`` lists segments with recording errors
(e.g. microphone faults): they are rejected, naming the ``error.txt`` line.

Labels: the official scene name with ``_`` read as a space (``city_center`` -> ``city
center``, ``cafe/restaurant`` kept), the text Qwen-Audio's ASC scorer compares.  Keys: the
file name without ``.wav`` (hash suffix where sanitizing changed it).

The list files are ASCII; a line that is not UTF-8 is read as latin-1, which is safe
because every field is checked (a known scene, an ``audio/`` path that must exist).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from dataset_recipes.common import Folder, Rejects, file_names, find_root, rel, stem_key
from dataset_recipes.samples.synth import scene_sound
from dataset_recipes.textfiles import UTF8_OR_LATIN1, read_lines
from pipeline.download import Downloads, Remote
from pipeline.errors import InputError
from pipeline.recipe import CorpusInfo, Recipe
from pipeline.record import Label, Record, Reject

DEV = "TUT-acoustic-scenes-2017-development"
EVAL = "TUT-acoustic-scenes-2017-evaluation"
SPLITS = {"fold1_train": "train", "fold1_evaluate": "valid", "evaluation": "test"}
SCENES = ("beach", "bus", "cafe/restaurant", "car", "city_center", "forest_path",
          "grocery_store", "home", "library", "metro_station", "office", "park",
          "residential_area", "train", "tram")
DEV_URL = "https://zenodo.org/records/400515/files/"
EVAL_URL = "https://zenodo.org/records/1040168/files/"
#: Official archives (Zenodo records 400515 and 1040168).
ARCHIVES = (
    *(DEV_URL + f"{DEV}.audio.{i}.zip" for i in range(1, 11)),
    DEV_URL + f"{DEV}.meta.zip", DEV_URL + f"{DEV}.error.zip", DEV_URL + f"{DEV}.doc.zip",
    *(EVAL_URL + f"{EVAL}.audio.{i}.zip" for i in range(1, 5)),
    EVAL_URL + f"{EVAL}.meta.zip", EVAL_URL + f"{EVAL}.doc.zip",
)
#: archive name -> (md5, size in bytes) of the files on Zenodo records 400515 and 1040168,
#: as listed in dcase_util (DCASE-REPO/dcase_util, dcase_util/datasets/dcase2017.py,
#: TUTAcousticScenes_2017_{Development,Evaluation}Set package_list remote_md5/remote_bytes).
CHECKSUMS: dict[str, tuple[str, int]] = {
    f"{DEV}.doc.zip": ("2065495aaf3f1103e795c9899e2af1df", 54796),
    f"{DEV}.meta.zip": ("9007fd4772d816590c5db5f5e9568f5d", 104321),
    f"{DEV}.error.zip": ("802c700b021769e52a2c1e3b9c117a1b", 1432),
    f"{DEV}.audio.1.zip": ("251325a9afaaad0326ad1c57f57d514a", 1071445248),
    f"{DEV}.audio.2.zip": ("c26861e05147dc319b4250eb103d9d99", 1073453613),
    f"{DEV}.audio.3.zip": ("a4815775f8a5e629179726ee4cd4f55a", 1073077819),
    f"{DEV}.audio.4.zip": ("1732b03afe8c53ef8bba80ba14766e57", 1072822038),
    f"{DEV}.audio.5.zip": ("611be754a0c951185c6ae4b7643c19a0", 1072644652),
    f"{DEV}.audio.6.zip": ("165a201db800d3ea76fce5a9c2bd97d7", 1072667888),
    f"{DEV}.audio.7.zip": ("c7d79db84264401c0f8680dcc36013ad", 1073417661),
    f"{DEV}.audio.8.zip": ("35043f25123439392338c790494c7a19", 1072381222),
    f"{DEV}.audio.9.zip": ("0805dcf5d8e6871dc9610182b2efb93a", 1072087738),
    f"{DEV}.audio.10.zip": ("5df83a191295a04e290b125c634e13e7", 1046262120),
    f"{EVAL}.doc.zip": ("47bbdc0614b468d2bfadbc49e561a320", 53687),
    f"{EVAL}.meta.zip": ("e006cfec14a49dd79a6ab8f8d5b1c5e6", 4473),
    f"{EVAL}.audio.1.zip": ("5d97dea8461baec8027ae4a0c2b18d4b", 1071856687),
    f"{EVAL}.audio.2.zip": ("4085ef5fa286f2169074993a4e405953", 1073362972),
    f"{EVAL}.audio.3.zip": ("cac432579e7cf2dff0aec7aaed248956", 1071521152),
    f"{EVAL}.audio.4.zip": ("664bf09c3d24bd26c6b587f1d709de36", 382756463),
}
DOWNLOADS = Downloads(files=tuple(
    Remote(url, md5=CHECKSUMS[url.rsplit("/", 1)[-1]][0], size=CHECKSUMS[url.rsplit("/", 1)[-1]][1])
    for url in ARCHIVES))

INFO = CorpusInfo(
    name="tut2017",
    title="TUT Acoustic Scenes 2017",
    homepage="https://zenodo.org/records/400515",
    licence="non-commercial research use only (Tampere University of Technology EULA, "
    "see the Zenodo records)",
    citation="""@inproceedings{mesaros2017dcase,
  title={{DCASE} 2017 Challenge setup: Tasks, datasets and baseline system},
  author={Mesaros, Annamaria and Heittola, Toni and Diment, Aleksandr and Elizalde, Benjamin
  and Shah, Ankit and Vincent, Emmanuel and Raj, Bhiksha and Virtanen, Tuomas},
  booktitle={DCASE Workshop}, pages={85--92}, year={2017}}""",
    tasks=("asc",),
    splits=SPLITS,
    layout=f"  {DEV}/meta.txt, {DEV}/evaluation_setup/fold1_{{train,evaluate}}.txt, "
    f"{DEV}/audio/*.wav\n  {EVAL}/meta.txt, {EVAL}/audio/*.wav   (error.txt optional)",
    download_hint=f"make download, or fetch every .zip of {DEV_URL} and {EVAL_URL} into RAW "
    "and unzip them there",
    long_audio="truncate",
    notes="Target: the scene name with '_' read as a space (city_center -> city center). "
    "Splits: development fold 1 (fold1_train, fold1_evaluate) and the evaluation set. "
    "Segments listed in error.txt are rejected.",
)


def _is_root(path: Path) -> bool:
    return (path / DEV / "meta.txt").is_file() or (path / EVAL / "meta.txt").is_file()


def locate(raw: Path) -> Path:
    """The folder holding the development and/or evaluation folders (``raw`` or a child)."""
    try:
        return find_root(raw, INFO, _is_root)
    except FileNotFoundError:
        if (Path(raw) / "meta.txt").is_file() and Path(raw).name in (DEV, EVAL):
            return Path(raw).parent  # the user pointed at one of the two corpus folders
        raise


def _rows(path: Path, root: Path, split: str, ncols: tuple[int, ...]
          ) -> Iterator[tuple[int, list[str]] | Reject]:
    """Tab-separated rows of a list file; bad rows become rejects naming file and line."""
    for item in read_lines(path, rel(path, root), INFO.name, split, UTF8_OR_LATIN1):
        if isinstance(item, Reject):
            yield item
            continue
        n, line = item
        cols = [c.strip() for c in line.split("\t")]
        if len(cols) not in ncols or not cols[0].startswith("audio/") or not all(cols):
            yield Rejects(INFO.name, root).malformed(
                split, path, n, f"{' or '.join(map(str, ncols))} tab-separated fields, the "
                "first 'audio/<file>.wav'")
            continue
        yield n, cols


Meta = tuple[dict[str, tuple[str, int]], list[Reject], set[str]]


def _meta(path: Path, root: Path, split: str) -> Meta:
    """``meta.txt`` as {audio path: (scene, line)}, rejects for bad and unknown rows, and
    every audio path named (so a file with a bad row is not also called unlisted)."""
    table: dict[str, tuple[str, int]] = {}
    rejects: list[Reject] = []
    named: set[str] = set()
    for item in _rows(path, root, split, (2, 3)):
        if isinstance(item, Reject):
            rejects.append(item)
            continue
        n, cols = item
        named.add(cols[0])
        if cols[1] not in SCENES:
            rejects.append(Reject(INFO.name, split, rel(path, root),
                                  f"unknown scene {cols[1]!r}; known: {', '.join(SCENES)}",
                                  line=n))
        elif cols[0] in table:
            rejects.append(Reject(INFO.name, split, rel(path, root),
                                  f"{cols[0]} listed twice (first on line {table[cols[0]][1]})",
                                  line=n))
        else:
            table[cols[0]] = (cols[1], n)
    return table, rejects, named


def _errors(folder: Path, root: Path, split: str) -> dict[str, tuple[int, str]]:
    path = folder / "error.txt"
    if not path.is_file():
        return {}
    out: dict[str, tuple[int, str]] = {}
    for item in read_lines(path, rel(path, root), INFO.name, split, UTF8_OR_LATIN1):
        if isinstance(item, tuple):
            cols = [c.strip() for c in item[1].split("\t") if c.strip()]
            out[cols[0]] = (item[0], " ".join(cols[1:]) or "listed as erroneous")
    return out


#: Each scene's label (``_`` read as a space): one shared (immutable) object for its rows.
_LABELS = {scene: Label.make("asc", scene.replace("_", " ")) for scene in SCENES}


def _record(folder: Folder, root: Path, split: str, name: str, scene: str,
            listing: tuple[Path, str], line: int, errors: dict[str, tuple[int, str]],
            audio: set[str]) -> Record | Reject:
    """The record of ``name`` (``audio/<file>.wav``, a scene of :data:`SCENES`, on ``line``
    of ``listing``: the file and its name relative to the root), or a reject if error.txt
    flags it or its audio is missing."""
    if name in errors:
        n, what = errors[name]
        return Reject(INFO.name, split, rel(folder.path / "error.txt", root),
                      f"{name} is listed as a bad segment ({what})", line=n)
    if name[len("audio/"):] not in audio:
        return Rejects(INFO.name, root).missing(split, folder.path / name, listing[0], line)
    return Record(INFO.name, split, stem_key(name[len("audio/"):]), folder.audio(name),
                  folder.source(name), "unknown", (_LABELS[scene],), listing=listing[1],
                  line=line)


def _unlisted(folder: Path, root: Path, split: str, listed: set[str]) -> Iterator[Reject]:
    yield from Rejects(INFO.name, root).unlisted(
        split, sorted((folder / "audio").glob("*.wav")), listed,
        "audio file has no line in meta.txt", name=lambda wav: f"audio/{wav.name}")


def _development(root: Path) -> Iterator[Record | Reject]:
    folder = root / DEV
    meta, rejects, named = _meta(folder / "meta.txt", root, "fold1_train")
    yield from rejects
    errors, audio = _errors(folder, root, "fold1_train"), file_names(folder / "audio")
    in_folds, at = set(), Folder(folder, root)
    for split in ("fold1_train", "fold1_evaluate"):
        listing = folder / "evaluation_setup" / f"{split}.txt"
        if not listing.is_file():
            raise InputError(f"{listing}: missing; the development set needs the official "
                             f"evaluation_setup folder (from {DEV}.meta.zip)")
        src = rel(listing, root)
        for item in _rows(listing, root, split, (2,)):
            if isinstance(item, Reject):
                yield item
                continue
            n, (name, scene) = item
            in_folds.add(name)
            if meta.get(name, ("",))[0] != scene:
                why = "is not in meta.txt" if name not in meta else \
                    f"has scene {scene!r} here but {meta[name][0]!r} in meta.txt"
                yield Reject(INFO.name, split, src, f"{name} {why}", line=n)
                continue
            yield _record(at, root, split, name, scene, (listing, src), n, errors, audio)
    for name, (_, n) in meta.items():
        if name not in in_folds:
            yield Reject(INFO.name, "fold1_train", rel(folder / "meta.txt", root),
                         f"{name} is in neither fold1_train.txt nor fold1_evaluate.txt", line=n)
    yield from _unlisted(folder, root, "fold1_train", named)


def _evaluation(root: Path) -> Iterator[Record | Reject]:
    folder, split = root / EVAL, "evaluation"
    meta, rejects, named = _meta(folder / "meta.txt", root, split)
    yield from rejects
    errors, audio = _errors(folder, root, split), file_names(folder / "audio")
    at, listing = Folder(folder, root), (folder / "meta.txt", rel(folder / "meta.txt", root))
    for name, (scene, n) in meta.items():
        yield _record(at, root, split, name, scene, listing, n, errors, audio)
    yield from _unlisted(folder, root, split, named)


def prepare(root: Path) -> Iterator[Record | Reject]:
    """Records of the development set (fold 1) and the evaluation set, where present."""
    if (root / DEV / "meta.txt").is_file():
        yield from _development(root)
    if (root / EVAL / "meta.txt").is_file():
        yield from _evaluation(root)


# ------------------------------------------------------------------ sample corpus
_SAMPLE_DEV = [("a001", "beach"), ("b002", "bus"), ("c003", "city_center"), ("d004", "park"),
               ("e005", "tram"), ("f006", "cafe/restaurant")]
_SAMPLE_EVAL = ["home", "forest_path", "metro_station"]


def _write(path: Path, scene: str, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = scene_sound(scene.replace("_", " "), 2.0, rng).astype(np.float32)
    sf.write(path, np.stack([x, 0.9 * x], axis=1), 44100, subtype="PCM_16")


def make_sample(target: Path) -> Path:
    """Write a small TUT 2017 corpus (2 s stereo clips of generated ambience) with fold 1."""
    raw, rng = Path(target), np.random.default_rng(0)
    dev, meta, train, evaluate = raw / DEV, [], [], []
    for i, (loc, scene) in enumerate(_SAMPLE_DEV):
        for seg in (0, 10):
            name = f"audio/{loc}_{seg}_{seg + 10}.wav"
            _write(dev / name, scene, rng)
            meta.append(f"{name}\t{scene}\t{loc}")
            (evaluate if i % 3 == 2 else train).append(f"{name}\t{scene}")
    (dev / "evaluation_setup").mkdir(parents=True, exist_ok=True)
    (dev / "meta.txt").write_text("\n".join(meta) + "\n", encoding="utf-8")
    (dev / "evaluation_setup" / "fold1_train.txt").write_text("\n".join(train) + "\n")
    (dev / "evaluation_setup" / "fold1_evaluate.txt").write_text("\n".join(evaluate) + "\n")
    (dev / "evaluation_setup" / "fold1_test.txt").write_text(
        "".join(r.split("\t")[0] + "\n" for r in evaluate))
    ev = [f"audio/{i + 1}.wav\t{scene}" for i, scene in enumerate(_SAMPLE_EVAL)]
    for row in ev:
        _write(raw / EVAL / row.split("\t")[0], row.split("\t")[1], rng)
    (raw / EVAL / "meta.txt").write_text("\n".join(ev) + "\n", encoding="utf-8")
    return raw


RECIPE = Recipe(info=INFO, locate=locate, prepare=prepare, make_sample=make_sample,
                download=DOWNLOADS)
