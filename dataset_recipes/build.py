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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from dataset_recipes import RECIPES, get_recipe
from pipeline.build import BuildError, align_languages, run_build
from pipeline.mixture import write_mixture
from pipeline.recipe import CorpusNotFound, Recipe
from pipeline.record import Record, Reject
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
    """The corpus root: ``raw`` for one recipe; ``raw/<recipe>`` for several (the default
    root is ``data/raw``, or ``data/samples`` where the sample corpora are written)."""
    name = recipe.info.name
    if cfg.source not in ("raw", "sample"):
        raise ValueError(f"source={cfg.source!r}: choose raw, sample or hf")
    default_root = Path("data/samples" if cfg.source == "sample" else "data/raw")
    if cfg.raw is None:
        base = default_root / name
    else:
        base = Path(cfg.raw) / name if several else Path(cfg.raw)
    base = base.resolve()  # absolute: Ray workers may run in another folder or machine
    return recipe.locate(recipe.make_sample(base) if cfg.source == "sample" else base)


def _options(recipe: Recipe, cfg: DictConfig) -> BuildOptions:
    align = OmegaConf.to_container(cfg.align, resolve=True) if "align" in cfg else None
    return BuildOptions(
        shard_size=int(cfg.shard_size), max_seconds=float(cfg.max_seconds),
        long_audio=cfg.long_audio or recipe.info.long_audio,
        align=align if (align and align.get("enabled")) else None,  # type: ignore[arg-type]
    )


@dataclass
class Job:
    """One recipe to build: where from, where to, with which options and parsed items."""

    name: str
    recipe: Recipe
    corpus: Path
    out: Path
    options: BuildOptions
    items: list[Record | Reject]


def plan_job(name: str, cfg: DictConfig, out: Path, several: bool) -> Job:
    """Find and parse one recipe's corpus (no audio is read yet)."""
    recipe = get_recipe(name)
    if cfg.source == "hf":  # rows of a Hugging Face dataset; their audio goes to <out>/.hf_audio
        from dataset_recipes.hf_sources import HF_AUDIO_DIR, hf_recipe

        if not cfg.get("hf") or several:
            raise ValueError("source=hf needs one recipe and hf=<hub id or local dataset dir>")
        recipe, corpus = hf_recipe(name, str(cfg.hf)), (out / HF_AUDIO_DIR).resolve()
    else:
        corpus = _corpus_dir(recipe, cfg, several)
    return Job(name, recipe, corpus, out, _options(recipe, cfg), list(recipe.prepare(corpus)))


def check_alignment(jobs: list[Job]) -> None:
    """Fail before any audio work when a language that needs alignment cannot be aligned."""
    align = next((j.options.align for j in jobs if j.options.align), None)
    if align is None:
        return
    from pipeline.align import AlignConfig, make_aligner

    languages = align_languages(i for j in jobs for i in j.items if isinstance(i, Record))
    make_aligner(AlignConfig.from_dict(align)).check(languages)


def build(cfg: DictConfig) -> list[tuple[Job, dict[str, Any]]]:
    """Plan every recipe (all problems reported at once), check alignment, then build."""
    names = _names(cfg.recipe)
    several = len(names) > 1 or cfg.recipe == "all"
    root = Path(cfg.out or "data/shards") if several else None
    jobs, problems = [], []
    for name in names:
        out = root / name if root else Path(cfg.out or f"data/shards/{name}")
        try:
            jobs.append(plan_job(name, cfg, out, several))
        except (CorpusNotFound, ValueError) as err:
            problems.append(f"[{name}] {err}")
    if problems:
        raise ValueError("\n".join(problems))
    check_alignment(jobs)
    done = []
    for job in jobs:
        log.info("building %s from %s into %s", job.name, job.corpus, job.out)
        report = run_build(job.recipe, job.corpus, job.out, job.options, items=job.items,
                           runner=cfg.runner, workers=cfg.workers, progress=cfg.progress)
        print(f"{job.name}: {report['samples']} samples, {report['hours']:.4f} h, "
              f"{report['rejects']} rejects -> {job.out}")
        done.append((job, report))
    if root is not None:
        print(f"mixture: {write_mixture(root)}")
    return done


@hydra.main(version_base="1.3", config_path="../conf", config_name="build")
def main(cfg: DictConfig) -> None:
    """Build one or several recipes; several also write ``mixture.json`` in the root."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from pipeline.align.base import AlignConfigError

    try:
        build(cfg)
    except (KeyError, ValueError, BuildError, AlignConfigError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
