"""Lhotse manifests read as plain tuples, without Lhotse's classes (and without importing
Lhotse, which imports torch: seconds), for :mod:`dataset_recipes.lhotse_manifests`.

:func:`read_plain` reads a manifest as :func:`lhotse.load_manifest` reads it (Lhotse's
``load_jsonl``: text in the locale's encoding, universal newlines, each line decoded with
orjson where it is installed and reads the line, else with :func:`json.loads`) and gives
each line as a row, a tuple of the fields of Lhotse's ``Recording`` / ``SupervisionSegment``
that the recipe reads, but only where every line is an object in the plain form Lhotse
writes, the form its ``from_dict`` takes as it is (:func:`plain_recording`,
:func:`plain_supervision`).  For any other manifest (a line
that is not JSON, a transform, a video source, an old alignment format, nested custom
fields, an unknown field...) it answers ``None`` and the recipe reads the file with Lhotse
as before, so both ways give the same records, rejects and errors
(``tests/test_recipe_lhotse_plain.py`` compares them).

The rows are plain tuples (:data:`RecordingRow`, :data:`SupervisionRow`), not the named
tuples below: the garbage collector stops tracking a tuple of strings and numbers, but only
an exact ``tuple``, never a subclass, and a quarter of a million tracked lines made its full
collections cost a sixth of the parse.  :func:`recording_view` and
:func:`supervision_view` give a row the attributes of Lhotse's objects where the recipe
needs them.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

try:  # Lhotse decodes manifest lines with orjson when it is installed
    import orjson
except ImportError:  # pragma: no cover - orjson is in requirements.lock
    orjson = None


#: A plain recording line: ``(line, id, duration, type, source, type, source, ...)``, the
#: type and path of each of its sources following, flat (a row holding tuples could stay
#: tracked: the collector may look at a row before the tuples it holds).
RecordingRow = tuple[Any, ...]
#: A plain supervision line: ``(line, id, recording_id, start, duration, text, language,
#: alignment)`` (alignment ``None`` or ``{kind: [Word, ...]}``).
SupervisionRow = tuple[int, Any, Any, Any, Any, Any, Any, "dict[str, list[Word]] | None"]


class Source(NamedTuple):
    """The fields of a Lhotse ``AudioSource`` the recipe reads."""

    type: Any
    source: Any


class Recording(NamedTuple):
    """A plain Lhotse ``Recording`` line: the attributes the recipe reads (a tuple of
    atoms, which the garbage collector stops tracking; Lhotse's objects cost it most of
    the parse)."""

    id: Any
    sources: tuple[Source, ...]
    duration: Any
    transforms: None = None


class Word(NamedTuple):
    """Lhotse's ``AlignmentItem``."""

    symbol: Any
    start: Any
    duration: Any
    score: Any = None


class Supervision(NamedTuple):
    """A plain Lhotse ``SupervisionSegment`` line: the attributes the recipe reads."""

    id: Any
    recording_id: Any
    start: Any
    duration: Any
    text: Any
    language: Any
    alignment: dict[str, list[Word]] | None

    @property
    def end(self) -> Any:
        """``SupervisionSegment.end``."""
        return round(self.start + self.duration, ndigits=8)


class NotPlain(Exception):
    """A manifest line in a form left to Lhotse's own classes."""


_RECORDING_KEYS = frozenset({"id", "sources", "sampling_rate", "num_samples", "duration",
                             "channel_ids"})
_SOURCE_KEYS = frozenset({"type", "channels", "source"})
_SUPERVISION_KEYS = frozenset({"id", "recording_id", "start", "duration", "channel", "text",
                               "language", "speaker", "gender", "custom", "alignment"})
#: Paths Lhotse's I/O opens in a special way (a file inside a tar archive, a command).
_SPECIAL_PATH = re.compile(r"^pipe:|\.tar(?:\.gz|\.bz2|\.xz)?/")


def plain_recording(d: Any, line: int) -> RecordingRow:
    """The row of a decoded recording line that ``Recording.from_dict`` takes as it is:
    known fields only (a missing ``id``, ``sources`` or ``duration`` raises ``KeyError``),
    every source a dict of ``type``, ``channels`` and ``source`` (no video), no
    ``transforms``; raises :class:`NotPlain` otherwise (or what Lhotse would raise:
    ``Recording`` sorts the sources' channels when ``channel_ids`` is missing)."""
    # The form Lhotse writes (most lines) tested first, without key sets (a quarter of the
    # function's time): six fields, two named here and four read below (a missing one
    # raises KeyError), so none is unknown; one source of three, two of them read below.
    if (d.__class__ is dict and len(d) == 6 and "sampling_rate" in d and "num_samples" in d
            and (sources := d["sources"]).__class__ is list and len(sources) == 1
            and (s := sources[0]).__class__ is dict and len(s) == 3 and "channels" in s
            and d["channel_ids"] is not None):
        return (line, d["id"], d["duration"], s["type"], s["source"])
    if (d.__class__ is not dict or not d.keys() <= _RECORDING_KEYS
            or "sampling_rate" not in d or "num_samples" not in d):
        raise NotPlain
    sources = d["sources"]
    if sources.__class__ is not list:
        raise NotPlain
    if not all(s.__class__ is dict and s.keys() == _SOURCE_KEYS for s in sources):
        raise NotPlain
    if d.get("channel_ids") is None:
        sorted(c for s in sources for c in s["channels"])
    return (line, d["id"], d["duration"], *(x for s in sources for x in (s["type"], s["source"])))


def plain_supervision(d: Any, line: int) -> SupervisionRow:
    """The row of a decoded supervision line that ``SupervisionSegment.from_dict`` takes
    as it is: known fields only (a missing ``id``, ``recording_id``, ``start`` or
    ``duration`` raises ``KeyError``), ``custom`` none or without nested objects (Lhotse
    would try to read those as arrays), ``alignment`` a dict of lists of ``[symbol, start,
    duration]`` or ``[..., score]`` lists; raises :class:`NotPlain` otherwise."""
    # The form LibriSpeech's recipe writes tested first, without key sets: eight fields,
    # four named here and four read below (a missing one raises KeyError).
    if (d.__class__ is dict and len(d) == 8 and "channel" in d and "speaker" in d
            and "text" in d and "language" in d):
        return (line, d["id"], d["recording_id"], d["start"], d["duration"], d["text"],
                d["language"], None)
    if d.__class__ is not dict or not d.keys() <= _SUPERVISION_KEYS:
        raise NotPlain
    if "custom" in d:
        custom = d["custom"]
        if custom is not None and (custom.__class__ is not dict or any(
                v.__class__ is dict for v in custom.values())):
            raise NotPlain
    alignment = None
    if "alignment" in d:
        alignment = d["alignment"]
        if alignment.__class__ is not dict or not all(
                items.__class__ is list and all(x.__class__ is list and 3 <= len(x) <= 4
                                                for x in items)
                for items in alignment.values()):
            raise NotPlain
        alignment = {kind: [Word(*x) for x in items] for kind, items in alignment.items()}
    return (line, d["id"], d["recording_id"], d["start"], d["duration"], d.get("text"),
            d.get("language"), alignment)


def recording_view(row: RecordingRow) -> Recording:
    """A recording row with the attributes of Lhotse's ``Recording``."""
    return Recording(row[1], tuple(Source(*row[i:i + 2]) for i in range(3, len(row), 2)),
                     row[2])


def supervision_view(row: SupervisionRow) -> Supervision:
    """A supervision row with the attributes of Lhotse's ``SupervisionSegment``."""
    return Supervision(*row[1:])


_json_decode = json.JSONDecoder().decode  # json.loads without its per-call checks


def decode_line(line: str) -> Any:
    """A manifest line decoded as Lhotse's ``decode_json_line`` decodes it: with orjson
    where orjson is installed and reads the line, else with :func:`json.loads` (which
    raises where neither reads it)."""
    if orjson is not None:
        try:
            return orjson.loads(line)
        except Exception:  # noqa: BLE001 - Lhotse's bare except: json decides
            pass
    return _json_decode(line)


def read_plain(path: Path, plain: Callable[[Any, int], Any]) -> list[Any] | None:
    """``plain(decoded line, line number)`` of every line of a manifest, read as Lhotse's
    ``load_jsonl`` reads it (text in the locale's encoding, universal newlines, each line
    decoded by :func:`decode_line`); ``None`` when any line is not plain or anything fails
    (Lhotse then reads the file, as it did before)."""
    if _SPECIAL_PATH.search(str(path)):
        return None
    try:
        # orjson reads nearly every manifest, so the lines go to it directly; only a file
        # with a line it rejects (NaN, a lone surrogate) is read again through decode_line
        return _read(path, plain, orjson.loads if orjson is not None else decode_line)
    except _ORJSON_ERROR:
        pass
    except Exception:  # noqa: BLE001 - not plain or not readable: Lhotse decides
        return None
    try:
        return _read(path, plain, decode_line)
    except Exception:  # noqa: BLE001 - as above
        return None


_ORJSON_ERROR = orjson.JSONDecodeError if orjson is not None else ()


#: Characters of text read at a time.
_CHUNK = 1 << 20


def _read(path: Path, plain: Callable[[Any, int], Any], decode: Callable[[str], Any]
          ) -> list[Any]:
    """``plain(decode(line), line number)`` of every line of the text of ``path``.

    The text is read in chunks and split at ``\\n``: the lines that iterating over the
    file gives (its newlines translated, as there), without their ``\\n``, which JSON
    ignores; iterating costs twice the time."""
    rows: list[Any] = []
    with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as f:
        rest = ""
        while chunk := f.read(_CHUNK):
            lines = (rest + chunk).split("\n")
            rest = lines.pop()
            rows += [plain(decode(line), n) for n, line in enumerate(lines, len(rows) + 1)]
        if rest:
            rows.append(plain(decode(rest), len(rows) + 1))
    return rows
