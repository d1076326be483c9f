"""What a corpus recipe provides to the build (the recipes themselves live in
``dataset_recipes/``; the build receives a :class:`Recipe` and never imports them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.download import Downloads
from pipeline.errors import UserError
from pipeline.record import Record, Reject

SplitRole = Literal["train", "valid", "test"]


class CorpusNotFound(UserError, FileNotFoundError):
    """The raw directory holds no corpus in the expected layout; the message says what to do."""


@dataclass(frozen=True)
class CorpusInfo:
    """Facts about a corpus that go into the report and the dataset card."""

    name: str
    title: str
    homepage: str
    licence: str
    citation: str
    tasks: tuple[str, ...]
    splits: dict[str, SplitRole]
    layout: str
    download_hint: str
    long_audio: Literal["reject", "truncate"] = "reject"
    notes: str = ""


@dataclass(frozen=True)
class Recipe:
    """A corpus recipe: find the corpus, parse it into records, make a sample corpus.

    ``locate(raw)`` returns the corpus root inside ``raw`` (accepting the folder the corpus
    extracts into or the corpus folder itself) or raises :class:`CorpusNotFound`;
    ``prepare(root)`` yields a :class:`Record` per usable item and a :class:`Reject` per
    unusable one; ``make_sample(dir)`` writes a small corpus in the official layout and
    returns the raw directory to pass to ``locate``; ``download`` declares the publisher's
    files (``None``: the corpus cannot be downloaded automatically, ``info.download_hint``
    says how to get it).
    """

    info: CorpusInfo
    locate: Callable[[Path], Path]
    prepare: Callable[[Path], Iterable[Record | Reject]]
    make_sample: Callable[[Path], Path]
    download: Downloads | None = None


def not_found(info: CorpusInfo, raw: Path, recipe: str) -> CorpusNotFound:
    """The standard error when ``raw`` holds no corpus: layout, download hint, sample."""
    return CorpusNotFound(
        f"{raw} holds no {info.title} corpus.\n"
        f"Expected layout:\n{info.layout}\n"
        f"How to get it: {info.download_hint}\n"
        f"To try the pipeline without it: make build-dataset RECIPE={recipe} SOURCE=sample"
    )
