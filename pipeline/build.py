"""The build job: records -> shards + index.json + report.json + rejects.jsonl + card.

:func:`run_build` plans shards from a recipe's records, writes the missing ones with Ray
Data (local Ray by default, the cluster named by ``RAY_ADDRESS`` otherwise) or with a
plain in-process loop (``runner="local"``), then assembles the index, report, rejects
and dataset card.  The same :class:`~pipeline.stages.SampleMaker` runs in both.

Rerunning skips every shard whose file and part record exist with the same content hash,
so an interrupted build resumes, and an unchanged build rewrites nothing.  The final
files (index, report, card) are removed when a build starts and written only when every
shard is done, so a half-finished directory never looks complete.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.card import write_card, write_index, write_report
from pipeline.recipe import Recipe
from pipeline.record import Record, Reject
from pipeline.shards import ShardSpec, plan_shards, sync_files
from pipeline.stages import (
    PARTS_DIR,
    STAGES_VERSION,
    BuildOptions,
    SampleMaker,
    crash_part,
    write_shard,
)

log = logging.getLogger(__name__)
FINAL_FILES = ("index.json", "report.json", "rejects.jsonl", "README.md")


class BuildError(RuntimeError):
    """The build could not finish; the message says what failed and what to do."""


def collect(recipe: Recipe, items: Iterable[Record | Reject]) -> tuple[list[Record], list[Reject]]:
    """Split a recipe's output into records and rejects; duplicate keys become rejects."""
    records: list[Record] = []
    rejects: list[Reject] = []
    seen: dict[tuple[str, str], str] = {}
    for item in items:
        if isinstance(item, Reject):
            rejects.append(item)
            continue
        first = seen.setdefault((item.split, item.key), item.source)
        if first != item.source:
            rejects.append(Reject(item.recipe, item.split, item.source,
                                  f"duplicate sample key {item.key!r} (first: {first})"))
            continue
        records.append(item)
    return records, rejects


def align_languages(records: Iterable[Record]) -> set[str]:
    """Spoken languages of the records that ask for word alignment (from their ASR label)."""
    langs = set()
    for rec in records:
        asr = next((lb for lb in rec.labels if lb.task == "asr"), None) if rec.align else None
        if asr is not None:
            langs.add(asr.kwargs.get("lang", rec.language))
    return langs


def _finished(spec: ShardSpec, out_dir: Path, digest: str) -> dict[str, Any] | None:
    part_path = out_dir / PARTS_DIR / f"{spec.name}.json"
    if not (out_dir / spec.name).is_file() or not part_path.is_file():
        return None
    try:
        part = json.loads(part_path.read_text())
    except json.JSONDecodeError:
        return None
    ok = part.get("digest") == digest and (out_dir / spec.name).stat().st_size == part["filesize"]
    return part if ok else None


def _clean(out_dir: Path, recipe: str, planned: set[str]) -> None:
    """Remove final files, temp files and shards that the current plan no longer has."""
    for name in FINAL_FILES:
        (out_dir / name).unlink(missing_ok=True)
    for path in out_dir.glob(f"{recipe}-*.tar*"):
        if path.name.endswith(".tmp") or path.name not in planned:
            path.unlink()
            (out_dir / PARTS_DIR / f"{path.name}.json").unlink(missing_ok=True)


def _run_local(todo: list[tuple[ShardSpec, str]], out_dir: Path,
               options: BuildOptions) -> Iterator[dict[str, Any]]:
    maker = SampleMaker(options)
    for spec, digest in todo:
        try:
            yield write_shard(spec, out_dir, maker, digest)
        except Exception as err:  # noqa: BLE001 - reported per shard, build fails at the end
            yield crash_part(spec, digest, err)


class _RayShardWriter:
    """Ray actor: builds its SampleMaker (and aligner) once, then writes shards."""

    def __init__(self, out_dir: str, options: dict[str, Any]) -> None:
        self.out_dir = Path(out_dir)
        self.maker = SampleMaker(BuildOptions(**options))

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        results = []
        for spec_json, digest in zip(batch["spec"], batch["digest"], strict=True):
            spec = ShardSpec.from_json(json.loads(spec_json))
            try:
                part = write_shard(spec, self.out_dir, self.maker, digest)
            except Exception as err:  # noqa: BLE001 - reported per shard
                part = crash_part(spec, digest, err)
            results.append(json.dumps(part))
        return {"part": results}


def _use_cluster_token() -> None:
    """Send the cluster's auth token when one is at hand, as ``ray start`` itself does.

    Ray 2.60's ``ray start --head`` turns token authentication on whenever a token exists
    (``~/.ray/auth_token``, ``RAY_AUTH_TOKEN_PATH`` or ``RAY_AUTH_TOKEN``), but a driver
    joining it with ``ray.init(address=...)`` sends no token unless ``RAY_AUTH_MODE=token``
    was set before Ray read its config, and fails with "Authentication token is missing".
    Ray's own helper for ``ray start`` switches this process to token mode when a token
    exists (a token sent to a cluster without authentication is ignored); an explicit
    ``RAY_AUTH_MODE`` is left alone.
    """
    if os.environ.get("RAY_AUTH_MODE"):
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication: nothing to send
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _run_ray(todo: list[tuple[ShardSpec, str]], out_dir: Path, options: BuildOptions,
             workers: int | None) -> Iterator[dict[str, Any]]:
    import ray
    from ray.data import DataContext

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                  "log_to_driver": False}
        if address:  # ship this project's code to the cluster's workers ("local": a new
            root = Path(__file__).resolve().parents[1]  # local cluster, set up the same way)
            kwargs["runtime_env"] = {"working_dir": str(root), "excludes": [
                ".venv", "data", ".git", "outputs", "runs", "lightning_logs", "*.ckpt"]}
            _use_cluster_token()
        try:
            # "local" when RAY_ADDRESS is unset: a new local instance, never whatever cluster
            # /tmp/ray/ray_current_cluster names (ray.init() would join it, and hang for
            # minutes when that file is left from a cluster that is gone)
            ray.init(address=address or "local", **kwargs)
        except ConnectionError as err:
            raise BuildError(
                f"cannot join the Ray cluster at RAY_ADDRESS={address} ({err}). Check that "
                "`ray status --address ...` works from this machine; a cluster started with "
                "token authentication needs its token here (~/.ray/auth_token, "
                "RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN). Unset RAY_ADDRESS to build on a "
                "local Ray instead.") from err
    # our own bar shows samples and hours; Ray Data's per-operator bars and INFO lines
    # would interleave with it
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    cpus = int(ray.cluster_resources().get("CPU", 1))
    n = max(1, min(workers or cpus, len(todo)))
    ds = ray.data.from_items(
        [{"spec": json.dumps(s.to_json()), "digest": d} for s, d in todo],
        override_num_blocks=len(todo),
    )
    out = ds.map_batches(
        _RayShardWriter, batch_size=1, compute=ray.data.ActorPoolStrategy(size=n), num_cpus=1,
        batch_format="numpy",
        fn_constructor_kwargs={"out_dir": str(out_dir.resolve()), "options": options.to_json()},
    )
    for row in out.iter_rows():
        yield json.loads(row["part"])


def run_build(
    recipe: Recipe,
    corpus_dir: Path,
    out_dir: Path,
    options: BuildOptions,
    *,
    items: Iterable[Record | Reject] | None = None,
    runner: str = "ray",
    workers: int | None = None,
    progress: bool = True,
    check_align: Callable[[set[str]], None] | None = None,
) -> dict[str, Any]:
    """Build ``out_dir`` from the corpus at ``corpus_dir``; return the report dict.

    ``items`` are the recipe's parsed records and rejects when the caller already has them
    (otherwise ``recipe.prepare(corpus_dir)`` runs here).  Raises :class:`BuildError` when a
    shard writer crashed (input problems are rejects, not errors); the finished shards stay
    and a rerun resumes.
    """
    start = time.monotonic()
    name = recipe.info.name
    # absolute, so that records name files any worker can open (Ray workers on a cluster
    # run in their own working directory)
    corpus_dir = Path(corpus_dir).resolve()
    records, parse_rejects = collect(
        recipe, recipe.prepare(corpus_dir) if items is None else items)
    if check_align is not None:
        check_align(align_languages(records))
    specs = plan_shards(records, name, options.shard_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clean(out_dir, name, {s.name for s in specs})
    opts = {**options.to_json(), "stages_version": STAGES_VERSION}
    parts: dict[str, dict[str, Any]] = {}
    todo = []
    for spec in specs:
        digest = spec.digest(opts)
        done = _finished(spec, out_dir, digest)
        if done is not None:
            parts[spec.name] = done
        else:
            todo.append((spec, digest))
    bar = tqdm(total=len(records), unit="sample", disable=not progress,
               desc=f"{name}: {len(todo)}/{len(specs)} shards to write")
    bar.update(sum(len(s.records) for s in specs if s.name in parts))
    hours = sum(p["stats"]["seconds"] for p in parts.values()) / 3600
    if todo:
        runs = _run_local(todo, out_dir, options) if runner == "local" else _run_ray(
            todo, out_dir, options, workers)
        sizes = {s.name: len(s.records) for s, _ in todo}
        for part in runs:
            parts[part["name"]] = part
            hours += part.get("stats", {}).get("seconds", 0.0) / 3600
            bar.update(sizes[part["name"]])
            bar.set_postfix_str(f"{hours:.3f} h audio")
    bar.close()
    failed = [p for p in parts.values() if p.get("failed")]
    if failed:
        lines = "\n".join(f"  {p['name']}: {p['error']}" for p in failed)
        raise BuildError(f"{len(failed)} shard(s) failed to write (rerun resumes):\n{lines}")
    ordered = [parts[s.name] for s in specs]
    # the shards and part files written now reach the disk before index.json says the
    # build is complete (a power cut before this point leaves a build that resumes)
    written = [s.name for s, _ in todo]
    sync_files([out_dir / n for n in written] + [out_dir / PARTS_DIR / f"{n}.json"
                                                 for n in written])
    report = write_report(out_dir, recipe.info, ordered, parse_rejects, records,
                          time.monotonic() - start, options)
    write_card(out_dir, recipe.info, report)
    write_index(out_dir, name, ordered)  # last: its presence marks a complete build
    return report
