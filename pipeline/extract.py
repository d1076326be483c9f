"""Safe archive extraction (tar, tar.gz/tgz, tar.bz2, tar.xz, zip, 7z).

Every member is checked before a byte of it is written; the archive is refused, with an
:class:`ArchiveError` naming the archive and the member, when a member has an absolute
path or a ``..`` component, is a symbolic or hard link (wherever it points), a device, a
fifo or another special file, is encrypted, or is larger than ``max_member_bytes``, and
when the members together exceed ``max_total_bytes`` (default: 100 times the archive's
size, at least 1 GiB; this stops decompression bombs).  Only regular files and folders
are created, only inside the target folder, with default permissions.  A refused archive
leaves nothing behind: the files and folders it created are removed again.

A completion marker ``<target>/.<archive name>.extracted`` is written last; a rerun finds
it and skips the archive (``force=True`` extracts again).
"""

from __future__ import annotations

import json
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import IO

from tqdm import tqdm

from pipeline.errors import UserError

GiB = 1 << 30
MAX_MEMBER_BYTES = 16 * GiB  # far above any audio file of the supported corpora
MAX_RATIO = 100  # audio barely compresses; a bomb expands thousands of times
MIN_TOTAL_BYTES = GiB
ARCHIVES_DIR = "archives"
_KINDS = {".tar": "tar", ".tar.gz": "tar", ".tgz": "tar", ".tar.bz2": "tar", ".tbz2": "tar",
          ".tar.xz": "tar", ".txz": "tar", ".zip": "zip", ".7z": "7z"}


class ArchiveError(UserError, ValueError):
    """An archive that cannot or must not be extracted; the message names archive and member."""


def archive_kind(name: str) -> str | None:
    """``"tar"``, ``"zip"`` or ``"7z"`` from a file name's ending; ``None`` for other files."""
    lower = name.lower()
    for suffix, kind in sorted(_KINDS.items(), key=lambda kv: -len(kv[0])):
        if lower.endswith(suffix):
            return kind
    return None


def extracted_marker(target_dir: Path, archive_name: str) -> Path:
    """The completion marker of ``archive_name`` extracted into ``target_dir``."""
    return Path(target_dir) / f".{archive_name}.extracted"


class _Sink:
    """Creates checked members under ``root``, counts bytes, and can undo what it made."""

    def __init__(self, archive: Path, root: Path, max_member: int, max_total: int) -> None:
        self.archive, self.root = archive, root
        self.max_member, self.max_total = max_member, max_total
        self.total = 0
        self.members = 0
        self.created: list[Path] = []

    def refuse(self, name: str, reason: str) -> ArchiveError:
        return ArchiveError(
            f"{self.archive}: refusing member {name!r}: {reason}. Nothing was extracted. "
            "The archive is corrupt or unsafe: delete it and download it again from the "
            "corpus homepage.")

    def too_big(self, name: str, what: str, limit: int) -> ArchiveError:
        return ArchiveError(
            f"{self.archive}: refusing member {name!r}: {what} exceeds the limit of {limit} "
            "bytes (a decompression bomb?). Nothing was extracted. If the corpus really is "
            "this large, call extract() with a larger max_member_bytes/max_total_bytes.")

    def dest(self, name: str) -> Path | None:
        """Where member ``name`` goes; ``None`` for the archive root itself."""
        norm = name.replace("\\", "/")
        if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
            raise self.refuse(name, "absolute path")
        parts = [p for p in norm.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self.refuse(name, "path has a '..' component")
        if not parts:
            return None
        dest = self.root.joinpath(*parts)
        if not dest.resolve().is_relative_to(self.root):
            raise self.refuse(name, f"would land outside {self.root} (through a symlink there)")
        return dest

    def declare(self, name: str, size: int) -> None:
        """Account for a member's declared size before writing it."""
        if size > self.max_member:
            raise self.too_big(name, f"its size {size}", self.max_member)
        self.total += size
        if self.total > self.max_total:
            raise self.too_big(name, f"the total size {self.total}", self.max_total)

    def _missing(self, path: Path) -> list[Path]:
        """``path`` and its parents below ``root`` that do not exist yet, outermost first."""
        missing = []
        for p in (path, *path.parents):
            if p == self.root or p.exists():
                break
            missing.append(p)
        return missing[::-1]

    def track(self, path: Path) -> None:
        """Remember ``path`` (and missing parents) for rollback when another tool writes it."""
        self.created.extend(p for p in self._missing(path) if p not in self.created)

    def mkdir(self, path: Path) -> None:
        for p in self._missing(path):
            p.mkdir()
            self.created.append(p)

    def write(self, name: str, src: IO[bytes], declared: int) -> None:
        """Copy one regular file; stops at the declared size plus one chunk of slack."""
        dest = self.dest(name)
        if dest is None:
            raise self.refuse(name, "a file member without a name")
        self.mkdir(dest.parent)
        if not dest.exists():
            self.created.append(dest)
        written = 0
        with open(dest, "wb") as out:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > max(declared, 0) + (1 << 20) or written > self.max_member:
                    raise self.too_big(name, "its real size", min(self.max_member, declared))
                out.write(chunk)
        self.members += 1

    def rollback(self) -> None:
        for p in reversed(self.created):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        self.created.clear()


def _extract_tar(sink: _Sink, archive: Path, bar: tqdm) -> None:
    try:
        with tarfile.open(archive, mode="r|*") as tf:  # one streaming pass
            for m in tf:
                if m.issym() or m.islnk():
                    kind = "symbolic link" if m.issym() else "hard link"
                    raise sink.refuse(m.name, f"{kind} to {m.linkname!r} (links are refused)")
                if not (m.isfile() or m.isdir()):
                    raise sink.refuse(m.name, "device, fifo or other special file")
                dest = sink.dest(m.name)
                if m.isdir():
                    if dest is not None:
                        sink.mkdir(dest)
                    continue
                sink.declare(m.name, m.size)
                src = tf.extractfile(m)
                if src is None:
                    raise sink.refuse(m.name, "unreadable member")
                sink.write(m.name, src, m.size)
                bar.update(1)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ArchiveError(f"{archive}: not a readable tar archive ({err}). It may be truncated "
                           "or corrupt: delete it and download it again.") from None


def _zip_kind(info: zipfile.ZipInfo) -> str:
    fmt = stat.S_IFMT(info.external_attr >> 16)
    if info.is_dir():
        return "dir"
    if fmt == stat.S_IFLNK:
        return "symlink"
    return "file" if fmt in (0, stat.S_IFREG) else "special"


def _extract_zip(sink: _Sink, archive: Path, bar: tqdm) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise ArchiveError(f"{archive}: not a readable zip archive ({err}): delete it and "
                           "download it again.") from None
    with zf:
        infos = zf.infolist()
        for info in infos:  # check everything before writing anything
            kind = _zip_kind(info)
            if kind == "symlink":
                raise sink.refuse(info.filename, "symbolic link (links are refused)")
            if kind == "special":
                raise sink.refuse(info.filename, "device, fifo or other special file")
            if info.flag_bits & 0x1:
                raise sink.refuse(info.filename, "encrypted member")
            sink.dest(info.filename)
            if kind == "file":
                sink.declare(info.filename, info.file_size)
        bar.reset(total=len(infos))
        for info in infos:
            dest = sink.dest(info.filename)
            if _zip_kind(info) == "dir":
                if dest is not None:
                    sink.mkdir(dest)
            else:
                try:
                    with zf.open(info) as src:
                        sink.write(info.filename, src, info.file_size)
                except (zipfile.BadZipFile, OSError, EOFError) as err:
                    raise ArchiveError(f"{archive}: member {info.filename!r} is corrupt "
                                       f"({err}): download the archive again.") from None
            bar.update(1)


def _extract_7z(sink: _Sink, archive: Path, bar: tqdm) -> None:
    try:
        import py7zr
    except ImportError:
        raise ArchiveError(f"{archive}: 7z archives need py7zr (pip install py7zr), or extract "
                           f"it by hand: 7z x '{archive}' -o'{sink.root}'") from None
    try:
        with py7zr.SevenZipFile(archive, mode="r", max_extract_size=sink.max_total) as z:
            files = list(z.files)
            for f in files:  # check everything before writing anything
                if f.is_symlink or f.is_junction:
                    raise sink.refuse(f.filename, "symbolic link (links are refused)")
                fmt = f.st_fmt
                special = fmt is not None and fmt not in (stat.S_IFREG, stat.S_IFDIR)
                if f.is_socket or special:
                    raise sink.refuse(f.filename, "device, fifo or other special file")
                dest = sink.dest(f.filename)
                if dest is not None:
                    sink.track(dest)
                if not f.is_directory:
                    sink.declare(f.filename, int(f.uncompressed or 0))
            bar.reset(total=len(files))
            z.extractall(path=sink.root)
            sink.members = sum(1 for f in files if not f.is_directory)
            bar.update(len(files))
    except py7zr.exceptions.DecompressionBombError:
        raise sink.too_big(archive.name, "the extracted size", sink.max_total) from None
    except (py7zr.exceptions.ArchiveError, py7zr.exceptions.Bad7zFile, EOFError,
            py7zr.exceptions.DecompressionError, py7zr.exceptions.CrcError,
            py7zr.exceptions.PasswordRequired,
            py7zr.exceptions.UnsupportedCompressionMethodError) as err:
        raise ArchiveError(f"{archive}: cannot extract this 7z archive ({err!r}). It may be "
                           "corrupt: delete it and download it again, or extract it by hand: "
                           f"7z x '{archive}' -o'{sink.root}'") from None


def extract(archive: Path, target_dir: Path, *, force: bool = False, progress: bool = True,
            max_member_bytes: int = MAX_MEMBER_BYTES,
            max_total_bytes: int | None = None) -> Path:
    """Safely unpack ``archive`` into ``target_dir`` and return ``target_dir``.

    Skips the work when the archive's completion marker exists (unless ``force``).
    Raises :class:`ArchiveError` for an unsupported, unreadable or unsafe archive (see the
    module docstring for what is refused); a refused archive leaves nothing behind.
    """
    archive, target = Path(archive), Path(target_dir)
    marker = extracted_marker(target, archive.name)
    if marker.is_file() and not force:
        return target
    kind = archive_kind(archive.name)
    if kind is None:
        raise ArchiveError(f"{archive}: unsupported archive type; supported endings: "
                           f"{', '.join(_KINDS)}")
    if not archive.is_file():
        raise ArchiveError(f"{archive}: archive not found")
    target.mkdir(parents=True, exist_ok=True)
    size = archive.stat().st_size
    total = max_total_bytes if max_total_bytes is not None else max(
        MAX_RATIO * size, MIN_TOTAL_BYTES)
    sink = _Sink(archive, target.resolve(), max_member_bytes, total)
    run = {"tar": _extract_tar, "zip": _extract_zip, "7z": _extract_7z}[kind]
    with tqdm(desc=f"extract {archive.name}", unit="file", disable=not progress,
              leave=False) as bar:
        try:
            run(sink, archive, bar)
        except BaseException:
            sink.rollback()
            raise
    marker.write_text(json.dumps({"archive": archive.name, "bytes": size,
                                  "files": sink.members, "extracted_bytes": sink.total}) + "\n")
    return target
