"""Read shard sets: ``index.json`` files, the mixture file, and samples from tar shards.

Shards are WebDataset tars (``<key>.flac`` + ``<key>.json``).  Reading is lazy: the tar
headers and the small ``json`` members are read, and each ``flac`` member is kept as an
:class:`AudioRef` (file, offset, size) that is read only when its batch is decoded, so a
data-loader worker can walk a whole stream cheaply and decode only its own batches.
Only ``flac`` and ``json`` members are ever read; anything else (a ``.pyd`` pickle, a
``.npy``) is ignored, never unpickled.
"""

from __future__ import annotations

import functools
import io
import json
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

INDEX_KIND = "wids-shard-index-v1"
ROLES = ("train", "valid", "test")


@dataclass(frozen=True)
class AudioRef:
    """Where the FLAC bytes of one sample lie inside its shard."""

    path: str
    offset: int
    size: int

    def read(self) -> np.ndarray:
        """Decode to float32 mono samples at 16 kHz."""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(self.size)
        audio, sr = sf.read(io.BytesIO(data), dtype="float32")
        if sr != 16000:
            raise ValueError(f"{self.path}: sample at byte {self.offset} has {sr} Hz, not 16000")
        return audio if audio.ndim == 1 else audio.mean(axis=1)


@dataclass(frozen=True)
class Shard:
    """One tar shard of a set, with the split's role (train/valid/test)."""

    path: str
    nsamples: int
    split: str
    set_name: str
    tasks: frozenset[str] = frozenset()  # from the mixture; empty when unknown


@dataclass(frozen=True)
class Pair:
    """One training example: a clip and one of its task entries."""

    key: str
    task: str
    prompt: str
    target: str
    duration: float
    audio: AudioRef
    set_name: str


def read_index(path: str | Path, set_name: str | None = None) -> list[Shard]:
    """Shards listed by an ``index.json`` (paths resolved against the index's folder)."""
    path = Path(path)
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"shard index not found: {path}; build the shards first (make demo)"
        ) from None
    if index.get("__kind__") != INDEX_KIND:
        raise ValueError(f"{path}: not a shard index (__kind__ must be {INDEX_KIND!r})")
    name = set_name or index.get("name") or path.parent.name
    return [
        Shard(str(path.parent / s["url"]), int(s["nsamples"]), str(s["split"]), name)
        for s in index["shardlist"]
    ]


def read_mixture(path: str | Path) -> dict[str, Any]:
    """The build's ``mixture.json``: shard sets with split roles, and task weights.

    Returns ``{"shards": {role: [Shard, ...]}, "task_weights": {task: w}}``.
    """
    path = Path(path)
    try:
        mix = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"mixture file not found: {path}; run `make demo` or "
            "`make build-dataset RECIPE=all` to build the shards and the mixture"
        ) from None
    by_role: dict[str, list[Shard]] = {r: [] for r in ROLES}
    for entry in mix["sets"]:
        roles = {split: info["role"] for split, info in entry["splits"].items()}
        tasks = {split: frozenset(info.get("tasks", {})) for split, info in entry["splits"].items()}
        bad = sorted(set(roles.values()) - set(ROLES))
        if bad:
            raise ValueError(f"{path}: set {entry['name']}: unknown roles {bad}; use {ROLES}")
        for shard in read_index(path.parent / entry["index"], entry["name"]):
            if shard.split in roles:
                by_role[roles[shard.split]].append(replace(shard, tasks=tasks[shard.split]))
    weights = {str(t): float(w) for t, w in mix.get("task_weights", {}).items()}
    return {"shards": by_role, "task_weights": weights}


def select_shards(
    indexes: list[str | Path], splits: dict[str, list[str]]
) -> dict[str, list[Shard]]:
    """Shards of explicit index files, grouped by role: ``splits`` maps role -> split names."""
    by_role: dict[str, list[Shard]] = {r: [] for r in ROLES}
    for index in indexes:
        for shard in read_index(index):
            for role, names in splits.items():
                if shard.split in names:
                    by_role[role].append(shard)
    return by_role


def read_shard(path: str) -> tuple[tuple[str, dict[str, Any], AudioRef], ...]:
    """``(key, meta, audio)`` of every complete sample of a shard, in tar order.

    Cached per process (resampled streams come back to the same shards often); a shard
    rewritten since (a rebuild) is read again.
    """
    st = Path(path).stat()
    return _read_shard(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _read_shard(
    path: str, mtime_ns: int, size: int
) -> tuple[tuple[str, dict[str, Any], AudioRef], ...]:
    metas: dict[str, dict[str, Any]] = {}
    refs: dict[str, AudioRef] = {}
    order: list[str] = []
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = Path(member.name).name
            key, _, ext = name.partition(".")
            if ext not in ("json", "flac"):
                continue  # never decode anything else (pickles included)
            if key not in metas and key not in refs:
                order.append(key)
            if ext == "json":
                f = tar.extractfile(member)
                assert f is not None  # a regular file member always has data
                metas[key] = json.loads(f.read())
            else:
                refs[key] = AudioRef(path, member.offset_data, member.size)
    return tuple((k, metas[k], refs[k]) for k in order if k in metas and k in refs)


def pairs_of(shard: Shard, tasks: frozenset[str] | None = None) -> list[Pair]:
    """Every (clip, task entry) pair of a shard, optionally only for ``tasks``."""
    out = []
    for key, meta, ref in read_shard(shard.path):
        for entry in meta.get("tasks", []):
            if tasks is None or entry["task"] in tasks:
                out.append(
                    Pair(key, entry["task"], entry["prompt"], entry["target"],
                         float(meta["duration"]), ref, shard.set_name)
                )
    return out
