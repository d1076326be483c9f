"""Read the shards this project writes, safely, with only numpy + soundfile installed.

:func:`open_shards` takes an output directory, its ``index.json``, one ``.tar`` shard or a
list of those, and yields :class:`Sample` objects (waveform, sample rate, task entries,
words) filtered by task, language, duration and split.  See ``FORMAT.md`` for the layout.

Every reading rule lives in :mod:`pipeline.format` (the one tar walker, member, JSON,
FLAC, version and index checks), shared with ``pipeline.verify`` and the trainer's
reader: a shard refused here is refused there.  Errors are :class:`FormatError` (or
:class:`UnsafeMemberError`) naming the shard and the member or key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.format import (
    AUDIO_EXT,
    INDEX_KIND,
    INDEX_NAME,
    MAX_MEMBER_BYTES,
    MEMBER_EXTS,
    META_EXT,
    SAMPLE_RATE,
    FormatError,
    ShardRef,
    UnsafeMemberError,
    check_member,
    check_meta,
    check_version,
    decode_flac,
    iter_raw,
    load_index,
    parse_meta,
)

KNOWN_EXTS = MEMBER_EXTS

#: The reader's names, the format's rules among them (imported from here by older code).
__all__ = [
    "AUDIO_EXT", "INDEX_KIND", "INDEX_NAME", "KNOWN_EXTS", "MAX_MEMBER_BYTES", "META_EXT",
    "SAMPLE_RATE", "FormatError", "Sample", "ShardRef", "UnsafeMemberError", "check_member",
    "check_meta", "check_version", "decode_flac", "iter_raw", "open_shards", "parse_meta",
    "resolve_shards", "sample_positions",
]


@dataclass
class Sample:
    """One decoded sample: audio plus the fields of its ``<key>.json`` member."""

    key: str
    waveform: np.ndarray | None
    sample_rate: int
    tasks: list[dict[str, str]]
    words: list[dict[str, Any]] | None
    duration: float
    language: str
    source: dict[str, str]
    shard: str
    meta: dict[str, Any] = field(default_factory=dict)
    json: dict[str, Any] = field(default_factory=dict)


def resolve_shards(source: str | Path | Sequence[str | Path]) -> list[ShardRef]:
    """Shards named by a directory (its ``index.json``, else its ``*.tar``), an index file,
    a ``.tar`` file, or a list of those."""
    if isinstance(source, (list, tuple)):
        return [ref for item in source for ref in resolve_shards(item)]
    path = Path(source)  # type: ignore[arg-type]
    if path.is_dir():
        if (path / INDEX_NAME).is_file():
            return list(load_index(path / INDEX_NAME).shards)
        tars = sorted(path.glob("*.tar"))
        if not tars:
            raise FileNotFoundError(f"{path} holds no index.json and no .tar shards; "
                                    "build them first (make build-dataset RECIPE=...)")
        return [ShardRef(t) for t in tars]
    if not path.is_file():
        raise FileNotFoundError(f"no such shard, index or directory: {path}")
    if path.suffix == ".json":
        return list(load_index(path).shards)
    return [ShardRef(path)]


def _keep(obj: dict[str, Any], tasks: frozenset[str] | None, languages: frozenset[str] | None,
          max_duration: float | None, splits: frozenset[str] | None,
          ) -> list[dict[str, str]] | None:
    if splits is not None and obj["source"]["split"] not in splits:
        return None
    if languages is not None and obj["language"] not in languages:
        return None
    if max_duration is not None and obj["duration"] > max_duration:
        return None
    entries = [e for e in obj["tasks"] if tasks is None or e["task"] in tasks]
    return entries or None


def open_shards(
    source: str | Path | Sequence[str | Path],
    *,
    tasks: Iterable[str] | None = None,
    languages: Iterable[str] | None = None,
    max_duration: float | None = None,
    splits: Iterable[str] | None = None,
    decode_audio: bool = True,
    dtype: str = "float32",
    max_member_bytes: int = MAX_MEMBER_BYTES,
) -> Iterator[Sample]:
    """Yield the samples of a shard set, in shard and key order, decoded and filtered.

    ``tasks`` keeps samples with at least one entry of those tasks (and only those
    entries); ``languages`` keeps samples whose audio language is listed (``"unknown"``
    for sounds and music); ``max_duration`` drops longer clips (seconds); ``splits`` keeps
    samples of those corpus splits.  ``dtype`` is ``"float32"`` (in [-1, 1)) or ``"int16"`` (the
    stored PCM).  With ``decode_audio=False`` the waveform is ``None`` (JSON only).
    Raises :class:`FormatError` (or :class:`UnsafeMemberError`) naming shard and key.
    """
    task_set = None if tasks is None else frozenset(tasks)
    lang_set = None if languages is None else frozenset(languages)
    split_set = None if splits is None else frozenset(splits)
    for ref in resolve_shards(source):
        if split_set is not None and ref.split is not None and ref.split not in split_set:
            continue  # known from index.json: skip the whole shard
        shard = str(ref.path)
        for key, members in iter_raw(ref.path, max_member_bytes, read_audio=decode_audio,
                                     nsamples=ref.nsamples):
            obj = parse_meta(members[META_EXT], key, shard)
            entries = _keep(obj, task_set, lang_set, max_duration, split_set)
            if entries is None:
                continue
            wav = decode_flac(members[AUDIO_EXT], key, shard, dtype) if decode_audio else None
            yield Sample(key=key, waveform=wav, sample_rate=obj["sample_rate"], tasks=entries,
                         words=obj.get("words"), duration=float(obj["duration"]),
                         language=obj["language"], source=obj["source"], shard=shard,
                         meta=obj.get("meta", {}), json=obj)


def sample_positions(index: str | Path) -> dict[tuple[str, str], int]:
    """``(split, key) -> position`` in the order of ``index.json``'s shard list.

    That order is the one ``wids.ShardListDataset(index)`` numbers samples in, so
    ``dataset[positions[(split, key)]]`` is random access by key.  Audio is not read.
    """
    positions: dict[tuple[str, str], int] = {}
    count = 0
    for ref in resolve_shards(index):
        for key, _ in iter_raw(ref.path, read_audio=False, nsamples=ref.nsamples):
            if (ref.split or "", key) in positions:
                raise FormatError(f"{ref.path}: key {key!r} appears twice in split {ref.split}")
            positions[(ref.split or "", key)] = count
            count += 1
    return positions
