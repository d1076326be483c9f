"""AudioSet (sound event classification, 527 classes, task ``sec``).

Google distributes the segment lists and the label names
(research.google.com/audioset/download.html); the audio is cut by the user from the
YouTube videos.  Expected layout of the corpus folder::

    {balanced_train,unbalanced_train,eval}_segments.csv
        3 comment lines starting with '#', then  YTID, start_seconds, end_seconds, "MIDs"
    class_labels_indices.csv               index,mid,display_name
    audio/<split>/<ytid>.<ext>             the 10 s segment of https://youtu.be/<ytid>,
                                           <ext> among wav, flac, mp3, ogg, opus, m4a, webm
                                           (a leading ``Y``, as some downloaders write, too)

One segment line: ``--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"``

Prompt: no released AudioSet prompt; sound events use the closest existing output
instruction, ``<|event|>`` (documented choice of :func:`pipeline.tags.sec_prompt`).
Target: the display names of the segment's labels joined with ``", "`` in
``class_labels_indices.csv`` index order (so ``Speech`` (0) comes before ``Music`` (137)
whatever the order in the row).  Some display names contain a comma themselves
(``Male speech, man speaking``): a scorer must match the 527 names, not split on commas.
Splits: ``balanced_train`` and ``unbalanced_train`` (role train), ``eval`` (role test).
A split is built only when its folder ``audio/<split>/`` exists, so fetching just the
balanced set does not report two million missing unbalanced clips; inside a built split,
every missing clip is a reject, counted, never fatal.

The segment CSVs are ASCII; a line that is not UTF-8 is read as latin-1, which is safe
because its label MIDs are checked against ``class_labels_indices.csv`` and its YTID must
name a clip (a wrong byte makes a reject, never a wrong label).  The display names are
targets: a line of ``class_labels_indices.csv`` that is not UTF-8 stops the parse, naming
it.  Audio folders are listed once, so the two million unbalanced segments parse in
seconds.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from dataset_recipes.common import Clips, Folder, Rejects, find_root, read_csv_rows, rel, source_key
from dataset_recipes.samples.synth import audioset_clip
from dataset_recipes.textfiles import UTF8_OR_LATIN1, csv_records
from pipeline.errors import InputError
from pipeline.recipe import CorpusInfo, Recipe
from pipeline.record import Label, Record, Reject

SPLITS = {"balanced_train": "train", "unbalanced_train": "train", "eval": "test"}
LABELS_CSV = "class_labels_indices.csv"
BASE_URL = "http://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv/"

INFO = CorpusInfo(
    name="audioset",
    title="AudioSet",
    homepage="https://research.google.com/audioset/",
    licence="labels CC BY 4.0 (Google); the audio belongs to the YouTube uploaders",
    citation="""@inproceedings{gemmeke2017audio,
  title={Audio Set: An ontology and human-labeled dataset for audio events},
  author={Gemmeke, Jort F. and Ellis, Daniel P. W. and Freedman, Dylan and Jansen, Aren and
  Lawrence, Wade and Moore, R. Channing and Plakal, Manoj and Ritter, Marvin},
  booktitle={ICASSP}, pages={776--780}, year={2017}}""",
    tasks=("sec",),
    splits=SPLITS,
    layout="  {balanced_train,unbalanced_train,eval}_segments.csv and class_labels_indices.csv\n"
    "  audio/<split>/<ytid>.wav (or .flac/.mp3/...): the cut 10 s segment",
    download_hint=f"by hand: fetch {BASE_URL}{{eval,balanced_train,unbalanced_train}}"
    f"_segments.csv and {BASE_URL}{LABELS_CSV} into RAW, then cut each segment of "
    "https://youtu.be/<YTID> (start_seconds..end_seconds) into RAW/audio/<split>/<YTID>.wav",
    notes="Task sec uses <|event|> (documented choice: no released AudioSet prompt). Target = "
    "display names joined with ', ' in class_labels_indices.csv index order. A split is "
    "built only when audio/<split>/ exists; missing clips in it are rejects.",
)


def _is_root(path: Path) -> bool:
    return (path / LABELS_CSV).is_file() and any(
        (path / f"{s}_segments.csv").is_file() for s in SPLITS)


def locate(raw: Path) -> Path:
    """The folder holding the segment CSVs: ``raw`` or a direct child of it."""
    return find_root(raw, INFO, _is_root, ("audioset", "AudioSet"))


def read_labels(root: Path) -> dict[str, tuple[int, str]]:
    """``mid -> (index, display name)`` from ``class_labels_indices.csv``."""
    path, out = root / LABELS_CSV, {}
    for item in read_csv_rows(path, root, INFO.name, "", ("index", "mid", "display_name")):
        if isinstance(item, Reject) or not item[1]["index"].strip().isdigit():
            line = item.line if isinstance(item, Reject) else item[0]
            raise InputError(f"{path} line {line}: not 'index,mid,display_name'; "
                             "re-download the official file")
        _, row = item
        out[row["mid"].strip()] = (int(row["index"]), " ".join(row["display_name"].split()))
    return out


def _label(mids: str, labels: dict[str, tuple[int, str]]) -> Label | list[str]:
    """The ``sec`` label of a segment's MIDs, or the MIDs that are not in the label file."""
    ids = {m.strip() for m in mids.split(",")}
    unknown = sorted(m for m in ids if m not in labels)
    if unknown or not mids:
        return unknown
    names = [labels[m][1] for m in sorted(ids, key=lambda m: labels[m][0])]
    return Label.make("sec", ", ".join(names))


def _parse_split(root: Path, split: str, labels: dict[str, tuple[int, str]]
                 ) -> Iterator[Record | Reject]:
    path, audio_dir = root / f"{split}_segments.csv", root / "audio" / split
    src, clips, rejects = rel(path, root), Clips(audio_dir), Rejects(INFO.name, root)
    folder = Folder(audio_dir, root)
    listed: set[str] = set()
    made: dict[str, Label | list[str]] = {}  # label sets repeat across segments
    for line, fields, bad in csv_records(path, UTF8_OR_LATIN1, skipinitialspace=True):
        if fields and fields[0].startswith("#"):
            continue
        if bad is not None or len(fields) != 4 or not fields[0].strip():
            yield Reject(INFO.name, split, src, bad or f"malformed line: expected 4 fields "
                         f"(YTID, start, end, \"MIDs\"), found {len(fields)}", line=line)
            continue
        ytid, start, end, mids = [v.strip() for v in fields]
        listed.add(ytid)
        label = made.get(mids)
        if label is None:
            label = made[mids] = _label(mids, labels)
        if not isinstance(label, Label):
            yield Reject(INFO.name, split, src,
                         f"unknown label MID(s) {label} (not in {LABELS_CSV})", line=line)
            continue
        clip = clips.name(ytid)
        if clip is None:
            yield rejects.at(split, audio_dir / f"{ytid}.wav",
                             f"clip missing (line {line} of {path.name}): cut {start}-{end} s "
                             f"of https://youtu.be/{ytid}", line)
            continue
        yield Record(INFO.name, split, source_key(ytid), folder.audio(clip),
                     folder.source(clip), "unknown", (label,),
                     meta=(("start_s", start), ("end_s", end)), listing=src, line=line)
    yield from clips.unlisted(listed, rejects, split, path.name)


def prepare(root: Path) -> Iterator[Record | Reject]:
    """Records of every split whose segments file and ``audio/<split>/`` folder exist."""
    labels = read_labels(root)
    for split in SPLITS:
        if (root / f"{split}_segments.csv").is_file() and (root / "audio" / split).is_dir():
            yield from _parse_split(root, split, labels)


# ------------------------------------------------------------------ sample corpus
#: (index, mid, display name) of the real class_labels_indices.csv rows the sample uses.
_SAMPLE_CLASSES = [(0, "/m/09x0r", "Speech"), (137, "/m/04rlf", "Music"),
                   (481, "/m/02fs_r", "Beep, bleep"), (501, "/m/01v_m0", "Sine wave"),
                   (520, "/m/0chx_", "White noise")]


_SAMPLE_SEGMENTS = {
    "balanced_train": [("smpl-speech", "speech", "/m/09x0r"),
                       ("smpl-mixed1", "speech+music", "/m/04rlf,/m/09x0r"),
                       ("smpl-music1", "music", "/m/04rlf"),
                       ("smpl-beep01", "beep", "/m/02fs_r,/m/01v_m0")],
    "eval": [("smpl-noise1", "noise", "/m/0chx_"), ("smpl-beep02", "beep", "/m/02fs_r")],
}


def make_sample(target: Path) -> Path:
    """Write a small AudioSet folder: real label rows, segment lists, six cut clips."""
    root = Path(target)
    rng = np.random.default_rng(527)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LABELS_CSV, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(
            [["index", "mid", "display_name"], *_SAMPLE_CLASSES])
    for split, segments in _SAMPLE_SEGMENTS.items():
        (root / "audio" / split).mkdir(parents=True, exist_ok=True)
        lines = ["# Segments csv created for the qwen-audio-data sample corpus",
                 f"# num_ytids={len(segments)}, num_segs={len(segments)}",
                 "# YTID, start_seconds, end_seconds, positive_labels"]
        for ytid, kind, mids in segments:
            sf.write(root / "audio" / split / f"{ytid}.wav", audioset_clip(kind, rng), 16000,
                     subtype="PCM_16")
            lines.append(f'{ytid}, 30.000, 40.000, "{mids}"')
        (root / f"{split}_segments.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


RECIPE = Recipe(info=INFO, locate=locate, prepare=prepare, make_sample=make_sample)
