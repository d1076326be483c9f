"""Command line of corpus downloads (what ``make download`` runs).

    python -m dataset_recipes.download recipe=librispeech                 # -> data/raw/librispeech
    python -m dataset_recipes.download recipe=librispeech splits=[dev-clean] raw=/data/ls
    python -m dataset_recipes.download recipe=[librispeech,clotho] force=true

Each recipe's ``download(target_dir)`` fetches the publisher's files (resumable, checksums
verified) and unpacks them safely (see :mod:`pipeline.download`); the result is the
folder that ``make build-dataset RECIPE=<name> RAW=<dir>`` reads.  A recipe whose corpus
cannot be downloaded automatically (registration, licence click-through, no public URL)
has ``download=None``: the command prints how to get it by hand and exits with status 2,
before downloading anything.  Configuration: ``conf/download.yaml``.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig

from dataset_recipes import get_recipe
from pipeline.download import ArchiveError, DownloadError
from pipeline.recipe import Recipe

log = logging.getLogger("download")


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, ListConfig | list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def plan(names: Sequence[str], splits: Sequence[str], force: bool) -> list[str]:
    """Every configuration problem of a download, all at once (empty list: go ahead)."""
    problems = []
    for name in names:
        recipe = get_recipe(name)
        if recipe.download is None:
            problems.append(f"{name}: no automatic download for {recipe.info.title}.\n"
                            f"  How to get it: {recipe.info.download_hint}")
            continue
        params = inspect.signature(recipe.download).parameters
        if splits and "splits" not in params:
            problems.append(f"{name}: this recipe downloads all its files; drop splits=")
        unknown = [s for s in splits if s not in recipe.info.splits]
        if splits and "splits" in params and unknown:
            problems.append(f"{name}: unknown split(s) {unknown}; choose from "
                            f"{', '.join(recipe.info.splits)}")
        if force and "force" not in params:
            problems.append(f"{name}: this recipe's download takes no force=")
    return problems


def download_one(recipe: Recipe, raw: Path, splits: Sequence[str], force: bool) -> Path:
    """Run ``recipe.download`` into ``raw`` with the options it accepts; return the folder."""
    if recipe.download is None:
        raise ValueError(f"{recipe.info.name}: no automatic download; "
                         f"{recipe.info.download_hint}")
    params = inspect.signature(recipe.download).parameters
    kwargs: dict[str, Any] = {}
    if splits:
        kwargs["splits"] = list(splits)
    if "force" in params:
        kwargs["force"] = force
    return recipe.download(raw, **kwargs)


def run(cfg: DictConfig) -> int:
    """Download what ``cfg`` asks for; return the exit status (0 done, 1 failed, 2 refused)."""
    try:
        names = _as_list(cfg.recipe)
        splits = _as_list(cfg.splits)
        problems = plan(names, splits, bool(cfg.force))
    except KeyError as err:
        problems = [str(err.args[0] if err.args else err)]
    if problems:
        print("\n".join(f"error: {p}" for p in problems), file=sys.stderr)
        return 2
    several = len(names) > 1
    for name in names:
        raw = Path(cfg.raw) / name if (cfg.raw and several) else Path(cfg.raw or f"data/raw/{name}")
        try:
            path = download_one(get_recipe(name), raw, splits, bool(cfg.force))
        except (DownloadError, ArchiveError, ValueError) as err:
            print(f"error: {name}: {err}", file=sys.stderr)
            return 1
        print(f"{name}: ready in {path}\n  next: make build-dataset RECIPE={name} RAW={path}")
    return 0


@hydra.main(version_base="1.3", config_path="../conf", config_name="download")
def main(cfg: DictConfig) -> None:
    """Download one or several corpora into ``raw`` (default ``data/raw/<recipe>``)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(run(cfg))


if __name__ == "__main__":
    main()
