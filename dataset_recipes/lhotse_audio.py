"""Where the audio file of a Lhotse recording is, for :mod:`dataset_recipes.lhotse_manifests`.

A recording's file is its one ``file`` source: an absolute path as it is, a relative one
in the manifest's folder, else in the working directory (where ``lhotse prepare`` wrote
paths relative to), normalized (:func:`os.path.normpath`).  Whether a file exists is
answered from a listing of its folder, each folder listed once
(:class:`dataset_recipes.common.FileIndex`).

:class:`Folders` gives the same answers for a manifest's plain rows faster: the paths of a
corpus share a few thousand folders, so everything about a path except its file name
(which folders hold it, whether normalizing changes it, its form relative to the corpus
root) is worked out once per folder.
"""

from __future__ import annotations

import os
from typing import Any

from dataset_recipes.common import FileIndex


def audio_path(rec: Any, base: str, files: FileIndex) -> tuple[str] | str:
    """``(the recording's file,)`` (a relative source is looked up in ``base``, the
    manifest's folder with a trailing separator, then in the working directory), or why
    it cannot be used."""
    if len(rec.sources) != 1 or rec.sources[0].type != "file":
        kinds = [s.type for s in rec.sources]
        return f"recording {rec.id} has sources {kinds}; only one 'file' source is supported"
    if rec.transforms:
        return f"recording {rec.id} has transforms (e.g. speed perturbation): not supported"
    path = rec.sources[0].source
    found = find(path, base, files)
    if found is None:
        return f"audio file {path} of recording {rec.id} is missing"
    return (normpath(found),)


def find(path: str, base: str, files: FileIndex) -> str | None:
    """``path`` if it is absolute and exists; a relative path in ``base`` (the manifest's
    folder, ending with a separator), else (only when ``base`` lacks it) in the working
    directory; ``None`` if it is missing."""
    if path.__class__ is str and path[:1] != os.sep and not os.altsep:
        cand = base + path  # os.path.isabs and join's answer for a relative path
    elif os.path.isabs(path):
        return path if files.exists(path) else None
    else:
        cand = os.path.join(base, path)
    if files.exists(cand):
        return cand
    cand = os.path.join(os.getcwd(), path)
    return cand if files.exists(cand) else None


def normpath(path: str) -> str:
    """``os.path.normpath``, skipped for a path it would leave as it is."""
    sep = os.sep
    if (not path or path[-1] == sep or sep + "." in path or sep + sep in path
            or path[0] == "." or os.altsep):
        return os.path.normpath(path)
    return path


class Folders(dict):  # type: ignore[type-arg]
    """What :func:`find` and :func:`normpath` answer for the sources of one manifest,
    worked out once per folder: ``locate(path)`` is ``(audio, source)``, the normalized
    path :func:`find` finds and that path relative to the corpus root (as
    :func:`~dataset_recipes.common.rel_str` gives it), or ``None`` where :func:`find`
    finds nothing or the path is not one of the simple kind handled here (the recipe
    then asks :func:`audio_path`, which answers the same for every path)."""

    def __init__(self, base: str, root: str, files: FileIndex) -> None:
        super().__init__()
        self.base, self.files = base, files
        self.prefix = root.rstrip(os.sep) + os.sep  # rel_str's

    def locate(self, path: Any) -> tuple[str, str] | None:
        """``(audio, source)`` of a recording's one ``file`` source ``path``, or ``None``."""
        if path.__class__ is not str:
            return None
        cut = path.rfind(os.sep) + 1
        name = path[cut:]
        if not name or name[0] == ".":  # (a name that normalizing could change)
            return None
        head = path[:cut]
        candidates = self.get(head)
        if candidates is None:
            candidates = self[head] = self._candidates(head)
        for names, folder, source_folder in candidates:
            if name in (names if names is not None else self.files.names(folder[:-1])):
                return folder + name, source_folder + name
        return None

    def _candidates(self, head: str) -> tuple[tuple[set[str] | None, str, str], ...]:
        """For the paths ``head + name``: ``(names of the files in the folder, the folder
        with a trailing separator, the same relative to the root)`` for each folder
        :func:`find` looks in, in its order (the names of the first only: find lists the
        working directory's folder only where the first lacks the file); none where a
        path there is not simple (a separator other than ``/``, a folder that normalizing
        changes or that ends with a separator before the last)."""
        if os.altsep:
            return ()
        if head[:1] == os.sep:
            folders = [head]  # absolute: find looks nowhere else
        else:
            folders = [self.base + head, os.path.join(os.getcwd(), head)]
        out = []
        for folder in folders:
            listed = folder[:-1]  # the folder FileIndex.exists lists for folder + name
            if (not listed or listed[-1] == os.sep or os.sep + "." in folder
                    or os.sep + os.sep in folder or folder[0] == "."):
                return ()  # (exists and normpath take their slow ways here)
            source = folder[len(self.prefix):] if folder.startswith(self.prefix) else folder
            out.append((None, folder, source))
        first = out[0]
        return ((self.files.names(first[1][:-1]), *first[1:]), *out[1:])
