"""Read the shards this project writes, safely, with only numpy + soundfile installed.

:func:`open_shards` takes an output directory, its ``index.json``, one ``.tar`` shard or a
list of those, and yields :class:`Sample` objects (waveform, sample rate, task entries,
words) filtered by task, language, duration and split.  See ``FORMAT.md`` for the layout.

Reading is strict, because shards travel between machines and tools:

- nothing is ever extracted to disk and nothing is unpickled; member bytes are read into
  memory only;
- a member is refused (:class:`UnsafeMemberError`, naming the shard and the member) when
  its name is absolute, holds ``..`` or a ``/``, when it is a link, a directory, a device
  or any other non-regular file, when it is larger than ``max_member_bytes``, when its
  extension is not ``flac`` or ``json`` (a key with a dot shows up this way), or when its
  key holds characters outside ``[A-Za-z0-9_-]``;
- a sample must have exactly one ``flac`` and one ``json`` member, its key must be unique
  in the shard, its JSON must match the format (:func:`check_meta`), and a sample written
  by a newer format version is refused with the version numbers;
- a shard listed in ``index.json`` must hold the number of samples the index says, and
  a tar that stops early (a damaged header) is reported, not silently cut short.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from pipeline.record import AUDIO_EXT, FORMAT_VERSION, KEY_RE, META_EXT

INDEX_NAME = "index.json"
INDEX_KIND = "wids-shard-index-v1"
SAMPLE_RATE = 16000
KNOWN_EXTS = (AUDIO_EXT, META_EXT)
#: Largest member accepted by default: 30 s of 16-bit FLAC is under 1 MB; JSON is small.
MAX_MEMBER_BYTES = 16 * 1024 * 1024
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "key": str, "tasks": list, "duration": (int, float), "language": str, "source": dict,
    "sample_rate": int, "format_version": int,
}
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "words": list, "truncated_from": (int, float), "meta": dict,
}


class FormatError(ValueError):
    """A shard, index or sample that does not follow ``FORMAT.md``; the message names it."""


class UnsafeMemberError(FormatError):
    """A tar member that a reader must never touch (link, absolute path, ``..``, huge...)."""


@dataclass(frozen=True)
class ShardRef:
    """A shard to read, with what ``index.json`` says about it (``None`` when unknown)."""

    path: Path
    split: str | None = None
    nsamples: int | None = None
    filesize: int | None = None
    md5sum: str | None = None


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


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_fields(obj: dict[str, Any]) -> list[str]:
    problems = []
    for name, kind in _REQUIRED.items():
        if name not in obj:
            problems.append(f"missing field {name!r}")
        elif not isinstance(obj[name], kind) or isinstance(obj[name], bool):
            problems.append(f"field {name!r} has type {type(obj[name]).__name__}")
    for name, kind in _OPTIONAL.items():
        if name in obj and (not isinstance(obj[name], kind) or isinstance(obj[name], bool)):
            problems.append(f"field {name!r} has type {type(obj[name]).__name__}")
    unknown = sorted(set(obj) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        problems.append(f"unknown fields {unknown}")
    return problems


def _check_entries(obj: dict[str, Any]) -> list[str]:
    problems = []
    if isinstance(obj.get("tasks"), list):
        if not obj["tasks"]:
            problems.append("'tasks' is empty")
        for i, entry in enumerate(obj["tasks"]):
            if not (isinstance(entry, dict) and set(entry) == {"task", "prompt", "target"}
                    and all(isinstance(v, str) for v in entry.values())):
                problems.append(f"tasks[{i}] must be {{task, prompt, target}} strings")
    if isinstance(obj.get("words"), list):
        for i, w in enumerate(obj["words"]):
            if not (isinstance(w, dict) and set(w) == {"word", "start", "end"}
                    and isinstance(w["word"], str) and _is_num(w["start"])
                    and _is_num(w["end"]) and 0 <= w["start"] <= w["end"]):
                problems.append(f"words[{i}] must be {{word, start <= end}}")
    src = obj.get("source")
    if isinstance(src, dict) and not all(isinstance(src.get(k), str)
                                         for k in ("recipe", "split", "file")):
        problems.append("'source' must hold strings 'recipe', 'split' and 'file'")
    return problems


def check_meta(obj: Any, key: str | None = None) -> list[str]:
    """Problems of a sample's JSON against the format (an empty list when it conforms).

    ``key`` is the member key; the JSON's ``key`` field must equal it.
    """
    if not isinstance(obj, dict):
        return [f"JSON must be an object, got {type(obj).__name__}"]
    problems = _check_fields(obj) + _check_entries(obj)
    if key is not None and obj.get("key") != key:
        problems.append(f"JSON 'key' {obj.get('key')!r} differs from the member key")
    if obj.get("sample_rate") not in (None, SAMPLE_RATE):
        problems.append(f"sample_rate {obj['sample_rate']} is not {SAMPLE_RATE}")
    if _is_num(obj.get("duration")) and not 0 < obj["duration"] <= 30.0:
        problems.append(f"duration {obj['duration']} is outside (0, 30] seconds")
    return problems


def check_version(version: Any, where: str) -> None:
    """Refuse a format version this reader does not know (newer, or not a positive int)."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FormatError(f"{where}: format_version {version!r} is not a positive integer")
    if version > FORMAT_VERSION:
        raise FormatError(
            f"{where}: written with format version {version}, this reader knows versions up "
            f"to {FORMAT_VERSION}; upgrade qwen-audio-data (see FORMAT.md, Versioning)"
        )


def check_member(info: tarfile.TarInfo, shard: str, max_bytes: int = MAX_MEMBER_BYTES) -> str:
    """Refuse a member that is unsafe or unknown; return its key. Never touches the disk."""
    name = info.name
    where = f"{shard}: member {name!r}"
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise UnsafeMemberError(f"{where}: absolute path; shards hold flat names only")
    if ".." in re.split(r"[/\\]", name):
        raise UnsafeMemberError(f"{where}: '..' points outside the shard")
    if "/" in name or "\\" in name:
        raise UnsafeMemberError(f"{where}: directories are not part of the format")
    if info.issym() or info.islnk():
        raise UnsafeMemberError(f"{where}: links are refused (target {info.linkname!r})")
    if not info.isfile() or info.issparse():
        raise UnsafeMemberError(f"{where}: not a regular file (tar type {info.type!r})")
    if info.size > max_bytes:
        raise UnsafeMemberError(f"{where}: {info.size} bytes exceeds the {max_bytes}-byte limit")
    key, _, ext = name.partition(".")
    if ext not in KNOWN_EXTS:
        hint = "; keys must not contain dots" if "." in ext else ""
        raise UnsafeMemberError(f"{where}: unknown extension {ext!r}, expected one of "
                                f"{list(KNOWN_EXTS)}{hint}")
    if not KEY_RE.fullmatch(key):
        raise UnsafeMemberError(f"{where}: key must match [A-Za-z0-9_-]+")
    return key


def _check_tail(f: Any, offset: int, shard: str) -> None:
    """After the last header, only zero padding may follow; otherwise a header is damaged."""
    f.seek(offset)
    pos = offset
    while chunk := f.read(1 << 16):
        if chunk.strip(b"\0"):
            bad = pos + len(chunk) - len(chunk.lstrip(b"\0"))
            raise FormatError(f"{shard}: tar stops at byte {offset} but data follows at byte "
                              f"{bad} (damaged tar header); rebuild or re-download the shard")
        pos += len(chunk)


def iter_raw(path: str | Path, max_member_bytes: int = MAX_MEMBER_BYTES,
             read_audio: bool = True, name: str | None = None,
             ) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield ``(key, {"flac": bytes, "json": bytes})`` of every sample of a shard, in order.

    With ``read_audio=False`` the ``flac`` bytes are skipped (checked, not read): ``b""``.
    Errors name the shard as ``name`` (default: its path).
    """
    shard = name or str(path)
    seen: set[str] = set()
    key: str | None = None
    members: dict[str, bytes] = {}
    try:
        with open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
            for info in tar:
                k = check_member(info, shard, max_member_bytes)
                ext = info.name.partition(".")[2]
                if k != key:
                    if key is not None:
                        yield key, _complete(key, members, shard)
                    if k in seen:
                        raise FormatError(f"{shard}: key {k!r} appears twice")
                    seen.add(k)
                    key, members = k, {}
                if ext in members:
                    raise FormatError(f"{shard}: key {k!r} has two {ext!r} members")
                data = tar.extractfile(info) if read_audio or ext != AUDIO_EXT else None
                members[ext] = data.read() if data is not None else b""
            end = tar.offset
            if key is not None:
                yield key, _complete(key, members, shard)
            _check_tail(f, end, shard)
    except FileNotFoundError:
        raise FileNotFoundError(f"shard not found: {shard}; rebuild it or fix the path") from None
    except tarfile.TarError as err:
        raise FormatError(f"{shard}: not a readable tar ({err})") from None


def _complete(key: str, members: dict[str, bytes], shard: str) -> dict[str, bytes]:
    missing = [e for e in KNOWN_EXTS if e not in members]
    if missing:
        raise FormatError(f"{shard}: key {key!r} has no {'/'.join(missing)} member")
    return members


def parse_meta(data: bytes, key: str, shard: str) -> dict[str, Any]:
    """Decode and check a ``<key>.json`` member; raise :class:`FormatError` naming it."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"{shard}: {key}.json is not UTF-8 JSON ({err})") from None
    if isinstance(obj, dict) and "format_version" in obj:
        check_version(obj["format_version"], f"{shard}: {key}.json")
    problems = check_meta(obj, key)
    if problems:
        raise FormatError(f"{shard}: {key}.json: " + "; ".join(problems))
    return obj


def decode_flac(data: bytes, key: str, shard: str, dtype: str = "float32") -> np.ndarray:
    """Decode a ``<key>.flac`` member to a mono array; it must be 16 kHz mono FLAC."""
    try:
        with sf.SoundFile(io.BytesIO(data)) as snd:
            if snd.format != "FLAC" or snd.channels != 1 or snd.samplerate != SAMPLE_RATE:
                raise FormatError(
                    f"{shard}: {key}.flac is {snd.format} {snd.channels} ch {snd.samplerate} Hz, "
                    f"expected FLAC 1 ch {SAMPLE_RATE} Hz")
            return snd.read(dtype=dtype)
    except sf.LibsndfileError as err:
        raise FormatError(f"{shard}: {key}.flac does not decode ({err})") from None


def _index_refs(index_path: Path) -> list[ShardRef]:
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FormatError(f"{index_path}: not valid JSON ({err})") from None
    if not isinstance(index, dict) or index.get("__kind__") != INDEX_KIND:
        raise FormatError(f"{index_path}: not a shard index (__kind__ must be {INDEX_KIND!r})")
    check_version(index.get("format_version"), str(index_path))
    refs = []
    for entry in index.get("shardlist", []):
        url = str(entry.get("url", ""))
        if not url.endswith(".tar") or "/" in url or "\\" in url or url.startswith("."):
            raise FormatError(f"{index_path}: shard url {url!r} must be a plain .tar file name "
                              "in the index's folder")
        refs.append(ShardRef(index_path.parent / url, entry.get("split"), entry.get("nsamples"),
                             entry.get("filesize"), entry.get("md5sum")))
    return refs


def resolve_shards(source: str | Path | Sequence[str | Path]) -> list[ShardRef]:
    """Shards named by a directory (its ``index.json``, else its ``*.tar``), an index file,
    a ``.tar`` file, or a list of those."""
    if isinstance(source, (list, tuple)):
        return [ref for item in source for ref in resolve_shards(item)]
    path = Path(source)  # type: ignore[arg-type]
    if path.is_dir():
        if (path / INDEX_NAME).is_file():
            return _index_refs(path / INDEX_NAME)
        tars = sorted(path.glob("*.tar"))
        if not tars:
            raise FileNotFoundError(f"{path} holds no index.json and no .tar shards; "
                                    "build them first (make build-dataset RECIPE=...)")
        return [ShardRef(t) for t in tars]
    if not path.is_file():
        raise FileNotFoundError(f"no such shard, index or directory: {path}")
    if path.suffix == ".json":
        return _index_refs(path)
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
        shard, count = str(ref.path), 0
        for key, members in iter_raw(ref.path, max_member_bytes, read_audio=decode_audio):
            count += 1
            obj = parse_meta(members[META_EXT], key, shard)
            entries = _keep(obj, task_set, lang_set, max_duration, split_set)
            if entries is None:
                continue
            wav = decode_flac(members[AUDIO_EXT], key, shard, dtype) if decode_audio else None
            yield Sample(key=key, waveform=wav, sample_rate=obj["sample_rate"], tasks=entries,
                         words=obj.get("words"), duration=float(obj["duration"]),
                         language=obj["language"], source=obj["source"], shard=shard,
                         meta=obj.get("meta", {}), json=obj)
        if ref.nsamples is not None and count != ref.nsamples:
            raise FormatError(f"{shard}: holds {count} samples, index.json says {ref.nsamples}; "
                              "the shard is damaged or stale, rebuild it")


def sample_positions(index: str | Path) -> dict[tuple[str, str], int]:
    """``(split, key) -> position`` in the order of ``index.json``'s shard list.

    That order is the one ``wids.ShardListDataset(index)`` numbers samples in, so
    ``dataset[positions[(split, key)]]`` is random access by key.  Audio is not read.
    """
    positions: dict[tuple[str, str], int] = {}
    count = 0
    for ref in resolve_shards(index):
        for key, _ in iter_raw(ref.path, read_audio=False):
            if (ref.split or "", key) in positions:
                raise FormatError(f"{ref.path}: key {key!r} appears twice in split {ref.split}")
            positions[(ref.split or "", key)] = count
            count += 1
    return positions
