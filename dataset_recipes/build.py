"""Command line of the dataset build (what ``make build-dataset`` runs).

    python -m dataset_recipes.build recipe=clotho source=sample
    python -m dataset_recipes.build recipe=librispeech raw=/data/LibriSpeech out=/data/shards/ls
    python -m dataset_recipes.build recipe=all source=sample        # every recipe + mixture.json

This is the layer that knows the recipe registry; it hands a recipe to
:func:`pipeline.build.run_build`.  Configuration: ``conf/build.yaml``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from dataset_recipes import RECIPES, get_recipe
from pipeline.build import BuildPlan, align_languages, plan_build, run_builds
from pipeline.errors import ConfigError, UserError
from pipeline.mixture import write_mixture
from pipeline.recipe import Recipe
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


def _base(name: str, cfg: DictConfig, several: bool) -> Path:
    """The folder given for ``name``'s corpus: ``raw`` for one recipe; ``raw/<recipe>`` for
    several (the default root is ``data/raw``, or ``data/samples`` for sample corpora)."""
    if cfg.source not in ("raw", "sample"):
        raise ConfigError(f"source={cfg.source!r}: choose raw, sample or hf")
    default_root = Path("data/samples" if cfg.source == "sample" else "data/raw")
    if cfg.raw is None:
        base = default_root / name
    else:
        base = Path(cfg.raw) / name if several else Path(cfg.raw)
    return base.resolve()  # absolute: Ray workers may run in another folder or machine


def _corpus_dir(recipe: Recipe, cfg: DictConfig, several: bool) -> Path:
    """The corpus root (see :func:`_base`), after writing a sample corpus if asked for."""
    base = _base(recipe.info.name, cfg, several)
    return recipe.locate(sample_corpus(recipe, base) if cfg.source == "sample" else base)


def _write_sample(name: str, base: Path) -> Path:
    return sample_corpus(get_recipe(name), base)


def write_samples(names: list[str], cfg: DictConfig, several: bool) -> None:
    """Write the sample corpora that are missing or stale, several at once (one process
    per CPU): most of a first ``make demo`` is generating them."""
    todo = [(n, _base(n, cfg, several)) for n in names]
    todo = [(n, b) for n, b in todo if not _sample_is_current(b)]
    workers = min(len(todo), os.cpu_count() or 1)
    if workers < 2:
        return  # (one: written in place by plan_job)
    from concurrent.futures import ProcessPoolExecutor

    from dataset_recipes import build as importable  # (this file may run as __main__)

    with ProcessPoolExecutor(workers) as pool:
        for done in [pool.submit(importable._write_sample, n, b) for n, b in todo]:
            done.result()


SAMPLE_STAMP = ".sample.json"


@functools.cache
def _samples_version() -> str:
    """Hash of the code and material the sample corpora are made from: dataset_recipes/,
    its command lines (this file, download.py) aside."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    commands = {package / "build.py", package / "download.py"}
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path not in commands:
            digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _sample_is_current(base: Path) -> Path | None:
    """The sample corpus root in ``base`` if it was written by the current recipes' code."""
    try:
        made = json.loads((base / SAMPLE_STAMP).read_text())
        if made["version"] == _samples_version() and (base / made["root"]).is_dir():
            return base / made["root"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def sample_corpus(recipe: Recipe, base: Path) -> Path:
    """Write ``recipe``'s sample corpus into ``base`` once; later builds reuse it while the
    recipes' code is unchanged (``base/.sample.json`` records the version it was made by).
    Returns the folder to pass to ``recipe.locate``."""
    stamp = base / SAMPLE_STAMP
    version = _samples_version()
    if (root := _sample_is_current(base)) is not None:
        return root
    stamp.unlink(missing_ok=True)
    root = Path(recipe.make_sample(base)).resolve()
    stamp.write_text(json.dumps({"version": version, "root": str(root.relative_to(base))}))
    return root


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
    #: language -> why its records get no SRWT in this build
    align_skipped: dict[str, str] = field(default_factory=dict)


def plan_job(name: str, cfg: DictConfig, out: Path, several: bool) -> Job:
    """Find and parse one recipe's corpus (no audio is read yet)."""
    recipe = get_recipe(name)
    if cfg.source == "hf":  # rows of a Hugging Face dataset; their audio goes to <out>/.hf_audio
        from dataset_recipes.hf_sources import HF_AUDIO_DIR, hf_recipe

        if not cfg.get("hf") or several:
            raise ConfigError("source=hf needs one recipe and hf=<hub id or local dataset dir>")
        recipe, corpus = hf_recipe(name, str(cfg.hf)), (out / HF_AUDIO_DIR).resolve()
    else:
        corpus = _corpus_dir(recipe, cfg, several)
    return Job(name, recipe, corpus, out, _options(recipe, cfg), list(recipe.prepare(corpus)))


def check_alignment(jobs: list[Job], sample: bool = False) -> None:
    """Fail before any audio work when a language that needs alignment cannot be aligned.

    A sample build (``sample=True``) instead builds a language whose model is not on this
    machine without SRWT, says so once, and records why in the report and card of each
    recipe it concerns.  Languages in ``align.skip_languages`` are recorded the same way.
    """
    align = next((j.options.align for j in jobs if j.options.align), None)
    if align is None:
        return
    from pipeline.align import AlignConfig, make_aligner

    aligner = make_aligner(AlignConfig.from_dict(align))
    needed = {j.name: align_languages(i for i in j.items if isinstance(i, Record))
              for j in jobs}
    languages = set().union(*needed.values())
    missing = aligner.unavailable(languages) if sample else {}
    aligner.check(languages - set(missing))
    configured = set(aligner.cfg.skip_languages)
    for lang, err in missing.items():  # said once, at the start
        names = ", ".join(sorted(n for n, langs in needed.items() if lang in langs))
        print(f"note: {names} (sample): no alignment model for {lang!r} on this machine, so "
              f"its items are built with ASR only, without SRWT. {err}", file=sys.stderr)
    for job in jobs:
        skipped = {lang: "left out by align.skip_languages" for lang in needed[job.name]
                   if lang in configured}
        skipped |= {lang: "sample build on a machine without the alignment model: "
                    f"{getattr(err, 'what', err)}"
                    for lang, err in missing.items() if lang in needed[job.name]}
        if not skipped or job.options.align is None:
            continue
        job.align_skipped = skipped
        skip = sorted(configured | (set(missing) & needed[job.name]))
        job.options = dataclasses.replace(
            job.options, align={**job.options.align, "skip_languages": skip})


def build(cfg: DictConfig) -> list[tuple[Job, dict[str, Any]]]:
    """Plan every recipe (all problems reported at once), check alignment, then build."""
    names = _names(cfg.recipe)
    several = len(names) > 1 or cfg.recipe == "all"
    root = Path(cfg.out or "data/shards") if several else None
    if cfg.source == "sample":
        write_samples(names, cfg, several)
    jobs, problems = [], []
    for name in names:
        out = root / name if root else Path(cfg.out or f"data/shards/{name}")
        try:
            jobs.append(plan_job(name, cfg, out, several))
        except UserError as err:  # any other exception is a bug: it keeps its traceback
            problems.append(f"[{name}] {err}")
    if problems:
        raise ConfigError("\n".join(problems))
    check_alignment(jobs, sample=cfg.source == "sample")
    plans = []
    for job in jobs:
        log.info("building %s from %s into %s", job.name, job.corpus, job.out)
        plans.append(plan_build(job.recipe, job.corpus, job.out, job.options, items=job.items,
                                align_skipped=job.align_skipped))

    def done(plan: BuildPlan, report: dict[str, Any]) -> None:
        tqdm.write(f"{plan.name}: {report['samples']} samples, {report['hours']:.4f} h, "
                   f"{report['rejects']} rejects -> {plan.out_dir}", file=sys.stdout)

    reports = run_builds(plans, runner=cfg.runner, workers=cfg.workers, progress=cfg.progress,
                         pictures="process" if cfg.card_pictures else "off", done=done)
    if root is not None:
        print(f"mixture: {write_mixture(root)}")
    return list(zip(jobs, reports, strict=True))


@hydra.main(version_base="1.3", config_path="../conf", config_name="build")
def main(cfg: DictConfig) -> None:
    """Build one or several recipes; several also write ``mixture.json`` in the root."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        build(cfg)
    except UserError as err:  # bad input or options; any other exception keeps its traceback
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
