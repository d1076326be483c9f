"""Helpers shared by the recipe tests."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pipeline.recipe import Recipe
from pipeline.record import Record, Reject


def split_items(items: Iterable[Record | Reject]) -> tuple[list[Record], list[Reject]]:
    """A recipe's output as (records, rejects), each in the order the recipe yielded them."""
    records: list[Record] = []
    rejects: list[Reject] = []
    for item in items:
        (records if isinstance(item, Record) else rejects).append(item)
    return records, rejects


def parse_corpus(recipe: Recipe, raw: Path) -> tuple[list[Record], list[Reject]]:
    """Locate ``recipe``'s corpus under ``raw`` and parse it, as the build does."""
    return split_items(recipe.prepare(recipe.locate(raw)))


def build_sample(name: str, out: Path, raw: Path, **options: Any) -> dict[str, Any]:
    """Write recipe ``name``'s sample corpus under ``raw`` and build it into ``out`` in this
    process (``runner="local"``, no progress bar); return the build report."""
    from dataset_recipes import RECIPES
    from pipeline.build import run_build
    from pipeline.stages import BuildOptions

    recipe = RECIPES[name]
    corpus = recipe.locate(recipe.make_sample(raw))
    return run_build(recipe, corpus, out, BuildOptions(**options), runner="local",
                     progress=False)


def record_downloads(monkeypatch: Any) -> list[list[tuple[str, dict[str, Any]]]]:
    """Stand in for ``pipeline.download`` (no network): each ``download_corpus`` call
    appends its remotes as ``(url, keyword arguments)`` to the returned list and returns
    the target folder."""
    calls: list[list[tuple[str, dict[str, Any]]]] = []
    fake = SimpleNamespace(Remote=lambda url, **kw: (url, kw),
                           download_corpus=lambda remotes, target: calls.append(remotes) or target)
    monkeypatch.setitem(sys.modules, "pipeline.download", fake)
    return calls
