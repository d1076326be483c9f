"""Lhotse manifests read as plain tuples, without Lhotse's classes (and without importing
Lhotse, which imports torch: seconds), for :mod:`dataset_recipes.lhotse_manifests`.

:func:`read_plain` reads a manifest as :func:`lhotse.load_manifest` reads it (Lhotse's
``load_jsonl``: text in the locale's encoding, universal newlines, each line decoded with
orjson where it is installed and reads the line, else with :func:`json.loads`) and gives
each line as a :class:`Recording` or :class:`Supervision` tuple with the attributes of
Lhotse's ``Recording`` / ``SupervisionSegment`` that the recipe reads, but only where every
line is an object in the plain form Lhotse writes, the form its ``from_dict`` takes as it
is (:func:`plain_recording`, :func:`plain_supervision`).  For any other manifest (a line
that is not JSON, a transform, a video source, an old alignment format, nested custom
fields, an unknown field...) it answers ``None`` and the recipe reads the file with Lhotse
as before, so both ways give the same records, rejects and errors
(``tests/test_recipe_lhotse_plain.py`` compares them).

Tuples of strings and numbers cost little memory, and the garbage collector stops
tracking them; Lhotse's objects cost it most of the parse.
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


def plain_recording(d: Any) -> Recording:
    """The recording of a decoded line that ``Recording.from_dict`` takes as it is: known
    fields only (a missing ``id``, ``sources`` or ``duration`` raises ``KeyError``), every
    source a dict of ``type``, ``channels`` and ``source`` (no video), no ``transforms``;
    raises :class:`NotPlain` otherwise (or what Lhotse would raise: ``Recording`` sorts
    the sources' channels when ``channel_ids`` is missing)."""
    if (d.__class__ is not dict or not d.keys() <= _RECORDING_KEYS
            or "sampling_rate" not in d or "num_samples" not in d):
        raise NotPlain
    sources = d["sources"]
    if sources.__class__ is not list:
        raise NotPlain
    if len(sources) == 1 and sources[0].__class__ is dict and sources[0].keys() == _SOURCE_KEYS:
        plain = (Source(sources[0]["type"], sources[0]["source"]),)  # (most recordings)
    elif all(s.__class__ is dict and s.keys() == _SOURCE_KEYS for s in sources):
        plain = tuple(Source(s["type"], s["source"]) for s in sources)
    else:
        raise NotPlain
    if d.get("channel_ids") is None:
        sorted(c for s in sources for c in s["channels"])
    return Recording(d["id"], plain, d["duration"])


def plain_supervision(d: Any) -> Supervision:
    """The supervision of a decoded line that ``SupervisionSegment.from_dict`` takes as it
    is: known fields only (a missing ``id``, ``recording_id``, ``start`` or ``duration``
    raises ``KeyError``), ``custom`` none or without nested objects (Lhotse would try to
    read those as arrays), ``alignment`` a dict of lists of ``[symbol, start, duration]``
    or ``[..., score]`` lists; raises :class:`NotPlain` otherwise."""
    if d.__class__ is not dict or not d.keys() <= _SUPERVISION_KEYS:
        raise NotPlain
    custom = d.get("custom")
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
    return Supervision(d["id"], d["recording_id"], d["start"], d["duration"], d.get("text"),
                        d.get("language"), alignment)


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


def read_plain(path: Path, plain: Callable[[Any], Any]) -> list[tuple[int, Any]] | None:
    """``(line, plain(decoded line))`` of every line of a manifest, read as Lhotse's
    ``load_jsonl`` reads it (text in the locale's encoding, universal newlines, each line
    decoded by :func:`decode_line`); ``None`` when any line is not plain or anything fails
    (Lhotse then reads the file, as it did before)."""
    if _SPECIAL_PATH.search(str(path)):
        return None
    try:
        with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as f:
            return [(n, plain(decode_line(line))) for n, line in enumerate(f, 1)]
    except Exception:  # noqa: BLE001 - not plain or not readable: Lhotse decides
        return None
