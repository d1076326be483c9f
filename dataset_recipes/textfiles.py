"""Reading label files: each corpus's documented encoding, the line a record starts on, and
linear time on files of millions of rows.

Every reader here decodes one physical line at a time, so one bad byte costs one row,
never the file: a line that is not valid in the corpus's encoding is decoded with the
recipe's fallback where that is safe (see :class:`Encoding`), and otherwise becomes a
:class:`~pipeline.record.Reject` naming the file, the line and the offending bytes.
Line numbers are physical lines counted from 1; a CSV record whose quoted field spans
several lines is reported at the line where it starts.

JSON label files (one document, not one row per line) are decoded as UTF-8 with the
undecodable bytes kept as escapes: an entry holding such bytes is a reject, the others
are read.  :func:`json_members` and :func:`json_items` walk the top-level object or
array once, giving each entry with the line it starts on.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

from pipeline.errors import InputError
from pipeline.record import Reject

_BOM = b"\xef\xbb\xbf"
#: Characters decoded at a time by :func:`text_lines`.
_CHUNK = 1 << 22
_WS = re.compile(r"[ \t\n\r]*")
_ESCAPED = re.compile(r"[\udc80-\udcff]+")
#: What may follow a member's value: blanks, then ',' (and blanks) or '}'.
_AFTER_MEMBER = re.compile(r"[ \t\n\r]*([,}])[ \t\n\r]*")
#: A member's key and colon: a JSON string (no control characters) then ':'.  (Runs of
#: plain characters between escapes: the same strings as ``(?:[^"\\\x00-\x1f]|\\.)*``,
#: matched three times faster.)
_MEMBER = re.compile(r'"([^"\\\x00-\x1f]*(?:\\.[^"\\\x00-\x1f]*)*)"[ \t\n\r]*:[ \t\n\r]*')
#: What most often follows a member's value: ',' then the next member's key and colon.
_NEXT_MEMBER = re.compile(r'[ \t\n\r]*,[ \t\n\r]*' + _MEMBER.pattern)


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
            if n == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
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
    records = csv_records(path, encoding, delimiter=delimiter)
    header = _csv_header(path, records, required)
    columns = {c: i for i, c in enumerate(header)}
    return columns, _csv_rows(records, src, recipe, split, required, header, columns, False)


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
    records = csv_records(path, encoding, delimiter=delimiter)
    header = _csv_header(path, records, required)
    columns = {c: i for i, c in enumerate(header)}
    yield from _csv_rows(records, src, recipe, split, required, header, columns, True)


def read_json_text(path: Path) -> tuple[str, bool]:
    """A JSON file's text, and whether it holds bytes that are not UTF-8: those stay as
    escapes that :func:`undecodable` finds in the entry holding them."""
    data = path.read_bytes()
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", "surrogateescape"), True


def undecodable(text: str) -> str | None:
    """Why ``text`` (from :func:`read_json_text`) holds bytes that were not UTF-8 (quoting
    them), or ``None``."""
    m = _ESCAPED.search(text)
    if m is None:
        return None
    offset = len(text[:m.start()].encode("utf-8", "surrogateescape"))
    return bad_bytes_reason(m.group().encode("utf-8", "surrogateescape"), offset, "utf-8")


def _skip(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()  # type: ignore[union-attr]


def _expect(text: str, pos: int, chars: str, what: str) -> str:
    if pos >= len(text) or text[pos] not in chars:
        raise json.JSONDecodeError(f"Expecting {what}", text, pos)
    return text[pos]


class _Lines:
    """Line of a position in ``text``, counting newlines once (positions only grow)."""

    def __init__(self, text: str) -> None:
        self.text, self.pos, self.line = text, 0, 1

    def at(self, pos: int) -> int:
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


def json_members(text: str, pos: int = 0, quick: Callable[[str, Any], Any] | None = None
                 ) -> Iterator[tuple[int, str, Any, int, int]]:
    """``(line, key, value, start, end)`` of each member of the JSON object at ``pos``
    (whitespace skipped), in file order and in one pass; duplicate keys are all given.
    ``start:end`` is the member's text.  Raises :class:`json.JSONDecodeError` (with
    json's own message and position) at the first syntax error.

    ``quick(key, value)``, when given, is a faster way for flat objects (NSynth's 306k
    entries: json's scanner was half the parse): a value that is a JSON object is first
    read by orjson from its text up to its first ``}`` (the whole object where it holds
    none nested), and what ``quick`` makes of that reading is yielded as the value unless
    it is ``None``.  Where orjson cannot read that text, or ``quick`` returns ``None``,
    json's scanner reads the value as without ``quick``.  orjson accepts only valid JSON,
    so text it reads is the whole object, with json's strings, small integers, floats and
    last-of-duplicate keys; but it reads an integer beyond 64 bits as a float: ``quick``
    returns ``None`` wherever such a difference could matter to its caller."""
    decoder = json.JSONDecoder()
    scan, count, find, loads = decoder.scan_once, text.count, text.find, orjson.loads
    pos = _skip(text, pos)
    _expect(text, pos, "{", "'{'")
    pos = _skip(text, pos + 1)
    if text[pos:pos + 1] == "}":
        return
    member, next_member, after_value = _MEMBER.match, _NEXT_MEMBER.match, _AFTER_MEMBER.match
    line, last = 1, 0  # the line of position `last`
    m = member(text, pos)  # '"key" :' in one step; anything else: json's error
    while True:
        if m is None:
            _expect(text, pos, '"', "property name enclosed in double quotes")
            _, after = decoder.raw_decode(text, pos)
            _expect(text, _skip(text, after), ":", "':' delimiter")
            raise json.JSONDecodeError("Expecting property name", text, pos)  # unreachable
        start, key = m.start(1) - 1, m.group(1)
        if "\\" in key:
            key = json.loads(f'"{key}"')
        pos = m.end()
        value = None
        if quick is not None and text.startswith("{", pos):
            close = find("}", pos) + 1
            try:
                value = quick(key, loads(text[pos:close])) if close else None
            except orjson.JSONDecodeError:  # (not valid JSON up to there: json's turn)
                pass
            if value is not None:
                pos = close
        if value is None:
            try:
                value, pos = scan(text, pos)
            except StopIteration as err:
                raise json.JSONDecodeError("Expecting value", text, err.value) from None
        line += count("\n", last, start)
        last = start
        yield line, key, value, start, pos
        m = next_member(text, pos)  # ',' and the next '"key" :' in one step
        if m is not None:
            continue
        m = after_value(text, pos)  # else '}', or ',' then json's error
        if m is not None:
            if m.group(1) == "}":
                return
            pos = m.end()
        else:
            pos = _skip(text, pos)
            if _expect(text, pos, ",}", "',' delimiter") == "}":
                return
            pos = _skip(text, pos + 1)
        m = member(text, pos)


def json_items(text: str, pos: int) -> Iterator[tuple[int, Any, int, int]]:
    """``(line, value, start, end)`` of each element of the JSON array at ``pos``, in one
    pass; errors as :func:`json_members`."""
    decoder, lines = json.JSONDecoder(), _Lines(text)
    pos = _skip(text, pos)
    _expect(text, pos, "[", "'['")
    pos = _skip(text, pos + 1)
    if text[pos:pos + 1] == "]":
        return
    while True:
        start = pos
        value, pos = decoder.raw_decode(text, pos)
        yield lines.at(start), value, start, pos
        pos = _skip(text, pos)
        if _expect(text, pos, ",]", "',' delimiter") == "]":
            return
        pos = _skip(text, pos + 1)
