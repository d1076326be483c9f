"""Label files of any size in each corpus's own format, for the parse scale tests and
``bench/parse_scale.py``.

``WRITERS[recipe](raw, n)`` writes the label files of a corpus with ``n`` source items
(rows, entries or clips) under ``raw`` and returns ``raw``; every item is valid and names
its own audio file.  The audio is not written (a million empty files take longer to
create than to parse): :func:`audio_present` makes the recipes' folder listings report
every named file as present, so the parse runs its record path for every item.  Corpora
whose recipe reads the audio folders themselves (CochlScene, GTZAN) get real files.

Real sizes (:data:`REAL_SIZE`): the item counts of the full corpora, the sizes the
benchmark parses.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import soundfile as sf

#: Items of the full corpus: LibriSpeech 960 h + dev/test utterances, NSynth notes (all
#: splits), AudioSet segments (unbalanced), Common Voice / CoVoST rows, and the others.
REAL_SIZE = {
    "librispeech": 281_241, "nsynth": 305_979, "audioset": 2_041_789, "covost2": 300_000,
    "aishell1": 141_925, "clotho": 5_929, "clotho_aqa": 35_838, "cochlscene": 76_115,
    "esc50": 2_000, "gtzan": 1_000, "meld": 13_708, "musiccaps": 5_521, "tut2017": 6_300,
    "vocalsound": 21_024, "lhotse": 281_241, "manifest": 300_000,
}
#: Corpora whose writer writes the audio files too (the recipe reads the folders).
WRITES_AUDIO = frozenset({"cochlscene", "gtzan"})
_WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "near", "river")


class _Everything(frozenset):  # type: ignore[type-arg]
    """A folder listing that holds every name (and iterates as empty: no unlisted files)."""

    def __contains__(self, name: object) -> bool:
        return True


@contextlib.contextmanager
def audio_present(listings: dict[Path, set[str]] | None = None) -> Iterator[None]:
    """While active, every recipe's folder listing (``file_names``) is ``listings[folder]``
    where given, and otherwise holds every name."""
    import dataset_recipes.common as common

    everything, listings = _Everything(), listings or {}
    with contextlib.ExitStack() as stack:
        for name, module in list(sys.modules.items()):
            if name.startswith("dataset_recipes") and hasattr(module, "file_names"):
                stack.enter_context(mock.patch.object(
                    module, "file_names", lambda folder: listings.get(folder, everything)))
        stack.enter_context(mock.patch.object(
            common.Clips, "name", lambda self, clip_id: f"{clip_id}.wav"))
        yield


def listing(name: str, raw: Path, n: int) -> contextlib.AbstractContextManager[None]:
    """The folder listings to parse the corpus ``WRITERS[name](raw, n)`` wrote under:
    the real folders for the corpora written with their audio files
    (:data:`WRITES_AUDIO`), :func:`audio_present` for the others."""
    if name in WRITES_AUDIO:
        return contextlib.nullcontext()
    return audio_present(aishell1_listings(raw, n) if name == "aishell1" else None)


def _text(i: int, words: int = 12) -> str:
    return " ".join(_WORDS[(i * 7 + k * 3) % len(_WORDS)] for k in range(words))


def _csv(path: Path, header: list[str], rows: Iterator[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def librispeech(raw: Path, n: int) -> Path:
    """``n`` utterances in chapters of 100, in ``train-clean-100``."""
    split = raw / "LibriSpeech" / "train-clean-100"
    for c in range(0, n, 100):
        spk, chap = 1000 + c // 2000, c // 100
        folder = split / str(spk) / str(chap)
        folder.mkdir(parents=True, exist_ok=True)
        lines = [f"{spk}-{chap}-{u:04d} {_text(c + u).upper()}\n" for u in range(min(100, n - c))]
        (folder / f"{spk}-{chap}.trans.txt").write_text("".join(lines), encoding="utf-8")
    return raw


def aishell1_listings(raw: Path, n: int) -> dict[Path, set[str]]:
    """The wav names of each speaker folder of :func:`aishell1` (for :func:`audio_present`:
    the recipe learns each utterance's split from the folder its audio is in)."""
    out: dict[Path, set[str]] = {}
    for i in range(n):
        spk = f"S{i % 400:04d}"
        out.setdefault(raw / "data_aishell" / "wav" / "train" / spk, set()).add(
            f"BAC009{spk}W{i // 400:04d}.wav")
    return out


def aishell1(raw: Path, n: int) -> Path:
    """``n`` transcript lines over 400 speakers; speaker folders exist (empty; see
    :func:`aishell1_listings`)."""
    root = raw / "data_aishell"
    lines = []
    for i in range(n):
        spk = f"S{i % 400:04d}"
        lines.append(f"BAC009{spk}W{i // 400:04d} 而 对 楼市 成交 抑制 作用 最 大 的 限 购\n")
    for s in range(400):
        (root / "wav" / "train" / f"S{s:04d}").mkdir(parents=True, exist_ok=True)
    (root / "transcript").mkdir(parents=True, exist_ok=True)
    (root / "transcript" / "aishell_transcript_v0.8.txt").write_text("".join(lines), "utf-8")
    return raw


def covost2(raw: Path, n: int) -> Path:
    """``n`` Common Voice v4 clips in ``validated.tsv`` and one CoVoST pair (en->de)."""
    root = raw / "cv-corpus-4" / "en"
    root.mkdir(parents=True, exist_ok=True)
    splits = ("train", "dev", "test")
    with open(root / "validated.tsv", "w", encoding="utf-8") as f:
        f.write("client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent\n")
        f.writelines(f"c{i % 997}\tcommon_voice_en_{i}.mp3\t{_text(i).capitalize()}.\t2\t0\t\t\t\n"
                     for i in range(n))
    with open(root / "covost_v2.en_de.tsv", "w", encoding="utf-8") as f:
        f.write("path\tsentence\ttranslation\tsplit\n")
        f.writelines(f"common_voice_en_{i}.mp3\t{_text(i)}\tDer Satz Nummer {i}.\t"
                     f"{splits[i % 3]}\n" for i in range(n))
    return raw


def meld(raw: Path, n: int) -> Path:
    """``n`` utterance rows in ``train_sent_emo.csv``; every tenth has a quoted line break."""
    root = raw / "MELD.Raw"
    emotions = ("neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust")
    _csv(root / "train_sent_emo.csv", ["Sr No.", "Utterance", "Speaker", "Emotion",
         "Sentiment", "Dialogue_ID", "Utterance_ID", "Season", "Episode", "StartTime",
         "EndTime"], ([i + 1, _text(i) + ("\nwell," if i % 10 == 0 else ", yes"), "Ross",
                       emotions[i % 7], "neutral", i // 10, i % 10, 1, 1, "00:16:16,059",
                       "00:16:21,731"] for i in range(n)))
    return raw


def vocalsound(raw: Path, n: int) -> Path:
    """``n`` entries in ``datafiles/tr.json`` (indented as released)."""
    root = raw / "vocalsound_16k"
    (root / "audio_16k").mkdir(parents=True, exist_ok=True)
    (root / "datafiles").mkdir(parents=True, exist_ok=True)
    data = [{"wav": f"/data/audio_16k/f{i // 6:04d}_{i % 6}_cough.wav", "labels": "/m/01b_21"}
            for i in range(n)]
    (root / "datafiles" / "tr.json").write_text(json.dumps({"data": data}, indent=1))
    return raw


def clotho(raw: Path, n: int) -> Path:
    """``n`` caption rows in ``clotho_captions_development.csv``."""
    _csv(raw / "clotho_captions_development.csv", ["file_name", *(f"caption_{i}" for i in
         range(1, 6))], ([f"Sound {i}.wav", *(_text(i + k) for k in range(5))]
                         for i in range(n)))
    (raw / "development").mkdir(exist_ok=True)
    return raw


def clotho_aqa(raw: Path, n: int) -> Path:
    """``n`` answer rows (three per question, six questions per clip)."""
    _csv(raw / "clotho_aqa_train.csv", ["file_name", "QuestionText", "answer", "confidence"],
         ([f"clip {i // 18}.wav", f"Is there a {_WORDS[i // 3 % 11]}?", "yes", "yes"]
          for i in range(n)))
    (raw / "audio_files").mkdir(exist_ok=True)
    return raw


def cochlscene(raw: Path, n: int) -> Path:
    """``n`` empty clip files in the 13 class folders of ``Train`` (real files: the recipe
    reads the folders, there is no label file)."""
    from dataset_recipes.cochlscene import CLASSES

    classes = list(CLASSES)
    for c in classes:
        (raw / "CochlScene" / "Train" / c).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cls = classes[i % 13]
        (raw / "CochlScene" / "Train" / cls / f"{cls}_{i}.wav").touch()
    return raw


def tut2017(raw: Path, n: int) -> Path:
    """``n`` development segments in ``meta.txt``, three quarters in fold 1 train."""
    from dataset_recipes.tut2017 import DEV, SCENES

    dev = raw / DEV
    (dev / "evaluation_setup").mkdir(parents=True, exist_ok=True)
    rows = [(f"audio/a{i // 30:03d}_{i % 30 * 10}_{i % 30 * 10 + 10}.wav", SCENES[i % 15])
            for i in range(n)]
    (dev / "meta.txt").write_text("".join(f"{a}\t{s}\tloc{i}\n" for i, (a, s) in
                                          enumerate(rows)), encoding="utf-8")
    for split, part in (("fold1_train", rows[: 3 * n // 4]), ("fold1_evaluate",
                                                               rows[3 * n // 4:])):
        (dev / "evaluation_setup" / f"{split}.txt").write_text(
            "".join(f"{a}\t{s}\n" for a, s in part), encoding="utf-8")
    return raw


def esc50(raw: Path, n: int) -> Path:
    """``n`` rows of ``meta/esc50.csv`` (40 per class, as released)."""
    from dataset_recipes.esc50 import CATEGORIES, COLUMNS

    _csv(raw / "ESC-50-master" / "meta" / "esc50.csv", list(COLUMNS),
         ([f"{i % 5 + 1}-{100000 + i}-A-{i % 50}.wav", i % 5 + 1, i % 50,
           CATEGORIES[i % 50], "False", 100000 + i, "A"] for i in range(n)))
    return raw


def audioset(raw: Path, n: int) -> Path:
    """``n`` segments in ``unbalanced_train_segments.csv`` over 527 classes."""
    mids = [f"/m/0{i:04x}" for i in range(527)]
    _csv(raw / "class_labels_indices.csv", ["index", "mid", "display_name"],
         ([i, mid, f"Class {i}, sound"] for i, mid in enumerate(mids)))
    (raw / "audio" / "unbalanced_train").mkdir(parents=True, exist_ok=True)
    with open(raw / "unbalanced_train_segments.csv", "w", encoding="utf-8") as f:
        f.write(f"# Segments csv created Sun Mar  5 10:54:25 2017\n# num_ytids={n}, "
                f"num_segs={n}, num_unique_labels=527, num_positive_labels={2 * n}\n"
                "# YTID, start_seconds, end_seconds, positive_labels\n")
        f.writelines(f'{i:011d}, 30.000, 40.000, "{mids[i % 527]},{mids[(i * 7) % 527]}"\n'
                     for i in range(n))
    return raw


def nsynth(raw: Path, n: int) -> Path:
    """``n`` notes in ``nsynth-train/examples.json``, every field as released, indented."""
    from dataset_recipes.nsynth import FAMILIES, QUALITIES

    table = {}
    for i in range(n):  # 128 pitches x 5 velocities per instrument, as released
        inst, pitch, velocity = i // 640, i % 128, (25, 50, 75, 100, 127)[i // 128 % 5]
        family = FAMILIES[inst % 11]
        key = f"{family}_acoustic_{inst:03d}-{pitch:03d}-{velocity:03d}"
        table[key] = {
            "note": i, "sample_rate": 16000, "pitch": pitch, "velocity": velocity,
            "instrument_str": f"{family}_acoustic_{inst:03d}", "instrument": inst,
            "instrument_source": 0, "note_str": key, "instrument_source_str": "acoustic",
            "instrument_family": inst % 11, "instrument_family_str": family,
            "qualities": [int(k == i % 10) for k in range(10)],
            "qualities_str": [QUALITIES[i % 10]],
        }
    (raw / "nsynth-train").mkdir(parents=True, exist_ok=True)
    (raw / "nsynth-train" / "examples.json").write_text(json.dumps(table, indent=4))
    return raw


def gtzan(raw: Path, n: int) -> Path:
    """``n`` (at most 1000) short real ``.au`` clips in the original ``genres/`` layout."""
    from dataset_recipes.gtzan import GENRES

    buf = io.BytesIO()
    sf.write(buf, np.zeros(64, np.int16), 22050, format="AU", subtype="PCM_16")
    for i in range(min(n, 1000)):
        genre = GENRES[i // 100]
        (raw / "genres" / genre).mkdir(parents=True, exist_ok=True)
        (raw / "genres" / genre / f"{genre}.{i % 100:05d}.au").write_bytes(buf.getvalue())
    return raw


def musiccaps(raw: Path, n: int) -> Path:
    """``n`` rows of ``musiccaps-public.csv``; captions span two lines now and then."""
    from dataset_recipes.musiccaps import COLUMNS

    _csv(raw / "musiccaps-public.csv", list(COLUMNS),
         ([f"y{i:010d}", 30, 40, "/m/04rlf", "['rock']",
           _text(i, 30) + ("\nA second line." if i % 7 == 0 else ""), 4, "False",
           str(i % 4 == 0)] for i in range(n)))
    (raw / "audio").mkdir(exist_ok=True)
    return raw


def lhotse(raw: Path, n: int) -> Path:
    """Lhotse manifests of ``n`` whole-recording supervisions (gzipped JSON lines)."""
    raw.mkdir(parents=True, exist_ok=True)
    with gzip.open(raw / "big_recordings_train.jsonl.gz", "wt", compresslevel=1) as f:
        f.writelines(json.dumps({"id": f"r{i}", "sources": [{"type": "file", "channels": [0],
                     "source": f"audio/r{i}.flac"}], "sampling_rate": 16000,
                     "num_samples": 80000, "duration": 5.0, "channel_ids": [0]}) + "\n"
                     for i in range(n))
    with gzip.open(raw / "big_supervisions_train.jsonl.gz", "wt", compresslevel=1) as f:
        f.writelines(json.dumps({"id": f"r{i}", "recording_id": f"r{i}", "start": 0.0,
                                 "duration": 5.0, "channel": 0, "text": _text(i).upper(),
                                 "language": "English", "speaker": str(i % 100)}) + "\n"
                     for i in range(n))
    return raw


def manifest(raw: Path, n: int) -> Path:
    """A ``manifest.jsonl`` of ``n`` ASR rows."""
    raw.mkdir(parents=True, exist_ok=True)
    with open(raw / "manifest.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"audio": f"clips/{i % 1000}/u{i}.wav", "task": "asr",
                                 "text": _text(i), "language": "en"}) + "\n" for i in range(n))
    return raw


def expected_records(name: str, n: int) -> int:
    """Records the recipe makes of the corpus ``WRITERS[name](raw, n)``: one per item, but
    one per clip for Clotho-AQA (18 answer rows each) and none for the GTZAN clips the
    fault-filtered split leaves out."""
    if name == "clotho_aqa":
        return -(-n // 18)
    if name == "gtzan":
        from dataset_recipes.gtzan import GENRES, SPLIT_OF

        return sum((GENRES[i // 100], i % 100) in SPLIT_OF for i in range(min(n, 1000)))
    return n


#: recipe name -> writer of a corpus with ``n`` items.
WRITERS: dict[str, Callable[[Path, int], Path]] = {
    "librispeech": librispeech, "aishell1": aishell1, "covost2": covost2, "meld": meld,
    "vocalsound": vocalsound, "clotho": clotho, "clotho_aqa": clotho_aqa,
    "cochlscene": cochlscene, "tut2017": tut2017, "esc50": esc50, "audioset": audioset,
    "nsynth": nsynth, "gtzan": gtzan, "musiccaps": musiccaps, "lhotse": lhotse,
    "manifest": manifest,
}
