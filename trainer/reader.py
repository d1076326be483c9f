"""Read shard sets for training: ``index.json`` files, the mixture file, samples as pairs.

Every format rule comes from :mod:`pipeline.format`, the module that ``pipeline.reader``
and ``make verify`` use: one tar walker (:func:`pipeline.format.iter_raw`) that refuses
links, ``..``, absolute names, devices, oversized and unknown members (a ``.pyd`` pickle, a
``.npy``) before reading a byte of them; sample JSON checked against the format
(:func:`pipeline.format.parse_meta`: bad JSON, missing or unknown fields, a newer
``format_version``); an ``index.json`` whose kind, version or shard urls are wrong
(:func:`pipeline.format.load_index`); a shard that holds another number of samples than
its index says.  Every refusal is a :class:`~pipeline.format.FormatError` naming the shard
and the member or key, the same error ``pipeline.reader`` raises.

A refused shard fails the training run loudly: the error propagates out of the training
stream (and out of a data loader worker) instead of the shard being skipped, because a
silently skipped shard would change the task mixture without anyone noticing.  Run
``make verify OUT=<dir>`` to list every problem of a shard set at once.

What is the trainer's own sits on top: :class:`Pair` (one clip with one task entry),
FLAC bytes kept undecoded in an :class:`AudioRef` until a batch is decoded, and a
per-process cache of metadata-only reads (task discovery, tokenizer texts and
evaluation plans come back to the same shards).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.format import (
    AUDIO_EXT,
    INDEX_KIND,
    MEMBER_EXTS,
    META_EXT,
    FormatError,
    decode_flac,
    iter_raw,
    load_index,
    parse_meta,
)
from pipeline.mixture import load_mixture

ROLES = ("train", "valid", "test")
MEMBERS = MEMBER_EXTS  # the members of a sample, and the only ones accepted
__all__ = [
    "INDEX_KIND", "MEMBERS", "ROLES", "AudioRef", "FormatError", "Pair", "Shard",
    "entries_of", "load_audio", "pairs_of", "read_index", "read_metadata", "read_mixture",
    "read_shard", "select_shards",
]


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
        """Decode to float32 mono samples at 16 kHz (:class:`FormatError` for anything else)."""
        if self.data is None:
            raise RuntimeError(
                f"{self.path}: the FLAC bytes of {self.key!r} were not loaded "
                "(a metadata-only pair; read it with read_shard or load_audio)"
            )
        return decode_flac(self.data, self.key, self.path)


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
    """Shards listed by an ``index.json`` (paths resolved against the index's folder).

    The index is checked by :func:`pipeline.format.load_index`; the trainer also needs
    each shard's ``nsamples`` and ``split``.
    """
    index = load_index(path)
    name = set_name or index.name or index.path.parent.name
    shards = []
    for ref in index.shards:
        if ref.nsamples is None or ref.split is None:
            raise FormatError(f"{index.path}: shard {ref.path.name!r} has no nsamples or no "
                              "split; the trainer needs both (rebuild with make build-dataset)")
        shards.append(Shard(str(ref.path), ref.nsamples, ref.split, name))
    return shards


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


def read_shard(
    path: str, nsamples: int | None = None, audio: bool = True
) -> Iterator[tuple[str, dict[str, Any], AudioRef]]:
    """``(key, meta, audio)`` of every sample of a shard, in tar order, streamed.

    ``audio`` holds the sample's FLAC bytes, undecoded (with ``audio=False`` they are
    skipped unread and the :class:`AudioRef` holds none).  ``nsamples`` (the index's
    count) makes a shard holding another number of samples an error after its last
    sample.  Raises :class:`~pipeline.format.FormatError` naming the shard and the member
    or key for anything :mod:`pipeline.format` refuses.
    """
    for key, members in iter_raw(path, read_audio=audio, nsamples=nsamples):
        meta = parse_meta(members[META_EXT], key, path)
        yield key, meta, AudioRef(path, key, members[AUDIO_EXT] if audio else None)


def read_metadata(
    path: str, nsamples: int | None = None
) -> tuple[tuple[str, dict[str, Any]], ...]:
    """``(key, meta)`` of every sample of a shard (FLAC members checked, never read).

    Cached per process (task discovery, tokenizer texts and evaluation plans come back to
    the same shards); a shard rewritten since (a rebuild) is read again.
    """
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"shard not found: {path}; rebuild it or fix the path") from None
    return _read_metadata(path, st.st_mtime_ns, st.st_size, nsamples)


@functools.lru_cache(maxsize=64)
def _read_metadata(
    path: str, mtime_ns: int, size: int, nsamples: int | None
) -> tuple[tuple[str, dict[str, Any]], ...]:
    return tuple((key, meta) for key, meta, _ in read_shard(path, nsamples, audio=False))


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
        for key, meta, ref in read_shard(shard.path, shard.nsamples):
            out += entries_of(key, meta, ref, shard.set_name, tasks)
    else:
        for key, meta in read_metadata(shard.path, shard.nsamples):
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
        raise FormatError(f"samples not found in their shards (rebuilt since?): {missing[:3]}")
    return out
