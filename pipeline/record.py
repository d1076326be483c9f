"""The one record type that flows from recipes to shards, and the sample schema.

A recipe yields :class:`Record` objects (one per audio file) or :class:`Reject` objects
(an input item it could not use, with the file and the reason).  The build turns each
record into one WebDataset sample: ``<key>.flac`` plus ``<key>.json`` whose fields are
named here once (see ``FORMAT.md``).
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

# The format's names (version, members, keys) are defined once, in pipeline.format.
from pipeline.format import AUDIO_EXT, FORMAT_VERSION, KEY_RE, META_EXT, SAMPLE_RATE

__all__ = ["AUDIO_EXT", "FORMAT_VERSION", "KEY_ASCII", "KEY_RE", "META_EXT", "Label", "Record",
           "Reject", "SampleMeta", "Word", "labels_of", "sanitize_key"]

_KEY_BAD = re.compile(r"[^A-Za-z0-9_\-]")
#: ``_KEY_BAD.sub("_", ...)`` of ASCII text as a ``bytes.translate`` table (one C pass;
#: :func:`sanitize_key` and ``dataset_recipes.common.stem_key`` use it).
KEY_ASCII = bytes(c if _KEY_BAD.match(chr(c)) is None else ord("_") for c in range(256))


def sanitize_key(raw: str) -> str:
    """Return a WebDataset-safe sample key: no dots, slashes or spaces.

    WebDataset splits a member name at its first dot, so ``a.b.flac`` would become key
    ``a`` with extension ``b.flac``.  Every character outside ``[A-Za-z0-9_-]`` becomes
    ``_``.
    """
    key = raw.strip()
    if key.isascii():
        key = key.encode("ascii").translate(KEY_ASCII).decode("ascii")
    else:
        key = _KEY_BAD.sub("_", key)
    if not key:
        raise ValueError(f"empty sample key derived from {raw!r}")
    return key


@dataclass(frozen=True, slots=True)
class Label:
    """One training target of a record, before tagging.

    ``task`` names a builder in :data:`pipeline.tags.TASKS`; ``args`` are that builder's
    prompt arguments (e.g. ``{"lang": "en"}`` or ``{"question": "..."}``); ``target`` is
    the output text that follows the prompt.
    """

    task: str
    target: str
    args: tuple[tuple[str, str], ...] = ()

    def __init__(self, task: str, target: str, args: tuple[tuple[str, str], ...] = ()) -> None:
        # The frozen dataclass's __init__ without its object.__setattr__ and two lookups per
        # field: each field's slot is set through its descriptor (_LABEL_SLOTS, in field
        # order); recipes make a label per item, millions of them.
        s = _LABEL_SLOTS
        s[0](self, task)
        s[1](self, target)
        s[2](self, args)

    @staticmethod
    def make(task: str, target: str, **args: str) -> Label:
        """Build a label with prompt arguments given as keywords."""
        return Label(task, target, tuple(sorted(args.items())) if args else ())

    @property
    def kwargs(self) -> dict[str, str]:
        """Prompt arguments as a dict."""
        return dict(self.args)


def labels_of(task: str, targets: Iterable[str]) -> tuple[Label, ...]:
    """``tuple(Label(task, target) for target in targets)``, for recipes that make several
    labels an item (Clotho: five captions a clip): each is made by ``object.__new__`` with
    its slots set as :meth:`Label.__init__` sets them, without a call of it per label."""
    new, (set_task, set_target, set_args) = object.__new__, _LABEL_SLOTS
    made = []
    for target in targets:
        label = new(Label)
        set_task(label, task)
        set_target(label, target)
        set_args(label, ())
        made.append(label)
    return tuple(made)


@dataclass(frozen=True, slots=True)
class Record:
    """One audio file of a corpus with all its labels.

    ``audio`` is a path readable by every build worker; ``source`` is the path relative to
    the corpus root (what the dataset card and rejects name); ``language`` is the spoken
    language code (``"unknown"`` for sounds and music); ``align`` asks the alignment stage
    to add an SRWT task from the record's ASR label.  ``listing`` and ``line`` name the
    label file (relative to the corpus root) and the line the record was read from, when
    there is one, so that a problem found later (a duplicate key) can point at it; they
    are not written into the sample.
    """

    recipe: str
    split: str
    key: str
    audio: str
    source: str
    language: str
    labels: tuple[Label, ...]
    align: bool = False
    meta: tuple[tuple[str, Any], ...] = ()
    listing: str | None = None
    line: int | None = None

    def __init__(self, recipe: str, split: str, key: str, audio: str, source: str,
                 language: str, labels: tuple[Label, ...], align: bool = False,
                 meta: tuple[tuple[str, Any], ...] = (), listing: str | None = None,
                 line: int | None = None) -> None:
        # The frozen dataclass's __init__, faster (see Label.__init__); the fields, their
        # order and defaults are checked against the class's at import.
        s = _RECORD_SLOTS
        s[0](self, recipe)
        s[1](self, split)
        s[2](self, key)
        s[3](self, audio)
        s[4](self, source)
        s[5](self, language)
        s[6](self, labels)
        s[7](self, align)
        s[8](self, meta)
        s[9](self, listing)
        s[10](self, line)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict (``dataclasses.asdict``): the form a shard's digest hashes
        (:func:`pipeline.shards._record_json` builds the same dict without asdict's deep
        copies; Ray tasks get records pickled)."""
        return asdict(self)

    @staticmethod
    def from_json(d: dict[str, Any]) -> Record:
        """Inverse of :meth:`to_json`."""
        labels = tuple(
            Label(task=lb["task"], target=lb["target"], args=tuple(tuple(a) for a in lb["args"]))
            for lb in d["labels"]
        )
        meta = tuple(tuple(m) for m in d.get("meta", ()))
        return Record(
            recipe=d["recipe"],
            split=d["split"],
            key=d["key"],
            audio=d["audio"],
            source=d["source"],
            language=d["language"],
            labels=labels,
            align=d.get("align", False),
            meta=meta,  # type: ignore[arg-type]
            listing=d.get("listing"),
            line=d.get("line"),
        )


def _check_init(cls: type) -> None:
    """Fail at import if a hand-written ``__init__`` no longer matches the fields."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    want = [(f.name, f.default) for f in fields(cls)]
    got = [(p.name, p.default if p.default is not p.empty else MISSING) for p in params]
    if got != want:
        raise TypeError(f"{cls.__name__}.__init__ takes {got}, but the fields are {want}")


def _slot_setters(cls: type) -> tuple[Callable[[Any, Any], None], ...]:
    """The ``__set__`` of each field's slot descriptor, in field order: what a frozen
    slotted dataclass's ``object.__setattr__`` ends in, called directly."""
    return tuple(cls.__dict__[f.name].__set__ for f in fields(cls))


_check_init(Label)
_check_init(Record)
_LABEL_SLOTS = _slot_setters(Label)
_RECORD_SLOTS = _slot_setters(Record)


@dataclass(frozen=True)
class Reject:
    """An input item that produced no sample (or lost a task), with the reason.

    ``source`` names the file (and ``line`` the line of a label file, when known) so that
    the user can find and fix it.  ``stage`` says where it failed: ``parse``, ``audio``,
    ``align`` or ``write``.  ``task`` is set when only one task was dropped.
    """

    recipe: str
    split: str
    source: str
    reason: str
    stage: str = "parse"
    line: int | None = None
    key: str | None = None
    task: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON line for ``rejects.jsonl`` (``None`` fields left out): ``asdict``'s dict
        without its deep copies (the fields are strings and numbers), 2 us instead of 25;
        a corpus with many missing clips has hundreds of thousands of rejects."""
        return {name: v for name in _REJECT_FIELDS if (v := getattr(self, name)) is not None}


_REJECT_FIELDS = tuple(f.name for f in fields(Reject))


@dataclass
class Word:
    """A transcribed word with its start and end in seconds from the clip start."""

    word: str
    start: float
    end: float


@dataclass
class SampleMeta:
    """The ``<key>.json`` member of a sample (see ``FORMAT.md``)."""

    key: str
    tasks: list[dict[str, str]]
    duration: float
    language: str
    source: dict[str, str]
    sample_rate: int = SAMPLE_RATE
    format_version: int = FORMAT_VERSION
    words: list[dict[str, Any]] | None = None
    truncated_from: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Dict written as the sample's JSON; optional empty fields are left out.

        ``dataclasses.asdict`` and its deep copies, spelled out (the build writes one per
        clip: asdict was 4% of writing a shard that keeps its FLAC)."""
        d: dict[str, Any] = {
            "key": self.key, "tasks": [dict(t) for t in self.tasks],
            "duration": self.duration, "language": self.language,
            "source": dict(self.source), "sample_rate": self.sample_rate,
            "format_version": self.format_version}
        if self.words is not None:
            d["words"] = [dict(w) for w in self.words]
        if self.truncated_from is not None:
            d["truncated_from"] = self.truncated_from
        if self.meta:
            d["meta"] = copy.deepcopy(self.meta)
        return d


if tuple(f.name for f in fields(SampleMeta)) != (
        "key", "tasks", "duration", "language", "source", "sample_rate", "format_version",
        "words", "truncated_from", "meta"):
    raise AssertionError("SampleMeta.to_json spells out SampleMeta's fields: update it")
