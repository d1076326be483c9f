"""The shard format (``FORMAT.md``) in one module: its constants and every reading rule.

The writer (:mod:`pipeline.shards`, :mod:`pipeline.card`), :mod:`pipeline.verify`,
:mod:`pipeline.reader` and the trainer's :mod:`trainer.reader` all take the format from
here, so what one of them writes or refuses, the others write or refuse alike.  Only
numpy, soundfile and the standard library are imported.

Reading is strict, because shards travel between machines and tools:

- nothing is ever extracted to disk and nothing is unpickled; member bytes are read into
  memory only (:func:`iter_raw`, the one tar walker);
- a member is refused (:class:`UnsafeMemberError`, naming the shard and the member) when
  its name is absolute, holds ``..`` or a ``/``, when it is a link, a directory, a device
  or any other non-regular file, when it is larger than ``max_member_bytes``, when its
  extension is not ``flac`` or ``json`` (a key with a dot shows up this way), or when its
  key holds characters outside ``[A-Za-z0-9_-]`` (:func:`check_member`);
- a sample must have exactly one ``flac`` and one ``json`` member, its key must be unique
  in the shard, its JSON must match the format (:func:`parse_meta`), and a sample or index
  written by a newer format version is refused with the version numbers
  (:func:`check_version`);
- a shard listed in ``index.json`` must hold the number of samples the index says, its
  ``url`` must be a plain file name in the index's folder (:func:`load_index`), and a tar
  that stops early (a damaged header) is reported, not silently cut short.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

#: Version of the layout, written into every sample JSON and ``index.json``.
FORMAT_VERSION = 1
#: Audio rate of every sample (Hz), and the longest clip (seconds) Qwen-Audio sees.
SAMPLE_RATE = 16000
MAX_SECONDS = 30.0
#: The members of a sample, and the only ones a reader accepts.
AUDIO_EXT = "flac"
META_EXT = "json"
MEMBER_EXTS = (AUDIO_EXT, META_EXT)
#: What a sample key may be: writers sanitize to it, readers refuse the rest.
KEY_RE = re.compile(r"[A-Za-z0-9_\-]+")
#: The shard index: its file name and ``__kind__`` (the wids shard index, version 1).
INDEX_NAME = "index.json"
INDEX_KIND = "wids-shard-index-v1"
WIDS_VERSION = 1
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


@dataclass(frozen=True)
class ShardIndex:
    """A parsed ``index.json``: its path, set name (``None`` when absent) and shards."""

    path: Path
    name: str | None
    shards: tuple[ShardRef, ...]


# -- writing ----------------------------------------------------------------------------


def json_bytes(obj: Any) -> bytes:
    """Canonical JSON encoding used for every JSON member (sorted keys, UTF-8)."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def index_text(name: str, shards: Sequence[dict[str, Any]]) -> str:
    """The text of ``index.json`` for shards given as dicts with ``name`` (the file name),
    ``nsamples``, ``filesize``, ``md5sum`` and ``split``, in wids order."""
    index = {
        "__kind__": INDEX_KIND,
        "wids_version": WIDS_VERSION,
        "name": name,
        "format_version": FORMAT_VERSION,
        "shardlist": [
            {"url": s["name"], "nsamples": s["nsamples"], "filesize": s["filesize"],
             "md5sum": s["md5sum"], "split": s["split"]}
            for s in shards
        ],
    }
    return json.dumps(index, indent=1) + "\n"


# -- index ------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _index_entry(entry: Any, folder: Path, where: str) -> ShardRef:
    if not isinstance(entry, dict):
        raise FormatError(f"{where}: shardlist entries must be objects, got {entry!r}")
    url = entry.get("url")
    if (not isinstance(url, str) or not url.endswith(".tar") or "/" in url or "\\" in url
            or url.startswith(".")):
        raise FormatError(f"{where}: shard url {url!r} must be a plain .tar file name "
                          "in the index's folder")
    for field_name, kind in (("nsamples", int), ("filesize", int), ("md5sum", str),
                             ("split", str)):
        value = entry.get(field_name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)
                                  or (kind is int and value < 0)):
            raise FormatError(f"{where}: shard {url!r}: {field_name} {value!r} is not a "
                              f"{'non-negative integer' if kind is int else 'string'}; "
                              "rebuild the index (make build-dataset)")
    return ShardRef(folder / url, entry.get("split"), entry.get("nsamples"),
                    entry.get("filesize"), entry.get("md5sum"))


def load_index(path: str | Path) -> ShardIndex:
    """Read and check an ``index.json``: kind, format version and every shard entry.

    Shard paths are resolved against the index's folder.  Raises :class:`FormatError`
    naming the index (and the shard url) for anything ``FORMAT.md`` does not allow.
    """
    path = Path(path)
    where = str(path)
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"shard index not found: {path}; build the shards first "
                                "(make build-dataset RECIPE=..., or make demo)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"{where}: not valid JSON ({err})") from None
    if not isinstance(index, dict) or index.get("__kind__") != INDEX_KIND:
        raise FormatError(f"{where}: not a shard index (__kind__ must be {INDEX_KIND!r})")
    check_version(index.get("format_version"), where)
    shardlist = index.get("shardlist", [])
    if not isinstance(shardlist, list):
        raise FormatError(f"{where}: shardlist must be a list")
    name = index.get("name")
    return ShardIndex(path, name if isinstance(name, str) else None,
                      tuple(_index_entry(e, path.parent, where) for e in shardlist))


# -- members ----------------------------------------------------------------------------


def check_version(version: Any, where: str) -> None:
    """Refuse a format version this reader does not know (newer, or not a positive int)."""
    if not _is_int(version) or version < 1:
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
    if ext not in MEMBER_EXTS:
        hint = "; keys must not contain dots" if "." in ext else ""
        raise UnsafeMemberError(f"{where}: unknown extension {ext!r}, expected one of "
                                f"{list(MEMBER_EXTS)}{hint}")
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


def _complete(key: str, members: dict[str, bytes], shard: str) -> dict[str, bytes]:
    missing = [e for e in MEMBER_EXTS if e not in members]
    if missing:
        raise FormatError(f"{shard}: key {key!r} has no {'/'.join(missing)} member")
    return members


def count_problem(shard: str, count: int, nsamples: int | None) -> str | None:
    """The problem of a shard holding ``count`` samples where the index says ``nsamples``."""
    if nsamples is None or count == nsamples:
        return None
    return (f"{shard}: holds {count} samples, {INDEX_NAME} says {nsamples}; "
            "the shard is damaged or stale, rebuild it")


def iter_raw(path: str | Path, max_member_bytes: int = MAX_MEMBER_BYTES,
             read_audio: bool = True, name: str | None = None, nsamples: int | None = None,
             ) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield ``(key, {"flac": bytes, "json": bytes})`` of every sample of a shard, in order.

    The one tar walker of the project: every member passes :func:`check_member` before a
    byte of it is read.  With ``read_audio=False`` the ``flac`` bytes are skipped (checked,
    not read): ``b""``.  With ``nsamples`` (from ``index.json``) a shard holding another
    number of samples is refused after its last sample.  Errors name the shard as ``name``
    (default: its path).
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
    problem = count_problem(shard, len(seen), nsamples)
    if problem:
        raise FormatError(problem)


# -- sample JSON and FLAC ---------------------------------------------------------------


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


_TASK_KEYS = frozenset({"task", "prompt", "target"})
_WORD_KEYS = frozenset({"word", "start", "end"})


def _word_ok(w: Any) -> bool:
    # the hot loop of a sample check (a transcript has many words): no sets built
    if not isinstance(w, dict) or w.keys() != _WORD_KEYS or not isinstance(w["word"], str):
        return False
    start, end = w["start"], w["end"]
    return _is_num(start) and _is_num(end) and 0 <= start <= end


def _check_entries(obj: dict[str, Any]) -> list[str]:
    problems = []
    if isinstance(obj.get("tasks"), list):
        if not obj["tasks"]:
            problems.append("'tasks' is empty")
        for i, entry in enumerate(obj["tasks"]):
            if not (isinstance(entry, dict) and entry.keys() == _TASK_KEYS
                    and all(isinstance(v, str) for v in entry.values())):
                problems.append(f"tasks[{i}] must be {{task, prompt, target}} strings")
    if isinstance(obj.get("words"), list):
        problems += [f"words[{i}] must be {{word, start <= end}}"
                     for i, w in enumerate(obj["words"]) if not _word_ok(w)]
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
    if _is_num(obj.get("duration")) and not 0 < obj["duration"] <= MAX_SECONDS:
        problems.append(f"duration {obj['duration']} is outside (0, {MAX_SECONDS:g}] seconds")
    return problems


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


def decode_flac(data: bytes, key: str = "", shard: str = "", dtype: str = "float32",
                ) -> np.ndarray:
    """Decode a ``<key>.flac`` member to a mono array; it must be 16 kHz mono FLAC.

    ``dtype`` is ``"float32"`` (in [-1, 1)) or ``"int16"`` (the stored PCM).  Raises
    :class:`FormatError` naming ``shard`` and ``key`` (when given) for anything else.
    """
    where = f"{shard}: {key}.flac" if shard or key else "FLAC bytes"
    try:
        with sf.SoundFile(io.BytesIO(data)) as snd:
            if snd.format != "FLAC" or snd.channels != 1 or snd.samplerate != SAMPLE_RATE:
                raise FormatError(
                    f"{where} is {snd.format} {snd.channels} ch {snd.samplerate} Hz, "
                    f"expected FLAC 1 ch {SAMPLE_RATE} Hz")
            return snd.read(dtype=dtype)
    except sf.LibsndfileError as err:
        raise FormatError(f"{where} does not decode ({err})") from None
