"""GTZAN (music genre recognition, 10 genres x 100 clips, task ``mgr``).

Two layouts are read, whichever the corpus folder holds (the original first)::

    genres/<genre>/<genre>.000NN.au                 original archive genres.tar.gz
    genres_original/<genre>/<genre>.000NN.wav       common re-upload (Kaggle "Data/")

Clips are about 30 s (many a few milliseconds over), 22.05 kHz mono.  One file name:
``genres/blues/blues.00000.au`` -> genre ``blues``.  GTZAN ships no label file: the
folder and the file name carry the genre, and both must agree.

Prompt: no released GTZAN prompt; music genre uses the closest existing output
instruction, ``<|song_meta|>`` (documented choice of :func:`pipeline.tags.genre_prompt`).
Target: the genre as a readable word; only ``hiphop`` changes (-> ``hip hop``).
Long audio: ``truncate`` (the genre holds for any 30 s of the clip, and clips a few
milliseconds over 30 s would otherwise be lost); the report counts truncated clips.
Splits: GTZAN has no official split; this recipe uses the widely used fault-filtered
split (Kereliuk, Sturm and Larsen 2015; lists as in jordipons/sklearn-audio-transfer-
learning and torchaudio's ``GTZAN(subset=...)``): 443 train, 197 valid, 290 test.  The 70
clips it leaves out (repetitions, mislabelings, distortions) are rejects saying so.
Unreadable audio: the parse opens no clip but ``jazz.00054.wav`` of the re-upload, known
to be corrupt, whose reject says so ("unreadable audio (a known corrupt file of the
re-upload): ...") while the build goes on.  Any other clip that cannot be decoded is found
by the build, which decodes every clip anyway and records a bad one as a reject naming the
file (stage ``audio``); reading every header at parse time as well cost three quarters of
the parse (70 us a clip).

Keys: ``<genre>_<NNNNN>`` (``blues.00000`` -> ``blues_00000``).  Only names of that exact
form are used (others are rejects), so the key is one to one with the clip.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from dataset_recipes.common import Folder, find_root, stem
from dataset_recipes.samples.synth import genre_clip
from pipeline.download import Downloads, Remote
from pipeline.errors import InputError
from pipeline.recipe import CorpusInfo, Recipe
from pipeline.record import Label, Record, Reject

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop",
          "reggae", "rock")
LABELS = {g: ("hip hop" if g == "hiphop" else g) for g in GENRES}
#: Each genre's label: one shared (immutable) object for all of its clips.
_LABELS = {g: Label.make("mgr", target) for g, target in LABELS.items()}
SPLITS = {"train": "train", "valid": "valid", "test": "test"}
LAYOUTS = (("genres", ".au"), ("genres_original", ".wav"))
URL = "http://opihi.cs.uvic.ca/sound/genres.tar.gz"
SHA256 = "24347e0223d2ba798e0a558c4c172d9d4a19c00bb7963fe055d183dadb4ef2c6"  # as torchaudio
KNOWN_CORRUPT = {"jazz.00054.wav"}
DOWNLOADS = Downloads(files=(Remote(URL, sha256=SHA256, name="genres.tar.gz"),))

#: Fault-filtered split: clip numbers per genre (ranges inclusive).
FILTERED: dict[str, dict[str, str]] = {
    "train": {
        "blues": "29-49,73-97", "classical": "30-33,43-48,50-67,80-99",
        "country": "19-26,28-29,65-99",
        "disco": "5,15-20,22-37,39-45,47,49,53-54,56-57,59,61,70,73-74,89",
        "hiphop": "2-25,28-29,31-38,41-42,55-61,77-80", "jazz": "0-1,11-24,41,47-72",
        "metal": "2-3,5,21,24,35,46-57,59-66,69,71-72,79-80,84,86,89-99",
        "pop": "2-9,11-12,16-20,23-29,31-36,38-42,44,46,49-50,80,97-99",
        "reggae": "0-2,4,6,9,11-12,14-32,42-45,49-51,54-60,63,69",
        "rock": "0-9,16-26,57-70,91-99",
    },
    "valid": {
        "blues": "0-11,50-60", "classical": "0-10,68-76",
        "country": "0-7,9-18,27,41-42,45,49",
        "disco": "0,2-4,6-14,46,48,52,67-68,72,75,90,95", "hiphop": "81-98",
        "jazz": "2-10,25-32", "metal": "0-1,6-11,16-20,36-37,68,76-77,81-82",
        "pop": "10,53,55,58-62,81,83-86", "reggae": "61-62,70,72,74,76-78,85,92-99",
        "rock": "38,49-56,71-85",
    },
    "test": {
        "blues": "12-28,61-72,98-99", "classical": "11-29,34-41,49,77-79",
        "country": "30-40,43-44,46-48,50-51,53-64",
        "disco": "1,21,58,62-66,69,76-88,91-94,96-97,99",
        "hiphop": "0,26-27,30,40,43-45,51-54,62-75,99", "jazz": "73-99",
        "metal": "12-15,22-23,25-33,38-39,67,70,73-75,78,83,85,87-88",
        "pop": "0-1,13-14,43,63-66,69-79,82,88-96",
        "reggae": "34-40,46-48,52-53,64-68,71,79,82-84,87-90",
        "rock": "10-15,27-37,39-48,86-90",
    },
}
_NAME = re.compile(r"^([a-z]+)\.(\d{5})$")

INFO = CorpusInfo(
    name="gtzan",
    title="GTZAN Genre Collection",
    homepage="https://marsyas.info/index.html",
    licence="no explicit licence; distributed by the authors for research use "
    "(clips from commercial recordings)",
    citation="""@article{tzanetakis2002musical,
  title={Musical genre classification of audio signals},
  author={Tzanetakis, George and Cook, Perry}, journal={IEEE Transactions on Speech and
  Audio Processing}, volume={10}, number={5}, pages={293--302}, year={2002}}
@article{kereliuk2015deep,
  title={Deep Learning and Music Adversaries}, author={Kereliuk, Corey and Sturm, Bob L.
  and Larsen, Jan}, journal={IEEE Transactions on Multimedia}, year={2015}}""",
    tasks=("mgr",),
    splits=SPLITS,
    layout="  genres/<genre>/<genre>.000NN.au  (original archive)\n"
    "  or genres_original/<genre>/<genre>.000NN.wav  (common re-upload)\n"
    f"  with <genre> among {', '.join(GENRES)}",
    download_hint=f"download {URL} and extract it into RAW (tar xzf genres.tar.gz -C RAW), "
    "or let the recipe's download() do it; when that server is down, the Kaggle re-upload "
    "'andradaolteanu/gtzan-dataset-music-genre-classification' unzipped into RAW works too",
    long_audio="truncate",
    notes="Task mgr uses <|song_meta|> (documented choice: no released GTZAN prompt). "
    "Target = genre, hiphop -> hip hop. long_audio=truncate: clips are ~30.0-30.1 s and the "
    "genre holds for any 30 s. Splits: fault-filtered split (Kereliuk et al. 2015; 443/197/"
    "290); the 70 clips it excludes are rejects. jazz.00054.wav of the re-upload is corrupt "
    "and is a reject; any other unreadable clip is a reject of the build's decode.",
)


def _numbers(spec: str) -> set[int]:
    out: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


#: (genre, clip number) -> split of the fault-filtered split; clips it leaves out are absent.
SPLIT_OF = {(genre, n): split for split, genres in FILTERED.items()
             for genre, spec in genres.items() for n in _numbers(spec)}


def _audio_dir(path: Path) -> tuple[Path, str] | None:
    for folder, ext in LAYOUTS:
        if any((path / folder / g).is_dir() for g in GENRES):
            return path / folder, ext
    return None


def locate(raw: Path) -> Path:
    """The folder holding ``genres/`` or ``genres_original/``: ``raw`` or a direct child."""
    return find_root(raw, INFO, lambda p: _audio_dir(p) is not None, ("gtzan", "Data"))


def _check(folder: Folder, name: str, genre: str) -> tuple[str, str] | Reject:
    """``(split, key)`` of the clip ``name`` of the ``genre`` folder, or the reason it
    cannot be used."""
    m = _NAME.match(stem(name))
    if genre not in GENRES:
        return Reject(INFO.name, "unknown", folder.source(name),
                      f"unknown genre folder {genre!r}; GTZAN genres are {', '.join(GENRES)}")
    if not m or m.group(1) != genre:
        return Reject(INFO.name, "unknown", folder.source(name),
                      f"file name is not '{genre}.000NN' inside the {genre}/ folder")
    split = SPLIT_OF.get((genre, int(m.group(2))))
    if split is None:
        return Reject(INFO.name, "excluded", folder.source(name),
                      "left out by the fault-filtered split (Kereliuk et al. 2015: "
                      "repetition, mislabeling or distortion)")
    if name in KNOWN_CORRUPT:  # (other clips: the build's decode; see the module docstring)
        try:
            _read_header(folder.audio(name))
        except (sf.LibsndfileError, RuntimeError) as err:
            detail = getattr(err, "error_string", err)
            return Reject(INFO.name, split, folder.source(name), "unreadable audio (a known "
                          f"corrupt file of the re-upload): {detail}")
    return split, f"{m.group(1)}_{m.group(2)}"


def _read_header(path: str) -> float:
    """The clip's duration from its header: :func:`soundfile.info`'s check (it opens the
    file with :class:`soundfile.SoundFile` and divides by the sample rate, so it fails
    where this fails) without its formatting of the header's descriptions, a third of its
    time."""
    with sf.SoundFile(path) as f:
        return f.frames / f.samplerate


def _clip_names(folder: Path, ext: str) -> list[str]:
    """The names ``sorted(folder.glob("*" + ext))`` gives (any entry whose name ends with
    ``ext``, hidden or not; none if the folder cannot be read), without a ``Path`` each."""
    try:
        return sorted([name for name in os.listdir(folder) if name.endswith(ext)])
    except PermissionError:
        return []


def prepare(root: Path) -> Iterator[Record | Reject]:
    """Records of every clip of the first layout found (``genres/`` before the re-upload)."""
    found = _audio_dir(root)
    if found is None:
        raise InputError(f"{root}: neither genres/ nor genres_original/ holds genre "
                         "folders; pass the folder that contains one of them")
    audio_dir, ext = found
    with os.scandir(audio_dir) as entries:  # (the folders iterdir() gives that are dirs)
        genres = sorted(e.name for e in entries if e.is_dir())
    for genre in genres:
        folder = Folder(audio_dir / genre, root)
        audio_at, source_at = folder.audio(""), folder.source("")
        for name in _clip_names(folder.path, ext):
            checked = _check(folder, name, genre)
            if isinstance(checked, Reject):
                yield checked
                continue
            split, key = checked
            yield Record(INFO.name, split, key, audio_at + name, source_at + name, "unknown",
                         (_LABELS[genre],))


# ------------------------------------------------------------------ sample corpus
SAMPLE_CLIPS = {
    "train": ["blues.00029", "classical.00030", "country.00019", "disco.00005", "hiphop.00002",
              "jazz.00000", "metal.00002", "pop.00002", "reggae.00000", "rock.00000"],
    "valid": ["blues.00000", "jazz.00002"],
    "test": ["metal.00012", "pop.00000"],
}


def make_sample(target: Path) -> Path:
    """Write a small GTZAN in the original ``genres/`` layout (30.05 s ``.au`` clips)."""
    root = Path(target)
    rng = np.random.default_rng(22050)
    for names in SAMPLE_CLIPS.values():
        for clip in names:
            genre = clip.split(".")[0]
            (root / "genres" / genre).mkdir(parents=True, exist_ok=True)
            sf.write(root / "genres" / genre / f"{clip}.au", genre_clip(genre, rng), 22050,
                     format="AU", subtype="PCM_16")
    return root


RECIPE = Recipe(info=INFO, locate=locate, prepare=prepare, make_sample=make_sample,
                download=DOWNLOADS)
