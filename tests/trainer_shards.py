"""Build small shard sets in the released shard format for the trainer's tests.

Plain ``tarfile`` + ``soundfile``: ``<recipe>-<split>-%06d.tar`` shards of ``<key>.flac`` +
``<key>.json``, an ``index.json`` (wids-shard-index-v1) per set and a ``mixture.json``.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline.tags import aac_prompt, asr_prompt, srwt_prompt, time_token

WORDS = ["MISTER", "QUILTER", "IS", "THE", "APOSTLE", "OF", "MIDDLE", "CLASSES", "AND", "WE"]
CAPTIONS = ["a dog barks", "rain falls on a roof", "birds sing in a park", "a car passes by"]


def _flac(seconds: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    x = 0.3 * np.sin(2 * np.pi * (200 + 40 * seed) * t) + 0.01 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    sf.write(buf, (x * 32767).astype(np.int16), 16000, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """A tar of the given ``(name, data)`` regular-file members, in order."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def sample_members(key: str, seconds: float = 0.5) -> list[tuple[str, bytes]]:
    """``<key>.flac`` + ``<key>.json`` of one ASR sample."""
    meta = {"format_version": 1, "key": key, "tasks": speech_tasks(0, seconds),
            "duration": seconds, "language": "en", "sample_rate": 16000,
            "source": {"recipe": "raw", "split": "train", "file": f"{key}.wav"}}
    return [(f"{key}.flac", _flac(seconds, 0)), (f"{key}.json", json.dumps(meta).encode())]


def speech_tasks(i: int, duration: float) -> list[dict[str, str]]:
    """ASR + SRWT entries of a fake utterance ``i``."""
    words = [WORDS[(i + j) % len(WORDS)] for j in range(2 + i % 3)]
    step = duration / len(words)
    timed = "".join(  # continues the SRWT prompt's <|0.00|>
        f"{w}{time_token((j + 1) * step)}" for j, w in enumerate(words)
    )
    return [
        {"task": "asr", "prompt": asr_prompt("en"), "target": " ".join(words)},
        {"task": "srwt", "prompt": srwt_prompt("en"), "target": timed},
    ]


def caption_tasks(i: int) -> list[dict[str, str]]:
    """Two AAC entries of a fake sound clip ``i`` (a clip may carry several captions)."""
    return [
        {"task": "aac", "prompt": aac_prompt(), "target": CAPTIONS[(i + k) % len(CAPTIONS)]}
        for k in range(2)
    ]


def write_set(
    root: Path, recipe: str, splits: dict[str, list[int]], kind: str = "speech"
) -> Path:
    """Write one shard set; ``splits`` maps split -> samples per shard. Returns index.json."""
    out = root / recipe
    out.mkdir(parents=True, exist_ok=True)
    shardlist = []
    n = 0
    for split, sizes in splits.items():
        for s, size in enumerate(sizes):
            name = f"{recipe}-{split}-{s:06d}.tar"
            with tarfile.open(out / name, "w") as tar:
                for _ in range(size):
                    dur = round(0.5 + (n * 0.37) % 2.5, 2)
                    key = f"{recipe}_{split}_{n:04d}"
                    tasks = speech_tasks(n, dur) if kind == "speech" else caption_tasks(n)
                    meta = {"format_version": 1, "key": key, "tasks": tasks, "duration": dur,
                            "language": "en" if kind == "speech" else "unknown",
                            "sample_rate": 16000,
                            "source": {"recipe": recipe, "split": split, "file": f"{key}.wav"}}
                    for ext, data in (("flac", _flac(dur, n)), ("json", json.dumps(meta).encode())):
                        info = tarfile.TarInfo(f"{key}.{ext}")
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
                    n += 1
            data = (out / name).read_bytes()
            shardlist.append({"url": name, "nsamples": size, "filesize": len(data),
                              "md5sum": hashlib.md5(data).hexdigest(), "split": split})
    index = {"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": recipe,
             "format_version": 1, "shardlist": shardlist}
    (out / "index.json").write_text(json.dumps(index))
    return out / "index.json"


def write_mixture(
    root: Path, train: tuple[int, ...] = (6, 4), valid: tuple[int, ...] = (3,)
) -> Path:
    """A speech set (asr, srwt) and a sound set (aac) plus ``mixture.json``."""
    write_set(root, "speechy", {"train": list(train), "dev": list(valid)}, "speech")
    write_set(root, "soundy", {"development": list(train), "validation": list(valid)}, "sound")
    mix = {
        "format_version": 1,
        "sets": [
            {"name": "speechy", "index": "speechy/index.json",
             "splits": {"train": {"role": "train", "tasks": {"asr": {}, "srwt": {}}},
                        "dev": {"role": "valid", "tasks": {"asr": {}, "srwt": {}}}}},
            {"name": "soundy", "index": "soundy/index.json",
             "splits": {"development": {"role": "train", "tasks": {"aac": {}}},
                        "validation": {"role": "valid", "tasks": {"aac": {}}}}},
        ],
        "task_weights": {"asr": 0.4, "srwt": 0.3, "aac": 0.3},
    }
    (root / "mixture.json").write_text(json.dumps(mix))
    return root / "mixture.json"
