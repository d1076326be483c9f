"""Read shard sets: ``index.json`` files, the mixture file, and samples from tar shards.

Shards are WebDataset tars (``<key>.flac`` + ``<key>.json``), read with the ``webdataset``
library's tar iteration (``webdataset.tariterators``: stream the tar, group members into
samples by key).  Only ``flac`` and ``json`` members are ever read; anything else (a
``.pyd`` pickle, a ``.npy``) is skipped by the member filter before its bytes are read,
and nothing is decoded except the JSON and, when its batch is decoded, the FLAC.  A
sample whose members are not exactly ``<key>.flac`` + ``<key>.json`` (a key with a dot
shows up as an extension such as ``b.flac``), a key outside ``[A-Za-z0-9_-]`` or a key
repeated in a shard is refused with an error naming the shard and the key.

FLAC bytes stay undecoded in an :class:`AudioRef` until a batch is decoded; metadata-only
reads (task discovery, tokenizer texts, evaluation plans) drop them as they stream by.
"""

from __future__ import annotations

import functools
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf
from webdataset import tariterators

from pipeline.mixture import load_mixture
from pipeline.record import KEY_RE

INDEX_KIND = "wids-shard-index-v1"
ROLES = ("train", "valid", "test")
MEMBERS = ("flac", "json")  # the members of a sample, and the only ones ever read


@dataclass(frozen=True)
class AudioRef:
    """One sample's FLAC: the shard and key it comes from and, once read, its bytes.

    ``data`` is ``None`` for metadata-only pairs (planning); decoding waits for
    :meth:`read`, called when the pair's batch is decoded.
    """

    path: str
    key: str
    data: bytes | None = field(default=None, repr=False)

    def read(self) -> np.ndarray:
        """Decode to float32 mono samples at 16 kHz."""
        if self.data is None:
            raise RuntimeError(
                f"{self.path}: the FLAC bytes of {self.key!r} were not loaded "
                "(a metadata-only pair; read it with read_shard or load_audio)"
            )
        audio, sr = sf.read(io.BytesIO(self.data), dtype="float32")
        if sr != 16000:
            raise ValueError(f"{self.path}: sample {self.key!r} has {sr} Hz, not 16000")
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
    mix = load_mixture(path)  # checks the format version and that every index exists
    by_role: dict[str, list[Shard]] = {r: [] for r in ROLES}
    for entry in mix["sets"]:
        roles = {split: info["role"] for split, info in entry["splits"].items()}
        tasks = {split: frozenset(info.get("tasks", {})) for split, info in entry["splits"].items()}
        bad = sorted(set(roles.values()) - set(ROLES))
        if bad:
            raise ValueError(f"{path}: set {entry['name']}: unknown roles {bad}; use {ROLES}")
        for shard in read_index(entry["index"], entry["name"]):
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


def _flac_or_json(name: str) -> bool:
    """Member filter of the tar iteration: other members are skipped unread."""
    return name.endswith((".flac", ".json"))


def _samples(path: str, stream: BinaryIO) -> Iterator[dict[str, Any]]:
    """The tar's members grouped by key (``webdataset`` tar iteration, flac/json only)."""
    files = tariterators.tar_file_expander(
        [{"url": path, "stream": stream}], select_files=_flac_or_json
    )
    try:
        yield from tariterators.group_by_keys(files, lcase=False)
    except (ValueError, tarfile.TarError) as exn:  # a member twice, a damaged tar
        raise ValueError(f"{path}: {exn.args[0] if exn.args else exn}") from exn


def read_shard(path: str) -> Iterator[tuple[str, dict[str, Any], AudioRef]]:
    """``(key, meta, audio)`` of every sample of a shard, in tar order, streamed.

    ``audio`` holds the sample's FLAC bytes, undecoded.  The shard is read with
    ``webdataset.tariterators`` (one sequential pass; no byte offsets, no extraction).
    Raises ``ValueError`` naming the shard and the key for a sample that is not exactly
    ``<key>.flac`` + ``<key>.json``, a key outside ``[A-Za-z0-9_-]`` (a dot included) or
    a key repeated in the shard.
    """
    seen: set[str] = set()
    with open(path, "rb") as stream:
        for sample in _samples(path, stream):
            key = sample["__key__"]
            members = tuple(sorted(k for k in sample if not k.startswith("__")))
            if members != MEMBERS:
                raise ValueError(
                    f"{path}: sample {key!r} has members {list(members)}; a sample is "
                    "exactly <key>.flac + <key>.json, adjacent, and a key has no dot"
                )
            if not KEY_RE.fullmatch(key):
                raise ValueError(f"{path}: sample key {key!r} is not [A-Za-z0-9_-]+")
            if key in seen:
                raise ValueError(f"{path}: sample key {key!r} appears twice in the shard")
            seen.add(key)
            yield key, json.loads(sample["json"]), AudioRef(path, key, sample["flac"])


def read_metadata(path: str) -> tuple[tuple[str, dict[str, Any]], ...]:
    """``(key, meta)`` of every sample of a shard (FLAC bytes dropped as they stream by).

    Cached per process (task discovery, tokenizer texts and evaluation plans come back to
    the same shards); a shard rewritten since (a rebuild) is read again.
    """
    st = Path(path).stat()
    return _read_metadata(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _read_metadata(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, dict[str, Any]], ...]:
    return tuple((key, meta) for key, meta, _ in read_shard(path))


def entries_of(
    key: str, meta: dict[str, Any], audio: AudioRef, set_name: str,
    tasks: frozenset[str] | None = None,
) -> list[Pair]:
    """The (clip, task entry) pairs of one sample, optionally only for ``tasks``."""
    duration = float(meta["duration"])
    return [
        Pair(key, e["task"], e["prompt"], e["target"], duration, audio, set_name)
        for e in meta.get("tasks", [])
        if tasks is None or e["task"] in tasks
    ]


def pairs_of(
    shard: Shard, tasks: frozenset[str] | None = None, audio: bool = True
) -> list[Pair]:
    """Every (clip, task entry) pair of a shard, optionally only for ``tasks``.

    ``audio=False`` gives metadata-only pairs (no FLAC bytes held; see :func:`load_audio`).
    """
    out: list[Pair] = []
    if audio:
        for key, meta, ref in read_shard(shard.path):
            out += entries_of(key, meta, ref, shard.set_name, tasks)
    else:
        for key, meta in read_metadata(shard.path):
            out += entries_of(key, meta, AudioRef(shard.path, key), shard.set_name, tasks)
    return out


def load_audio(wanted: set[tuple[str, str]]) -> dict[tuple[str, str], AudioRef]:
    """The FLAC bytes of the ``(shard path, key)`` samples in ``wanted`` (others dropped)."""
    out: dict[tuple[str, str], AudioRef] = {}
    for path in sorted({p for p, _ in wanted}):
        for key, _, ref in read_shard(path):
            if (path, key) in wanted:
                out[path, key] = ref
    missing = sorted(wanted - set(out))
    if missing:
        raise ValueError(f"samples not found in their shards (rebuilt since?): {missing[:3]}")
    return out
