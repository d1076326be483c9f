"""MusicCaps (music captioning, 5,521 ten-second clips, task ``mc``).

Google distributes only the label file (Kaggle ``googleai/musiccaps``, or Hugging Face
``google/MusicCaps``); the audio is cut by the user from the YouTube videos.  Expected
layout of the corpus folder::

    musiccaps-public.csv   ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,
                           author_id,is_balanced_subset,is_audioset_eval
    audio/<ytid>.<ext>     the 10 s segment start_s..end_s of https://youtu.be/<ytid>,
                           <ext> among wav, flac, mp3, ogg, opus, m4a, webm
                           (a leading ``Y``, as some downloaders write, is accepted too)

One row: ``-0Gj8-vB1q4,30,40,"/m/0140xf,/m/02cjck,/m/04rlf","['low quality', ...]","The low
quality recording features a ballad song ...",4,False,True``

Prompt: no released MusicCaps prompt; music captions use the closest existing output
instruction, ``<|music_description|>`` (documented choice of
:func:`pipeline.tags.music_caption_prompt`).  Target: the caption, whitespace collapsed.
Splits from ``is_audioset_eval``: ``eval`` (True, role test) and ``train`` (False).
Clips that are missing (videos taken down are common) are rejects, counted in the report,
never fatal.  A clip must already be the cut segment: longer audio is rejected by the
build (long_audio=reject), because the caption describes only those 10 s.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from dataset_recipes.common import find_root, read_csv_rows, rel
from pipeline.recipe import CorpusInfo, Recipe
from pipeline.record import Label, Record, Reject, sanitize_key

SPLITS = {"train": "train", "eval": "test"}
CSV_NAME = "musiccaps-public.csv"
COLUMNS = ("ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption",
           "author_id", "is_balanced_subset", "is_audioset_eval")
#: Audio file extensions accepted for user-cut clips, in lookup order.
CLIP_EXTS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm")

INFO = CorpusInfo(
    name="musiccaps",
    title="MusicCaps",
    homepage="https://www.kaggle.com/datasets/googleai/musiccaps",
    licence="CC BY-SA 4.0 (captions); the audio belongs to the YouTube uploaders",
    citation="""@article{agostinelli2023musiclm,
  title={MusicLM: Generating Music From Text}, author={Agostinelli, Andrea and Denk, Timo I.
  and Borsos, Zal{\\'a}n and Engel, Jesse and Verzetti, Mauro and Caillon, Antoine and
  Huang, Qingqing and Jansen, Aren and Roberts, Adam and Tagliasacchi, Marco and others},
  journal={arXiv preprint arXiv:2301.11325}, year={2023}}""",
    tasks=("mc",),
    splits=SPLITS,
    layout=f"  {CSV_NAME} ({','.join(COLUMNS)})\n"
    "  audio/<ytid>.wav (or .flac/.mp3/.ogg/.opus/.m4a/.webm): the cut segment start_s..end_s",
    download_hint=f"by hand: get {CSV_NAME} from Kaggle (googleai/musiccaps) into RAW, then for "
    "each row cut start_s..end_s of https://youtu.be/<ytid> into RAW/audio/<ytid>.wav, e.g. "
    "yt-dlp -x -o full.wav ... && ffmpeg -ss <start_s> -to <end_s> -i full.wav <ytid>.wav",
    notes="Task mc uses <|music_description|> (documented choice: no released MusicCaps "
    "prompt). Target = caption. Splits from is_audioset_eval (eval = test). Audio is cut by "
    "the user: audio/<ytid>.<ext>; missing clips are rejects. The sample corpus's captions "
    "describe synthetic music generated for it.",
)


def find_clip(audio_dir: Path, ytid: str) -> Path | None:
    """The user-cut clip of ``ytid`` in ``audio_dir`` (``<ytid>.<ext>`` or ``Y<ytid>.<ext>``)."""
    for stem in (ytid, f"Y{ytid}"):
        for ext in CLIP_EXTS:
            path = audio_dir / f"{stem}{ext}"
            if path.is_file():
                return path
    return None


def unlisted_clips(audio_dir: Path, listed: set[str], root: Path, recipe: str, split: str,
                   label_file: str) -> Iterable[Reject]:
    """Rejects for clips in ``audio_dir`` whose id is in no row of ``label_file``."""
    if not audio_dir.is_dir():
        return
    for path in sorted(audio_dir.iterdir()):
        if path.suffix.lower() not in CLIP_EXTS:
            continue
        stem = path.stem
        if stem not in listed and not (stem.startswith("Y") and stem[1:] in listed):
            yield Reject(recipe, split, rel(path, root), f"clip has no row in {label_file}")


def _is_root(path: Path) -> bool:
    return (path / CSV_NAME).is_file()


def locate(raw: Path) -> Path:
    """The folder holding ``musiccaps-public.csv``: ``raw`` or a direct child of it."""
    return find_root(raw, INFO, _is_root, ("musiccaps", "MusicCaps"))


def prepare(root: Path) -> Iterator[Record | Reject]:
    """One record per row whose clip is present; missing clips are rejects."""
    csv_path, audio_dir = root / CSV_NAME, root / "audio"
    listed: set[str] = set()
    for item in read_csv_rows(csv_path, root, INFO.name, "unknown",
                              ("ytid", "caption", "is_audioset_eval")):
        if isinstance(item, Reject):
            yield item
            continue
        line, row = item
        ytid, flag = row["ytid"].strip(), row["is_audioset_eval"].strip()
        listed.add(ytid)
        if flag not in ("True", "False"):
            yield Reject(INFO.name, "unknown", rel(csv_path, root),
                         f"is_audioset_eval is {flag!r}, not True or False", line=line)
            continue
        split = "eval" if flag == "True" else "train"
        clip = find_clip(audio_dir, ytid)
        if clip is None:
            yield Reject(INFO.name, split, rel(audio_dir / f"{ytid}.wav", root),
                         f"clip missing (row {line} of {CSV_NAME}): cut {row['start_s']}-"
                         f"{row['end_s']} s of https://youtu.be/{ytid}", line=line)
            continue
        caption = " ".join(row["caption"].split())
        yield Record(INFO.name, split, sanitize_key(ytid), str(clip), rel(clip, root), "unknown",
                     (Label.make("mc", caption),),
                     meta=(("start_s", row["start_s"]), ("end_s", row["end_s"])))
    yield from unlisted_clips(audio_dir, listed, root, INFO.name, "unknown", CSV_NAME)


# ------------------------------------------------------------------ sample corpus
def synth_music(style: str, rng: np.random.Generator, seconds: float = 10.0,
                sr: int = 16000) -> np.ndarray:
    """Ten seconds of synthetic music in one of three styles the sample captions describe."""
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros(len(t))
    if style == "calm":  # slow pure-tone melody in C major, no drums
        notes = [261.6, 293.7, 329.6, 392.0, 440.0, 392.0, 329.6, 293.7]
        step = 60 / 70
        for k, start in enumerate(np.arange(0, seconds, step)):
            i, n = int(start * sr), int(step * sr)
            tt = t[:min(n, len(t) - i)]
            x[i:i + len(tt)] += np.sin(2 * np.pi * notes[k % 8] * tt) * np.exp(-tt * 1.5)
        return (0.4 * x).astype(np.float32)
    if style == "upbeat":  # buzzy saw arpeggio over a kick drum on every beat, 128 bpm
        step = 60 / 128 / 2
        notes = [220.0, 277.2, 329.6, 440.0]
        for k, start in enumerate(np.arange(0, seconds, step)):
            i, n = int(start * sr), int(step * sr)
            tt = t[:min(n, len(t) - i)]
            x[i:i + len(tt)] += 0.3 * (2 * ((notes[k % 4] * tt) % 1) - 1) * np.exp(-tt * 4)
            if k % 2 == 0:
                x[i:i + len(tt)] += 0.7 * np.sin(2 * np.pi * 55 * tt) * np.exp(-tt * 25)
        return np.clip(0.6 * x, -1, 1).astype(np.float32)
    if style == "drone":  # low sustained drone with a bell every 2.5 s
        x += 0.3 * np.sin(2 * np.pi * 65.4 * t) + 0.15 * np.sin(2 * np.pi * 98.0 * t)
        for start in np.arange(0.5, seconds, 2.5):
            i = int(start * sr)
            tt = t[: len(t) - i]
            x[i:] += 0.3 * (np.sin(2 * np.pi * 880 * tt) + 0.4 * np.sin(2 * np.pi * 2370 * tt)) \
                * np.exp(-tt * 1.2)
        return (x / np.abs(x).max() * 0.6 + 0.005 * rng.standard_normal(len(t))).astype(
            np.float32)
    raise ValueError(f"no sample music style {style!r}")


SAMPLE_CAPTIONS = {
    "calm": "A slow and calm instrumental melody played with soft, pure electronic tones in a "
    "major key. There are no drums. The mood is peaceful and simple.",
    "upbeat": "An upbeat electronic dance track with a buzzy synthesizer arpeggio and a "
    "punchy kick drum on every beat. The tempo is fast and energetic.",
    "drone": "An ambient piece built on a low sustained drone, with bright bell-like tones "
    "ringing out every few seconds. The mood is meditative and spacious.",
}
_SAMPLE_ROWS = [("smpl-calm01", "calm", "False"), ("smpl-upbt01", "upbeat", "False"),
                ("smpl-dron01", "drone", "False"), ("smpl-calm02", "calm", "True"),
                ("smpl-upbt02", "upbeat", "True")]


def make_sample(target: Path) -> Path:
    """Write a small MusicCaps corpus: the CSV and five cut clips of synthetic music."""
    root = Path(target)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5521)
    rows = []
    for i, (ytid, style, is_eval) in enumerate(_SAMPLE_ROWS):
        ext = ".flac" if i % 2 else ".wav"
        sf.write(root / "audio" / f"{ytid}{ext}", synth_music(style, rng), 16000,
                 subtype="PCM_16")
        rows.append([ytid, 30, 40, "/m/04rlf", f"['{style}', 'synthesizer']",
                     SAMPLE_CAPTIONS[style], 0, "False", is_eval])
    with open(root / CSV_NAME, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([list(COLUMNS), *rows])
    return root


RECIPE = Recipe(info=INFO, locate=locate, prepare=prepare, make_sample=make_sample)
