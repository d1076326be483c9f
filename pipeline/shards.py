"""Deterministic, atomic WebDataset tar shards.

A shard is planned as a :class:`ShardSpec` (name + records) before any audio is read, so
a rerun plans the same shards and can skip finished ones.  A shard is written under
``<name>.tmp`` and renamed when complete; members have fixed metadata (mtime 0, uid 0,
mode 0644) and a fixed order, so the same input gives byte-identical tars.  Keys and the
JSON encoding follow :mod:`pipeline.format`.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pipeline.format import KEY_RE, json_bytes  # noqa: F401  (json_bytes: pipeline.stages)
from pipeline.record import Label, Record

SHARD_PATTERN = "{recipe}-{split}-{index:06d}.tar"


@dataclass(frozen=True)
class ShardSpec:
    """One shard to write: its file name, split and records (in order)."""

    name: str
    recipe: str
    split: str
    records: tuple[Record, ...]

    def digest(self, options: dict[str, Any]) -> str:
        """Hash of the records and build options; a finished shard with another hash is stale."""
        payload = json.dumps(
            {"records": [_record_json(r) for r in self.records], "options": options},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()


_RECORD_FIELDS = tuple(f.name for f in fields(Record))
if tuple(f.name for f in fields(Label)) != ("task", "target", "args"):
    raise AssertionError("_record_json spells out Label's fields: update it")


def _record_json(rec: Record) -> dict[str, Any]:
    """``rec.to_json()`` (``dataclasses.asdict``) as :meth:`ShardSpec.digest` encodes it,
    without asdict's recursion and deep copies: planning hashes every record of a
    corpus before the first shard, 281k of them for LibriSpeech (15k records/s with
    asdict).  Tuples stay tuples, as in asdict (JSON writes both as arrays); a record
    whose ``meta`` holds a dataclass takes asdict."""
    if rec.meta and any(is_dataclass(v) for _, v in rec.meta):
        return rec.to_json()
    out = {name: getattr(rec, name) for name in _RECORD_FIELDS}
    out["labels"] = tuple({"task": lb.task, "target": lb.target, "args": lb.args}
                          for lb in rec.labels)
    return out


def plan_shards(records: Iterable[Record], recipe: str, shard_size: int) -> list[ShardSpec]:
    """Group records by split, sort by key, and cut into shards of ``shard_size`` records."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    by_split: dict[str, list[Record]] = {}
    for rec in records:
        by_split.setdefault(rec.split, []).append(rec)
    specs = []
    for split in sorted(by_split):
        recs = sorted(by_split[split], key=lambda r: r.key)
        for i in range(0, len(recs), shard_size):
            name = SHARD_PATTERN.format(recipe=recipe, split=split, index=i // shard_size)
            specs.append(ShardSpec(name, recipe, split, tuple(recs[i : i + shard_size])))
    return specs


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _HashingFile:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.md5, self.size = f, hashlib.md5(), 0

    def write(self, data: bytes) -> int:
        self.md5.update(data)
        self.size += len(data)
        return self.f.write(data)

    def tell(self) -> int:
        return self.size


_COPY_BUFSIZE = 1 << 24


def write_tar(path: Path, samples: Sequence[tuple[str, dict[str, bytes]]]) -> tuple[int, str]:
    """Write ``[(key, {ext: bytes})]`` to ``path`` atomically; return (size, md5).

    Members are written in the given order, extensions sorted within a sample, so the
    file bytes depend on the content only.  The tar streams to ``<path>.tmp`` (hashed on
    the way) and is renamed to ``path`` when complete.  It is not synced here: waiting
    for the disk after every shard would stall the worker, so the build's process syncs
    each new shard in a thread as it comes back, and their folders before it writes
    ``index.json`` (:func:`sync_files`).
    """
    for key, _ in samples:
        if not KEY_RE.fullmatch(key):
            raise ValueError(f"sample key {key!r} must match [A-Za-z0-9_-]+ (no dots or "
                             "slashes; FORMAT.md, Keys)")
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            out = _HashingFile(f)
            # copybufsize: a member goes through in one piece, not in 16 KiB writes
            with tarfile.open(fileobj=out, mode="w",  # type: ignore[call-overload]
                              format=tarfile.GNU_FORMAT, copybufsize=_COPY_BUFSIZE) as tar:
                for key, members in samples:
                    for ext in sorted(members):
                        data = members[ext]
                        tar.addfile(_tarinfo(f"{key}.{ext}", len(data)), io.BytesIO(data))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return out.size, out.md5.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as err:
        # some network and FUSE file systems cannot sync (a directory, or at all); they
        # offer nothing better, so that is no reason to fail a finished build
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.ENOSYS, errno.EBADF):
            raise
    finally:
        os.close(fd)


def sync_files(paths: Iterable[Path], *, dirs: bool = True) -> None:
    """fsync each file and then (``dirs``) the directories holding them (renames made
    durable)."""
    folders = set()
    for path in paths:
        _fsync(path)
        folders.add(path.parent)
    for folder in sorted(folders) if dirs else ():
        _fsync(folder)


def file_md5(path: Path) -> str:
    """MD5 of a file, as the wids index records it."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
