"""Command line of corpus downloads (what ``make download`` runs).

    python -m dataset_recipes.download recipe=librispeech                 # -> data/raw/librispeech
    python -m dataset_recipes.download recipe=librispeech splits=[dev-clean] raw=/data/ls
    python -m dataset_recipes.download recipe=[librispeech,clotho] force=true

Each recipe declares the publisher's files (:class:`pipeline.download.Downloads`: URLs,
checksums, sizes, per split); :func:`pipeline.download.download_declared` fetches them
(resumable, checksums verified) and unpacks them safely; the result is the folder that
``make build-dataset RECIPE=<name> RAW=<dir>`` reads.  A recipe whose corpus cannot be
downloaded automatically (registration, licence click-through, no public URL) has
``download=None``: the command prints how to get it by hand and exits with status 2,
before downloading anything, as it does for an unknown recipe or split.  A download that
fails (:class:`~pipeline.errors.UserError`: HTTP error, checksum mismatch, unsafe archive)
prints ``error: ...`` and exits with 1; any other exception keeps its traceback.
Configuration: ``conf/download.yaml``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig

from dataset_recipes import get_recipe
from pipeline.download import download_declared
from pipeline.errors import UnknownName, UserError
from pipeline.recipe import Recipe

log = logging.getLogger("download")


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, ListConfig | list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def plan(names: Sequence[str], splits: Sequence[str]) -> list[str]:
    """Every configuration problem of a download, all at once (empty list: go ahead)."""
    problems = []
    for name in names:
        try:
            recipe = get_recipe(name)
        except UserError as err:
            problems.append(str(err))
            continue
        if recipe.download is None:
            problems.append(f"{name}: no automatic download for {recipe.info.title}.\n"
                            f"  How to get it: {recipe.info.download_hint}")
            continue
        try:
            recipe.download.remotes(splits)
        except UserError as err:
            problems.append(f"{name}: {err}")
    return problems


def download_one(recipe: Recipe, raw: Path, splits: Sequence[str], force: bool) -> Path:
    """Fetch what ``recipe`` declares for ``splits`` into ``raw``; return the folder."""
    if recipe.download is None:
        raise UnknownName(f"{recipe.info.name}: no automatic download; "
                          f"{recipe.info.download_hint}")
    return download_declared(recipe.download, raw, splits=splits, force=force)


def run(cfg: DictConfig) -> int:
    """Download what ``cfg`` asks for; return the exit status (0 done, 1 failed, 2 refused)."""
    names = _as_list(cfg.recipe)
    problems = plan(names, _as_list(cfg.splits))
    if problems:
        print("\n".join(f"error: {p}" for p in problems), file=sys.stderr)
        return 2
    several = len(names) > 1
    for name in names:
        raw = Path(cfg.raw) / name if (cfg.raw and several) else Path(cfg.raw or f"data/raw/{name}")
        try:
            path = download_one(get_recipe(name), raw, _as_list(cfg.splits), bool(cfg.force))
        except UserError as err:  # any other exception is a bug: its traceback shows
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
