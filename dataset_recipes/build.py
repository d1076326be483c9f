"""Command line of the dataset build (what ``make build-dataset`` runs).

    python -m dataset_recipes.build recipe=clotho source=sample
    python -m dataset_recipes.build recipe=librispeech raw=/data/LibriSpeech out=/data/shards/ls
    python -m dataset_recipes.build recipe=all source=sample        # every recipe + mixture.json

This is the layer that knows the recipe registry; it hands a recipe to
:func:`pipeline.build.run_build`.  Configuration: ``conf/build.yaml``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from dataset_recipes import RECIPES, get_recipe
from pipeline.build import BuildError, run_build
from pipeline.mixture import write_mixture
from pipeline.recipe import CorpusNotFound, Recipe
from pipeline.stages import BuildOptions

log = logging.getLogger("build")


def _names(spec: Any) -> list[str]:
    if spec == "all":
        names = list(RECIPES)
    elif isinstance(spec, str):
        names = [n.strip() for n in spec.split(",") if n.strip()]
    else:  # a Hydra list: recipe=[clotho,librispeech]
        names = [str(n) for n in spec]
    for n in names:
        get_recipe(n)  # unknown names fail before any work, listing the choices
    return names


def _corpus_dir(recipe: Recipe, cfg: DictConfig, several: bool) -> Path:
    name = recipe.info.name
    if cfg.source == "sample":
        base = Path("data/samples") / name if (cfg.raw is None or several) else Path(cfg.raw)
        return recipe.locate(recipe.make_sample(base))
    if cfg.source == "raw":
        raw = Path("data/raw") / name if (cfg.raw is None or several) else Path(cfg.raw)
        return recipe.locate(raw)
    raise ValueError(f"source={cfg.source!r}: choose raw or sample"
                     + (" (hf is offered by recipes that list it)" if cfg.source == "hf" else ""))


def _align_check(align: dict[str, Any] | None):  # noqa: ANN202
    if not align or not align.get("enabled"):
        return None
    from pipeline.align import AlignConfig, make_aligner

    aligner = make_aligner(AlignConfig.from_dict(align))
    return aligner.check


def build_one(name: str, cfg: DictConfig, out: Path, several: bool) -> dict[str, Any]:
    """Build one recipe into ``out``; return its report."""
    recipe = get_recipe(name)
    corpus = _corpus_dir(recipe, cfg, several)
    align = OmegaConf.to_container(cfg.align, resolve=True) if "align" in cfg else None
    options = BuildOptions(
        shard_size=int(cfg.shard_size), max_seconds=float(cfg.max_seconds),
        long_audio=cfg.long_audio or recipe.info.long_audio,
        align=align if (align and align.get("enabled")) else None,  # type: ignore[arg-type]
    )
    log.info("building %s from %s into %s", name, corpus, out)
    return run_build(recipe, corpus, out, options, runner=cfg.runner, workers=cfg.workers,
                     progress=cfg.progress, check_align=_align_check(options.align))


@hydra.main(version_base="1.3", config_path="../conf", config_name="build")
def main(cfg: DictConfig) -> None:
    """Build one or several recipes; several also write ``mixture.json`` in the root."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        names = _names(cfg.recipe)
        several = len(names) > 1 or cfg.recipe == "all"
        root = Path(cfg.out or "data/shards") if several else None
        for name in names:
            out = root / name if root else Path(cfg.out or f"data/shards/{name}")
            rep = build_one(name, cfg, out, several)
            print(f"{name}: {rep['samples']} samples, {rep['hours']:.4f} h, "
                  f"{rep['rejects']} rejects -> {out}")
        if root is not None:
            print(f"mixture: {write_mixture(root)}")
    except (CorpusNotFound, KeyError, ValueError, BuildError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
