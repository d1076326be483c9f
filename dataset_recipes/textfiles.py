"""Reading label files: each corpus's documented encoding, the line a record starts on, and
linear time on files of millions of rows.

Every reader here decodes one physical line at a time, so one bad byte costs one row,
never the file: a line that is not valid in the corpus's encoding is decoded with the
recipe's fallback where that is safe (see :class:`Encoding`), and otherwise becomes a
:class:`~pipeline.record.Reject` naming the file, the line and the offending bytes.
Line numbers are physical lines counted from 1; a CSV record whose quoted field spans
several lines is reported at the line where it starts.

JSON label files (one document, not one row per line): :mod:`dataset_recipes.jsonfiles`.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from pipeline.errors import InputError
from pipeline.record import Reject

#: Characters decoded at a time by :func:`text_lines`.
_CHUNK = 1 << 22


@dataclass(frozen=True)
class Encoding:
    """How a corpus's label files are decoded, line by line.

    ``primary`` is the corpus's documented encoding.  ``fallback`` decodes a line that is
    not valid ``primary``; a recipe sets it only where that cannot change a target
    silently: the corpus's authors read their files that way (Clotho-AQA: latin-1), or
    every field the recipe uses comes from a closed ASCII vocabulary (ids, class names)
    that the recipe checks anyway.  Without a fallback such a line is a reject.
    """

    primary: str = "utf-8"
    fallback: str | None = None

    def decode(self, raw: bytes) -> tuple[str, str | None]:
        """``(text, None)``, or ``(text with U+FFFD, why)`` when neither the primary nor
        the fallback encoding can decode ``raw``; ``why`` quotes the offending bytes."""
        try:
            return raw.decode(self.primary), None
        except UnicodeDecodeError as err:
            if self.fallback is not None:
                return raw.decode(self.fallback, errors="replace"), None
            return raw.decode(self.primary, errors="replace"), bad_bytes_reason(
                raw[err.start:err.end], err.start, self.primary)


UTF8 = Encoding()
#: UTF-8, any other line as latin-1: for files whose used fields are plain ASCII anyway.
UTF8_OR_LATIN1 = Encoding("utf-8", "latin-1")


def bad_bytes_reason(bad: bytes, offset: int, encoding: str) -> str:
    """The reason of a reject for text that could not be decoded: the bytes, where they
    are (byte offset in the line or entry) and the fix."""
    return (f"not valid {encoding}: bytes {bad!r} at byte {offset}; re-save the file as "
            f"{encoding} (e.g. iconv -f <its encoding> -t {encoding})")


def _decodes(path: Path, encoding: str) -> bool:
    """Whether the whole file is valid ``encoding`` (one pass in C, a MiB at a time)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


@contextlib.contextmanager
def _text(path: Path, encoding: Encoding) -> Iterator[TextIO | None]:
    """The file opened as text when all of it is valid in the primary encoding (the
    common case, read at C speed), else ``None``: the caller decodes line by line.
    Lines end at ``\n`` only, as in the line-by-line path."""
    if not _decodes(path, encoding.primary):
        yield None
        return
    name = "utf-8-sig" if codecs.lookup(encoding.primary).name == "utf-8" else encoding.primary
    with open(path, encoding=name, newline="\n") as f:
        yield f


def text_lines(path: Path, encoding: Encoding = UTF8) -> Iterator[tuple[int, str]] | None:
    """``(line number, text without its \\n)`` of every line (blank ones too) when all of
    the file is valid in the primary encoding (the common case: decoded in C, a few MiB at
    a time, no per-line decoding), else ``None``: the caller decodes line by line."""
    if not _decodes(path, encoding.primary):
        return None
    return _chunked_lines(path, encoding)


def _chunked_lines(path: Path, encoding: Encoding) -> Iterator[tuple[int, str]]:
    name = "utf-8-sig" if codecs.lookup(encoding.primary).name == "utf-8" else encoding.primary
    with open(path, encoding=name, newline="\n") as f:
        n, tail = 0, ""
        while chunk := f.read(_CHUNK):
            lines = (tail + chunk).split("\n")
            tail = lines.pop()
            yield from enumerate(lines, n + 1)
            n += len(lines)
        if tail:
            yield n + 1, tail


def decoded_lines(path: Path, encoding: Encoding = UTF8
                  ) -> Iterator[tuple[int, str, str | None]]:
    """``(line number, text with its line ending, why it is undecodable or None)``."""
    with _text(path, encoding) as text:
        if text is not None:
            for n, line in enumerate(text, 1):
                yield n, line, None
            return
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if n == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            line, bad = encoding.decode(raw)
            yield n, line, bad


def read_lines(path: Path, src: str, recipe: str, split: str, encoding: Encoding = UTF8
               ) -> Iterator[tuple[int, str] | Reject]:
    """``(line number, text without line ending)`` of each non-blank line of a plain list
    file, or a reject (``src``: the file's name in rejects) for a line that cannot be
    decoded."""
    lines = text_lines(path, encoding)
    if lines is not None:  # the common case: no per-line decoding, no reject possible
        for n, text in lines:
            if text.strip():
                yield n, text.rstrip("\r")
        return
    for n, text, bad in decoded_lines(path, encoding):
        if bad is not None:
            yield Reject(recipe, split, src, bad, line=n)
        elif text.strip():
            yield n, text.rstrip("\r\n")


def csv_records(path: Path, encoding: Encoding = UTF8, **fmt: Any
                ) -> Iterator[tuple[int, list[str], str | None]]:
    """``(first line, fields, problem or None)`` of each non-empty CSV record; ``fmt``
    goes to :func:`csv.reader`.  The problem is an undecodable line of the record or a
    CSV syntax error."""
    with _text(path, encoding) as text:
        if text is not None:  # csv counts the lines it reads: a record starts after the last
            reader, last = csv.reader(text, **fmt), 0
            while True:
                try:  # (a for loop, resumed after an error: no next() call per record)
                    for fields in reader:
                        if fields:
                            yield last + 1, fields, None
                        last = reader.line_num
                    return
                except csv.Error as err:
                    yield last + 1, [], f"malformed CSV record ({err})"
                    last = reader.line_num
    state: dict[str, Any] = {"line": 0, "bad": None}

    def feed() -> Iterator[str]:
        for n, text, bad in decoded_lines(path, encoding):
            state["line"] = n
            if bad is not None and state["bad"] is None:
                state["bad"] = bad
            yield text

    reader = csv.reader(feed(), **fmt)
    while True:
        start, state["bad"] = state["line"] + 1, None
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield start, [], f"malformed CSV record ({err})"
            continue
        if fields or state["bad"] is not None:
            yield start, fields, state["bad"]


def _csv_header(path: Path, records: Iterator[tuple[int, list[str], str | None]],
                required: tuple[str, ...]) -> list[str]:
    """The header of a CSV file read by :func:`csv_records` (its first record), which
    must hold the ``required`` columns."""
    header: list[str] = []
    for n, fields, bad in records:
        if bad is not None:
            raise InputError(f"{path} line {n}: the header cannot be read: {bad}")
        header = fields
        break
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; found {header}. "
                         "Is this the official file, unmodified?")
    return header


def read_csv_fields(path: Path, src: str, recipe: str, split: str, required: tuple[str, ...],
                    delimiter: str = ",", encoding: Encoding = UTF8
                    ) -> tuple[dict[str, int], Iterator[tuple[int, list[str]] | Reject]]:
    """:func:`read_csv_rows` with each row as its list of fields: the header is read at
    once and returned as ``{column: index}`` (of a column's last occurrence, the field
    a row dict would hold), with the rows and rejects :func:`read_csv_rows` gives.  For
    recipes that read a few columns of many rows, without building a dict per row."""
    table = _csv_table(path, src, recipe, split, required, delimiter, encoding, False)
    header = next(table)
    return {c: i for i, c in enumerate(header)}, table


def _csv_table(path: Path, src: str, recipe: str, split: str, required: tuple[str, ...],
               delimiter: str, encoding: Encoding, as_dict: bool) -> Iterator[Any]:
    """The header of a CSV file (first), then its rows and rejects as :func:`_csv_rows`
    gives them.  Where all of the file decodes (nearly always), one loop reads and checks
    each record, as :func:`csv_records` and :func:`_csv_rows` do in two generators."""
    with _text(path, encoding) as text:
        if text is None:
            records = csv_records(path, encoding, delimiter=delimiter)
            header = _csv_header(path, records, required)
            yield header
            yield from _csv_rows(records, src, recipe, split, required, header,
                                 {c: i for i, c in enumerate(header)}, as_dict)
            return
        reader, last, head = csv.reader(text, delimiter=delimiter), 0, []
        while not head:  # (the first record that is not empty, as csv_records gives it)
            try:
                fields = next(reader, None)
            except csv.Error as err:
                head = [(last + 1, [], f"malformed CSV record ({err})")]
            else:
                if fields is None:
                    break
                if fields:
                    head = [(last + 1, fields, None)]
            last = reader.line_num
        header = _csv_header(path, iter(head), required)
        yield header
        columns, width = {c: i for i, c in enumerate(header)}, len(header)
        required_at = [(c, columns[c]) for c in required]
        while True:
            try:  # (csv_records' loop with _csv_rows' checks)
                for fields in reader:
                    n, last = last + 1, reader.line_num
                    if not fields:
                        continue
                    if len(fields) != width:
                        yield Reject(recipe, split, src,
                                     f"malformed row: expected {width} fields", line=n)
                        continue
                    for _, i in required_at:
                        if not fields[i].strip():
                            empty = [c for c, j in required_at if not fields[j].strip()]
                            yield Reject(recipe, split, src, f"empty field(s) {empty}",
                                         line=n)
                            break
                    else:
                        yield n, dict(zip(header, fields, strict=True)) if as_dict else fields
                return
            except csv.Error as err:
                yield Reject(recipe, split, src, f"malformed CSV record ({err})", line=last + 1)
                last = reader.line_num


def _csv_rows(records: Iterator[tuple[int, list[str], str | None]], src: str, recipe: str,
              split: str, required: tuple[str, ...], header: list[str],
              columns: dict[str, int], as_dict: bool
              ) -> Iterator[tuple[int, list[str] | dict[str, str]] | Reject]:
    """The data rows of a CSV file (as field lists, or as ``{column: field}`` dicts) and
    the rejects of :func:`read_csv_rows`.  ``columns[c]`` is the index of column ``c``'s
    last occurrence, the field a row dict holds."""
    required_at, width = [(c, columns[c]) for c in required], len(header)
    for n, fields, bad in records:
        if bad is not None:
            yield Reject(recipe, split, src, bad, line=n)
        elif len(fields) != width:
            yield Reject(recipe, split, src, f"malformed row: expected {width} fields",
                         line=n)
        else:
            for _, i in required_at:  # (a loop, not a list per row: most rows have all)
                if not fields[i].strip():
                    empty = [c for c, j in required_at if not fields[j].strip()]
                    yield Reject(recipe, split, src, f"empty field(s) {empty}", line=n)
                    break
            else:
                yield n, dict(zip(header, fields, strict=True)) if as_dict else fields


def read_csv_rows(path: Path, src: str, recipe: str, split: str, required: tuple[str, ...],
                  delimiter: str = ",", encoding: Encoding = UTF8
                  ) -> Iterator[tuple[int, dict[str, str]] | Reject]:
    """Yield ``(line the record starts on, row)`` for each data row, or a reject for a row
    that is malformed (wrong field count, a required field empty, bytes not in the
    corpus's encoding).  A file lacking a required column raises :class:`InputError`
    naming the file and the columns it has."""
    table = _csv_table(path, src, recipe, split, required, delimiter, encoding, True)
    next(table)
    yield from table
