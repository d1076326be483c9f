"""Helpers shared by the recipes: finding a corpus root, sample keys one-to-one with source
items, listing audio folders once, reading label files (see :mod:`dataset_recipes.textfiles`)
and the rejects every recipe writes (audio missing, audio unlisted, malformed line)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataset_recipes import textfiles
from dataset_recipes.textfiles import UTF8, Encoding
from pipeline.format import KEY_RE
from pipeline.recipe import CorpusInfo, SplitRole, not_found
from pipeline.record import KEY_ASCII, Reject, sanitize_key

try:  # CPython's own SHA-256 (3.11: _sha256, 3.12 on: _sha2): the digests of hashlib's
    # OpenSSL one, in half its time on a name (0.6 us instead of 1.3: no OpenSSL context
    # set up per call); a key is hashed for nearly every row of some corpora
    from _sha256 import sha256 as _sha256
except ImportError:  # pragma: no cover (other Pythons)
    try:
        from _sha2 import sha256 as _sha256  # type: ignore[no-redef]
    except ImportError:
        from hashlib import sha256 as _sha256  # type: ignore[no-redef]

SAMPLES_DIR = Path(__file__).parent / "samples"
#: Hex digits of the hash that :func:`source_key` appends to a sanitized name.
KEY_HASH_DIGITS = 8
#: Whether a name is key-safe as it is (nothing :func:`~pipeline.record.sanitize_key` changes).
_IS_KEY = KEY_RE.fullmatch


class RoleByName(dict):  # type: ignore[type-arg]
    """Split roles inferred from split names (``get`` never misses): for corpora whose
    split names are not known in advance (Lhotse parts, user manifests)."""

    def get(self, name: str, default: Any = None) -> SplitRole:
        """``valid`` for dev/val names, ``test`` for test/eval names, else ``train``."""
        low = name.lower()
        if "train" in low:
            return "train"
        if "test" in low or "eval" in low:
            return "test"
        if "dev" in low or "val" in low:
            return "valid"
        return "train"


def find_root(raw: Path, info: CorpusInfo, is_root: Callable[[Path], bool],
              names: tuple[str, ...] = ()) -> Path:
    """Return ``raw`` or the first of ``raw/<name>`` (then any direct child) that
    ``is_root`` accepts; otherwise raise the standard not-found error."""
    raw = Path(raw)
    if not raw.is_dir():
        raise not_found(info, raw, info.name)
    candidates = [raw, *(raw / n for n in names)]
    candidates += sorted(p for p in raw.iterdir() if p.is_dir() and p not in candidates)
    for cand in candidates:
        if cand.is_dir() and is_root(cand):
            return cand
    raise not_found(info, raw, info.name)


def rel_str(path: str, root: str) -> str:
    """:func:`rel` of paths given as strings (no ``pathlib`` per file): ``path`` without
    the ``root`` folder in front, or ``path`` itself when it is outside ``root``."""
    prefix = root.rstrip(os.sep) + os.sep
    return path[len(prefix):] if path.startswith(prefix) else path


def rel(path: Path, root: Path) -> str:
    """``path`` relative to the corpus root (what samples and rejects name), so the same
    corpus gives the same sample metadata wherever it is unpacked."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


_SEP, _ALTSEP = os.sep, os.altsep


def stem(name: str) -> str:
    """A file name without folder and extension (``Path(name).stem``, without pathlib)."""
    if _SEP not in name and not (_ALTSEP and _ALTSEP in name):
        dot = name.rfind(".")  # os.path.splitext's answer when the name starts with no dot
        if dot > 0 and name[0] != ".":
            return name[:dot]
        if dot < 0:
            return name
    return os.path.splitext(os.path.basename(name))[0]


class Folder:
    """A folder of a corpus, to name its files in records without a ``pathlib`` operation
    per file (they cost more than the rest of a row's parse): ``audio(name)`` is the path
    build workers open, ``source(name)`` the path relative to the corpus root."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path = Path(path)
        self._abs = str(self.path) + os.sep
        base = rel(self.path, root)
        self._rel = "" if base == "." else base + os.sep

    def audio(self, name: str) -> str:
        """``<folder>/<name>`` as a string."""
        return f"{self._abs}{name}"

    def source(self, name: str) -> str:
        """``<folder>/<name>`` relative to the corpus root."""
        return f"{self._rel}{name}"


def source_key(name: str, readable: str | None = None) -> str:
    """The sample key of the source item called ``name`` (a file stem, a clip id), one to
    one with ``name``.

    The key is ``readable`` (default ``name``) made key-safe by
    :func:`~pipeline.record.sanitize_key`.  When that is not ``name`` itself (sanitizing
    changed a character, or ``readable`` is a shortened form), ``-`` and the first
    :data:`KEY_HASH_DIGITS` hex digits of the SHA-256 of ``name`` follow, so two names
    that sanitize alike (Clotho's ``Car Keys`` and ``Car_Keys``) keep two keys:
    ``Car_Keys-<hash of 'Car Keys'>`` and ``Car_Keys``.  Keys depend on the name only,
    so they are stable across rebuilds.  A name that is already a key stays as it is.
    """
    if readable is None and _IS_KEY(name):  # sanitize_key's answer for a key-safe name
        return name
    key = sanitize_key(name if readable is None else readable)
    if key == name:
        return key
    digest = _sha256(name.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{key}-{digest[:KEY_HASH_DIGITS]}"


def stem_key(name: str) -> str:
    """``source_key(stem(name))``: the key of a clip named by its file name, in one call.

    Most recipes key every clip so.  An ASCII name with an extension, no folder and no
    blank at either end of its stem (nearly all) is sanitized and hashed from one encoding
    of its stem, as :func:`source_key` does it in three calls; any other goes through
    them."""
    dot = name.rfind(".")
    if (dot > 0 and name.isascii() and " " < name[0] != "." and name[dot - 1] > " "
            and _SEP not in name and (_ALTSEP is None or _ALTSEP not in name)):
        readable = name[:dot]  # (stem's answer; sanitize_key's strip changes nothing)
        data = readable.encode("ascii")
        safe = data.translate(KEY_ASCII)
        if safe == data:  # (a key-safe stem, what _IS_KEY tests with a regex)
            return readable
        return f"{safe.decode('ascii')}-{_sha256(data).hexdigest()[:KEY_HASH_DIGITS]}"
    return source_key(stem(name))


def path_key(path: str) -> str:
    """``source_key(path, os.path.splitext(path)[0])``: the key of a file named by a path
    (the manifest's audio), in one call: an ASCII path whose file name has an extension
    (nearly all) is sanitized and hashed from one encoding, any other through
    :func:`source_key`."""
    dot, slash = path.rfind("."), path.rfind(_SEP)
    if (dot > slash + 1 and path[slash + 1] != "." and _ALTSEP is None and path.isascii()
            and path[0] > " " and path[dot - 1] > " "):
        # (the extension's dot is in the key's place: a path is never its own key)
        data = path.encode("ascii")
        return (f"{data[:dot].translate(KEY_ASCII).decode('ascii')}-"
                f"{_sha256(data).hexdigest()[:KEY_HASH_DIGITS]}")
    return source_key(path, os.path.splitext(path)[0])


def file_names(folder: Path) -> set[str]:
    """Names of the files in ``folder`` (empty when it does not exist), listed once, so a
    recipe checks a million listed clips without a million ``stat`` calls."""
    try:
        with os.scandir(folder) as entries:
            return {e.name for e in entries if e.is_file()}
    except (FileNotFoundError, NotADirectoryError):
        return set()


class FileIndex:
    """Which files exist, each folder listed once (:func:`file_names`): for label files
    whose rows name audio in many folders (user manifests, Lhotse recordings)."""

    def __init__(self) -> None:
        self._folders: dict[str, set[str]] = {}

    def names(self, folder: str) -> set[str]:
        """Names of the files in ``folder`` (as of the first look into it)."""
        names = self._folders.get(folder)
        if names is None:
            names = self._folders[folder] = file_names(Path(folder))
        return names

    def exists(self, path: str | Path) -> bool:
        """Whether ``path`` is a file (as of the first look into its folder)."""
        if path.__class__ is str:  # os.path.split's answer where the folder has no end '/'
            folder, _, name = path.rpartition(_SEP)
            if not folder or folder[-1] == _SEP or _ALTSEP:
                folder, name = os.path.split(path)
        else:
            folder, name = os.path.split(path)
        names = self._folders.get(folder)  # (names() inline: a call a row costs)
        if names is None:
            names = self._folders[folder] = file_names(Path(folder))
        return name in names


def read_csv_rows(path: Path, root: Path, recipe: str, split: str,
                  required: tuple[str, ...], delimiter: str = ",", encoding: Encoding = UTF8
                  ) -> Iterator[tuple[int, dict[str, str]] | Reject]:
    """:func:`dataset_recipes.textfiles.read_csv_rows` with rejects naming ``path``
    relative to the corpus ``root``."""
    return textfiles.read_csv_rows(path, rel(path, root), recipe, split, required,
                                   delimiter, encoding)


def read_csv_fields(path: Path, root: Path, recipe: str, split: str,
                    required: tuple[str, ...], delimiter: str = ",", encoding: Encoding = UTF8
                    ) -> tuple[dict[str, int], Iterator[tuple[int, list[str]] | Reject]]:
    """:func:`dataset_recipes.textfiles.read_csv_fields` with rejects naming ``path``
    relative to the corpus ``root``."""
    return textfiles.read_csv_fields(path, rel(path, root), recipe, split, required,
                                     delimiter, encoding)


@dataclass(frozen=True)
class Rejects:
    """The rejects every recipe writes, for one recipe and corpus root: each names the
    file relative to the root and, where there is one, the line of the label file."""

    recipe: str
    root: Path

    def at(self, split: str, path: Path, reason: str, line: int | None = None,
           **kw: str | None) -> Reject:
        """A reject of ``path`` (and ``line``) with ``reason``."""
        return Reject(self.recipe, split, rel(path, self.root), reason, line=line, **kw)

    def missing(self, split: str, audio: Path, listing: Path | str, line: int,
                what: str = "audio file") -> Reject:
        """A label-file row whose audio is not there."""
        return self.at(split, audio, f"listed in {Path(listing).name} line {line} but the "
                       f"{what} is missing", line)

    def malformed(self, split: str, path: Path, line: int, want: str,
                  what: str = "line") -> Reject:
        """A line of ``path`` that does not have the expected form ``want``."""
        return self.at(split, path, f"malformed {what} (want {want})", line)

    def unlisted(self, split: str, files: Iterable[Path], listed: set[str], reason: str,
                 name: Callable[[Path], str] = lambda p: p.name) -> Iterator[Reject]:
        """One reject (``reason``) per file of ``files`` whose ``name`` is not ``listed``."""
        for path in files:
            if name(path) not in listed:
                yield self.at(split, path, reason)


#: Audio file extensions accepted for user-cut clips (AudioSet, MusicCaps), in lookup order.
CLIP_EXTS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm")


class Clips:
    """The user-cut clips of a folder, listed once: ``<id>.<ext>`` or ``Y<id>.<ext>`` (as
    some downloaders write) with ``<ext>`` among :data:`CLIP_EXTS`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.by_stem: dict[str, str] = {}
        rank = {ext: i for i, ext in enumerate(CLIP_EXTS)}
        for name in sorted(file_names(folder), key=lambda n: rank.get(Path(n).suffix, 99)):
            stem, ext = os.path.splitext(name)
            if ext in rank:
                self.by_stem.setdefault(stem, name)

    def name(self, clip_id: str) -> str | None:
        """The file name of the clip of ``clip_id`` (``<id>.<ext>`` before
        ``Y<id>.<ext>``), or ``None``."""
        return self.by_stem.get(clip_id) or self.by_stem.get(f"Y{clip_id}")

    def unlisted(self, listed: set[str], rejects: Rejects, split: str, label_file: str
                 ) -> Iterator[Reject]:
        """Rejects for clips whose id is in no row of ``label_file``."""
        for name in sorted(file_names(self.folder)):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in CLIP_EXTS:
                continue
            if stem not in listed and not (stem.startswith("Y") and stem[1:] in listed):
                yield rejects.at(split, self.folder / name, f"clip has no row in {label_file}")
