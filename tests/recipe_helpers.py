"""Helpers shared by the recipe tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
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


def record_downloads(monkeypatch: Any, fill: Callable[[Path], None] | None = None
                     ) -> list[list[tuple[str, dict[str, Any]]]]:
    """Stand in for :func:`pipeline.download.download_corpus` (no network): each call
    appends its remotes as ``(url, what is declared of md5/sha256/size/name)`` to the
    returned list, runs ``fill(target)`` (to write what the download would unpack) and
    returns the target folder, as the real one does."""
    import pipeline.download

    calls: list[list[tuple[str, dict[str, Any]]]] = []

    def fake(remotes: list[Any], target: Path, **_: Any) -> Path:
        calls.append([(r.url, {k: getattr(r, k) for k in ("md5", "sha256", "size", "name")
                               if getattr(r, k) is not None}) for r in remotes])
        if fill is not None:
            fill(target)
        return target

    monkeypatch.setattr(pipeline.download, "download_corpus", fake)
    return calls


def download(recipe: Recipe, target: Path, splits: list[str] | None = None) -> Path:
    """Run ``recipe``'s declared download as ``make download`` does."""
    from pipeline.download import download_declared

    assert recipe.download is not None
    return download_declared(recipe.download, target, splits=splits)
