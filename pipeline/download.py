"""Download corpus files and unpack archives safely.

:func:`fetch` downloads one :class:`Remote` over HTTP(S) into ``<name>.part``, resumes an
interrupted transfer with an HTTP ``Range`` request, verifies the size and the md5/sha256
the publisher gives, and renames the file into place only when it checks out, so a file
with the final name is always complete.  :func:`extract` unpacks tar (plain, gz, bz2, xz),
zip and 7z archives member by member and refuses anything that could write outside the
target folder: absolute paths, ``..`` components, symbolic and hard links, device and fifo
members, and members (or a total) above a size limit (decompression bombs).  A completion
marker ``.<archive>.extracted`` makes a rerun skip finished archives.
:func:`download_corpus` does both for the files a recipe lists.

Recipes declare what to fetch as :class:`Downloads` (files of every split, files per split,
an optional last unpacking step); :func:`download_declared` does the rest::

    RECIPE = Recipe(..., download=Downloads(per_split={"dev": (Remote(URL, md5="..."),)}))
    download_declared(RECIPE.download, target_dir, splits=["dev"])
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.client import HTTPResponse
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from tqdm import tqdm

from pipeline.errors import UnknownName, UserError
from pipeline.extract import (
    ARCHIVES_DIR,
    ArchiveError,
    archive_kind,
    extract,
    extracted_marker,
)

__all__ = [
    "ARCHIVES_DIR",
    "ArchiveError",
    "DownloadError",
    "Downloads",
    "Remote",
    "download_corpus",
    "download_declared",
    "extract",
    "fetch",
]

log = logging.getLogger(__name__)
CHUNK = 1 << 20
USER_AGENT = "qwen-audio-data/0.1 (corpus download; python urllib)"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED = re.compile(r"bytes\s+\*/(\d+)")


class DownloadError(UserError, RuntimeError):
    """A download failed or did not verify; the message names the URL and what to do."""


class _Interrupted(Exception):
    """A transfer stopped early; the ``.part`` file keeps what arrived and can be resumed."""


@dataclass(frozen=True)
class Remote:
    """One file to download: its URL and what the publisher says it should be.

    ``name`` is the local file name (default: the last part of the URL path, without the
    query, so ``.../clotho_audio_development.7z?download=1`` is saved as
    ``clotho_audio_development.7z``).  ``md5``/``sha256`` are hex digests and ``size`` the
    length in bytes; each one given is checked.
    """

    url: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError(f"Remote url must be http(s)://..., not {self.url!r}")
        name = self.filename
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"cannot derive a file name from {self.url!r}; pass name=...")
        for digest, value, length in (("md5", self.md5, 32), ("sha256", self.sha256, 64)):
            if value is not None and not re.fullmatch(f"[0-9a-fA-F]{{{length}}}", value):
                raise ValueError(f"{self.url}: {digest} must be {length} hex digits, not {value!r}")

    @property
    def filename(self) -> str:
        """The local file name."""
        return self.name or PurePosixPath(unquote(urlsplit(self.url).path)).name


def _content_length(headers: object) -> int | None:
    value = getattr(headers, "get", lambda _k: None)("Content-Length")
    return int(value) if value and str(value).isdigit() else None


def _open(url: str, offset: int, timeout: float) -> HTTPResponse:
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _request(remote: Remote, part: Path, offset: int, timeout: float) -> HTTPResponse | None:
    """Open the transfer at ``offset``; ``None`` when the server says the part is complete."""
    try:
        return _open(remote.url, offset, timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # range not satisfiable: the part may be whole already
            m = _UNSATISFIED.match(err.headers.get("Content-Range", "") or "")
            if m and int(m.group(1)) == offset:
                return None
            part.unlink(missing_ok=True)
            raise _Interrupted("the server refused to resume; starting over") from None
        if err.code >= 500 or err.code == 429:
            raise _Interrupted(f"HTTP {err.code} {err.reason}") from None
        raise DownloadError(f"{remote.url}: HTTP {err.code} {err.reason}. Check the URL "
                            "(the publisher may have moved the file).") from None
    except (urllib.error.URLError, OSError) as err:
        raise _Interrupted(f"cannot connect: {getattr(err, 'reason', err)}") from None


def _transfer(remote: Remote, part: Path, progress: bool, timeout: float) -> None:
    """Append the rest of the file to ``part`` (or start it); raise on an early stop."""
    offset = part.stat().st_size if part.is_file() else 0
    if remote.size is not None and offset > remote.size:
        part.unlink()
        offset = 0
    if remote.size is not None and offset == remote.size:
        return
    resp = _request(remote, part, offset, timeout)
    if resp is None:
        return
    with resp:
        if offset and resp.status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", "") or "")
            if not m or int(m.group(1)) != offset:
                part.unlink()
                raise _Interrupted("the server resumed at the wrong offset; starting over")
        else:  # the server ignored the Range header and sends the whole file
            offset = 0
        length = _content_length(resp.headers)
        total = offset + length if length is not None else remote.size
        got = 0
        with open(part, "ab" if offset else "wb") as f, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=remote.filename, disable=not progress, leave=False,
        ) as bar:
            while True:
                try:
                    chunk = resp.read(CHUNK)
                except (OSError, ValueError) as err:  # IncompleteRead, reset, timeout
                    raise _Interrupted(f"connection lost: {err!r}") from None
                if not chunk:
                    break
                f.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
    if length is not None and got < length:
        raise _Interrupted(f"connection closed after {offset + got} of {offset + length} bytes")


def _digests(path: Path, names: Iterable[str], progress: bool) -> dict[str, str]:
    hashes = {n: hashlib.new(n) for n in names}
    if not hashes:
        return {}
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                     desc=f"verify {path.name}", disable=not progress,
                                     leave=False) as bar:
        while chunk := f.read(CHUNK):
            for h in hashes.values():
                h.update(chunk)
            bar.update(len(chunk))
    return {n: h.hexdigest() for n, h in hashes.items()}


def _verify(remote: Remote, part: Path, progress: bool) -> None:
    """Check size and checksums of the finished ``part``; delete it and raise on a mismatch."""
    size = part.stat().st_size
    problem = None
    if remote.size is not None and size != remote.size:
        problem = f"size mismatch: expected {remote.size} bytes, got {size}"
    else:
        wanted = {n: v.lower() for n, v in (("md5", remote.md5), ("sha256", remote.sha256)) if v}
        got = _digests(part, wanted, progress)
        for n, expected in wanted.items():
            if got[n] != expected:
                problem = f"{n} mismatch: expected {expected}, got {got[n]}"
                break
    if problem:
        part.unlink()
        raise DownloadError(
            f"{remote.url}: {problem}. The downloaded file was deleted; rerun to download it "
            "again. If this repeats, the published file changed: check the corpus homepage.")


def fetch(remote: Remote, target_dir: Path, *, force: bool = False, progress: bool = True,
          retries: int = 4, retry_wait: float = 2.0, timeout: float = 60.0) -> Path:
    """Download ``remote`` into ``target_dir`` and return the file's path.

    An existing complete file is kept (unless ``force``); a ``<name>.part`` left by an
    interrupted run is resumed.  A dropped connection is retried ``retries`` times, each
    resuming where the last stopped.  Raises :class:`DownloadError` (naming the URL) when
    the server refuses, the retries run out, or the size or a checksum does not match.
    """
    target_dir = Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    dest = target_dir / remote.filename
    part = dest.with_name(dest.name + ".part")
    if force:
        dest.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
    if dest.is_file():
        if remote.size is not None and dest.stat().st_size != remote.size:
            raise DownloadError(
                f"{dest} exists but has {dest.stat().st_size} bytes, expected {remote.size} "
                f"({remote.url}); delete it or rerun with force=true")
        return dest
    for attempt in range(retries + 1):
        try:
            _transfer(remote, part, progress, timeout)
            break
        except _Interrupted as err:
            if attempt == retries:
                raise DownloadError(
                    f"{remote.url}: {err}; gave up after {retries + 1} attempts. "
                    f"Rerun to resume from {part}.") from None
            wait = retry_wait * 2**attempt
            log.warning("%s: %s; retrying in %.0f s", remote.url, err, wait)
            time.sleep(wait)
    _verify(remote, part, progress)
    part.replace(dest)
    return dest


def download_corpus(remotes: list[Remote], target_dir: Path, *, force: bool = False,
                    progress: bool = True) -> Path:
    """Fetch every remote into ``target_dir`` and unpack the archives there; return it.

    Archives are kept under ``target_dir/archives/`` and unpacked into ``target_dir``;
    other files (label CSVs) are saved in ``target_dir`` itself.  Idempotent: an archive
    whose completion marker exists is neither downloaded nor unpacked again (``force``
    redoes everything).
    """
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    for remote in remotes:
        if archive_kind(remote.filename) is None:
            fetch(remote, target, force=force, progress=progress)
            continue
        if extracted_marker(target, remote.filename).is_file() and not force:
            log.info("%s: already extracted, skipping", remote.filename)
            continue
        path = fetch(remote, target / ARCHIVES_DIR, force=force, progress=progress)
        extract(path, target, force=force, progress=progress)
    return target


@dataclass(frozen=True)
class Downloads:
    """What a recipe downloads, declared: ``files`` are fetched for any request,
    ``per_split`` lists the files of each split (all splits unless some are chosen), and
    ``unpack`` is the recipe's own last step on the target folder (archives inside the
    archive), run after everything is fetched and extracted."""

    files: tuple[Remote, ...] = ()
    per_split: Mapping[str, tuple[Remote, ...]] = field(default_factory=dict)
    unpack: Callable[[Path], object] | None = None

    def remotes(self, splits: Sequence[str] | None = None) -> list[Remote]:
        """The files to fetch for ``splits`` (``None`` or empty: every split), in order;
        raises :class:`~pipeline.errors.UnknownName` for splits it cannot choose."""
        if splits and not self.per_split:
            raise UnknownName("this recipe downloads all its files together; drop splits=")
        unknown = [s for s in splits or () if s not in self.per_split]
        if unknown:
            raise UnknownName(f"unknown split(s) {unknown}; choose from "
                              f"{', '.join(self.per_split)}")
        chosen = list(splits) if splits else list(self.per_split)
        return [*self.files, *(r for s in chosen for r in self.per_split[s])]


def download_declared(downloads: Downloads, target_dir: Path, *,
                      splits: Sequence[str] | None = None, force: bool = False,
                      progress: bool = True) -> Path:
    """Fetch and unpack what ``downloads`` declares for ``splits`` into ``target_dir``
    (see :func:`download_corpus`), then run its ``unpack`` step; return ``target_dir``."""
    target = download_corpus(downloads.remotes(splits), Path(target_dir), force=force,
                             progress=progress)
    if downloads.unpack is not None:
        downloads.unpack(target)
    return target
