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

The CSV is UTF-8 (captions are targets: a row that is not UTF-8 is a reject quoting the
bytes).  Captions may hold quoted line breaks: a row is reported at the line it starts on.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from dataset_recipes.common import Clips, Folder, Rejects, find_root, read_csv_rows, rel, source_key
from dataset_recipes.samples.synth import synth_music
from pipeline.recipe import CorpusInfo, Recipe
from pipeline.record import Label, Record, Reject

SPLITS = {"train": "train", "eval": "test"}
CSV_NAME = "musiccaps-public.csv"
COLUMNS = ("ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption",
           "author_id", "is_balanced_subset", "is_audioset_eval")

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


def _is_root(path: Path) -> bool:
    return (path / CSV_NAME).is_file()


def locate(raw: Path) -> Path:
    """The folder holding ``musiccaps-public.csv``: ``raw`` or a direct child of it."""
    return find_root(raw, INFO, _is_root, ("musiccaps", "MusicCaps"))


def prepare(root: Path) -> Iterator[Record | Reject]:
    """One record per row whose clip is present; missing clips are rejects."""
    csv_path = root / CSV_NAME
    src, clips, rejects = rel(csv_path, root), Clips(root / "audio"), Rejects(INFO.name, root)
    folder = Folder(root / "audio", root)
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
            yield Reject(INFO.name, "unknown", src,
                         f"is_audioset_eval is {flag!r}, not True or False", line=line)
            continue
        split = "eval" if flag == "True" else "train"
        clip = clips.name(ytid)
        if clip is None:
            yield rejects.at(split, root / "audio" / f"{ytid}.wav",
                             f"clip missing (line {line} of {CSV_NAME}): cut {row['start_s']}-"
                             f"{row['end_s']} s of https://youtu.be/{ytid}", line)
            continue
        caption = Label("mc", " ".join(row["caption"].split()))  # (Label.make's, no arguments)
        yield Record(INFO.name, split, source_key(ytid), folder.audio(clip), folder.source(clip),
                     "unknown", (caption,),
                     meta=(("start_s", row["start_s"]), ("end_s", row["end_s"])),
                     listing=src, line=line)
    yield from clips.unlisted(listed, rejects, "unknown", CSV_NAME)


# ------------------------------------------------------------------ sample corpus
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
