"""Helpers shared by the recipes: finding a corpus root, reading label files with line
numbers, and turning bad rows into rejects that name the file and line."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.recipe import CorpusInfo, not_found
from pipeline.record import Reject

SAMPLES_DIR = Path(__file__).parent / "samples"


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


def rel(path: Path, root: Path) -> str:
    """``path`` relative to the corpus root (what samples and rejects name), so the same
    corpus gives the same sample metadata wherever it is unpacked."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def read_csv_rows(path: Path, root: Path, recipe: str, split: str,
                  required: tuple[str, ...], delimiter: str = ","
                  ) -> Iterator[tuple[int, dict[str, str]] | Reject]:
    """Yield ``(line number, row)`` for each data row, or a :class:`Reject` for a row that
    is malformed (wrong field count, a required field empty).  A file lacking a required
    column raises ``ValueError`` naming the file and the columns it has."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; found {header}. "
                             "Is this the official file, unmodified?")
        for row in reader:
            line = reader.line_num
            if None in row or any(v is None for v in row.values()):
                yield Reject(recipe, split, rel(path, root),
                             f"malformed row: expected {len(header)} fields", line=line)
                continue
            empty = [c for c in required if not row[c].strip()]
            if empty:
                yield Reject(recipe, split, rel(path, root), f"empty field(s) {empty}", line=line)
                continue
            yield line, row
