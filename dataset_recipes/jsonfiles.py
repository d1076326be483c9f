"""Reading JSON label files (one document, not one row per line) in one pass.

A file is decoded as UTF-8 with its undecodable bytes kept as escapes: an entry holding
such bytes is a reject (:func:`undecodable` quotes them), the others are read.
:func:`json_members` and :func:`json_items` walk the top-level object or array once,
giving each entry with the line it starts on (NSynth's 306k notes, VocalSound's list).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from dataset_recipes.textfiles import bad_bytes_reason

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


def read_json_text(path: Path) -> tuple[str, bool]:
    """A JSON file's text, and whether it holds bytes that are not UTF-8: those stay as
    escapes that :func:`undecodable` finds in the entry holding them."""
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
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

    ``quick(key, value)`` (optional) is for flat objects (json's scanner was half of
    NSynth's parse): an object value is first read by orjson from its text up to its
    first ``}``, and what ``quick`` makes of that is yielded unless it is ``None``; else
    (or where orjson fails) json's scanner reads it.  orjson reads only valid JSON, so
    the text it read is the whole object, with json's values except that an integer
    beyond 64 bits becomes a float: ``quick`` returns ``None`` where that could matter."""
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
