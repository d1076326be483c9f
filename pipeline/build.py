"""The build job: records -> shards + index.json + report.json + rejects.jsonl + card.

:func:`plan_build` plans a recipe's shards from its records; :func:`run_builds` writes
the missing shards of all the recipes of a command with one runner, Ray tasks
(:mod:`pipeline.build_ray`: local Ray, or the cluster named by ``RAY_ADDRESS``) or a plain
in-process loop, then assembles each recipe's index, report, rejects and dataset card.
``runner="auto"`` picks the in-process loop for work too small to repay Ray's start-up
(:data:`AUTO_LOCAL_ITEMS`).  The same :class:`~pipeline.stages.SampleMaker` runs in both,
so the output is byte-identical whichever runner wrote it.  :func:`run_build` is the one
recipe case.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.card import card_shards, write_card, write_index, write_report
from pipeline.card_pictures import CardPictures
from pipeline.errors import UserError
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


class BuildError(UserError, RuntimeError):
    """The build could not finish; the message says what failed and what to do."""


def _where(rec: Record) -> str:
    """``<label file> line <n>`` of a record, or its audio file when it has no listing."""
    return f"{rec.listing} line {rec.line}" if rec.listing and rec.line else rec.source


def collect(items: Iterable[Record | Reject]) -> tuple[list[Record], list[Reject]]:
    """Split a recipe's output into records and rejects.  A second record with a key
    already taken in its split (the same item listed twice) becomes a reject naming the
    label file and line of both."""
    records: list[Record] = []
    rejects: list[Reject] = []
    seen: dict[tuple[str, str], Record] = {}
    for item in items:
        if isinstance(item, Reject):
            rejects.append(item)
            continue
        first = seen.setdefault((item.split, item.key), item)
        if first is not item:
            rejects.append(Reject(item.recipe, item.split, item.listing or item.source,
                                  f"duplicate sample key {item.key!r}: {item.source} again "
                                  f"(first: {_where(first)})", line=item.line, key=item.key))
            continue
        records.append(item)
    return records, rejects


def align_languages(records: Iterable[Record]) -> set[str]:
    """Spoken languages of the records that ask for word alignment (from their ASR label)."""
    return set(align_languages_of(records, set()))


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


#: ``runner=auto`` builds in this process when the whole command has less work than this,
#: counted in items to write, an item to align counting as :data:`ALIGN_WEIGHT`.  On the
#: 2-core reference machine an in-process build writes 30-300 items a second (44.1 kHz
#: stereo WAV re-encoded to kept LibriSpeech FLAC) while Ray's own processes take ~14 CPU
#: seconds to start and run a first job (bench/RESULTS.md), ~7 s of the 2 cores before its
#: first shard, so under ~500 items the in-process build finishes first or about as soon.
AUTO_LOCAL_ITEMS = 500
#: An item to align costs about five unaligned ones (pocketsphinx at 0.013 x real time:
#: 0.04-0.16 s for a 3-12 s clip, against 0.01-0.03 s to decode, check and write one).
#: Every sample corpus together (``make demo``: 207 items, 49 to align) stays in-process.
ALIGN_WEIGHT = 5
#: On a local Ray instance, Ray starts an idle worker process per CPU while ``ray.init``
#: runs only for a command with this much work or more (counted as for
#: :data:`AUTO_LOCAL_ITEMS`); under it the workers start with the first task.  The build's
#: own process writes shards while Ray starts (4-5 s on 2 cores), so a smaller build has few
#: or no shards left for Ray's tasks, and idle workers starting next to Ray's other
#: processes only slow its start: 0.3-0.5 s of wall for the clotho sample and for 392
#: LibriSpeech items (2 shards) on 2 cores.  A larger build gains the workers' start
#: instead: 0.4 s for 1771 items (7 shards), medians of 4 (bench/RESULTS.md).
RAY_PRESTART_ITEMS = 1000
RUNNERS = ("auto", "ray", "local")


@dataclass
class BuildPlan:
    """One recipe of a command, planned: its records, shards, and which are still to write."""

    recipe: Recipe
    corpus_dir: Path
    out_dir: Path
    options: BuildOptions
    records: list[Record]
    parse_rejects: list[Reject]
    specs: list[ShardSpec]
    parts: dict[str, dict[str, Any]]
    todo: list[tuple[ShardSpec, str]]
    #: language -> why its records get no SRWT in this build (see the report)
    align_skipped: dict[str, str] = field(default_factory=dict)
    start: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        """The recipe name."""
        return self.recipe.info.name

    def work(self) -> int:
        """Items still to write, an item to align counting :data:`ALIGN_WEIGHT` times."""
        align = self.options.align or {}
        skip = set(align.get("skip_languages") or ()) | set(self.align_skipped)
        total = 0
        for spec, _ in self.todo:
            total += len(spec.records)
            if align.get("enabled"):
                total += (ALIGN_WEIGHT - 1) * len(align_languages_of(spec.records, skip))
        return total


def align_languages_of(records: Iterable[Record], skip: set[str]) -> list[str]:
    """The alignment language of each record that will be aligned (skipped ones left out)."""
    out = []
    for rec in records:
        asr = next((lb for lb in rec.labels if lb.task == "asr"), None) if rec.align else None
        if asr is not None and (lang := asr.kwargs.get("lang", rec.language)) not in skip:
            out.append(lang)
    return out


def plan_build(recipe: Recipe, corpus_dir: Path, out_dir: Path, options: BuildOptions, *,
               items: Iterable[Record | Reject] | None = None,
               align_skipped: dict[str, str] | None = None) -> BuildPlan:
    """Parse (unless ``items`` are given) and plan one recipe's shards; remove the final
    files and stale shards of an earlier build of ``out_dir``; find the finished shards."""
    start = time.monotonic()
    # absolute, so that records name files any worker can open (Ray workers on a cluster
    # run in their own working directory)
    corpus_dir = Path(corpus_dir).resolve()
    records, parse_rejects = collect(recipe.prepare(corpus_dir) if items is None else items)
    specs = plan_shards(records, recipe.info.name, options.shard_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clean(out_dir, recipe.info.name, {s.name for s in specs})
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
    return BuildPlan(recipe, corpus_dir, out_dir, options, records, parse_rejects, specs,
                     parts, todo, dict(align_skipped or {}), start)


def choose_runner(runner: str, plans: Sequence[BuildPlan], work: int | None = None) -> str:
    """``ray`` or ``local`` for ``runner``; ``auto``: Ray when ``RAY_ADDRESS`` names a
    cluster or the command has :data:`AUTO_LOCAL_ITEMS` or more work, else in-process.
    ``work``: the plans' :meth:`BuildPlan.work`, where the caller has it already."""
    if runner not in RUNNERS:
        raise BuildError(f"runner={runner!r}: choose one of {', '.join(RUNNERS)}")
    if runner != "auto":
        return runner
    if os.environ.get("RAY_ADDRESS"):
        return "ray"
    if work is None:
        work = sum(p.work() for p in plans)
    return "local" if work < AUTO_LOCAL_ITEMS else "ray"


def _run_local(todo: Sequence[tuple[int, ShardSpec, str]],
               plans: Sequence[BuildPlan]) -> Iterator[tuple[int, dict[str, Any]]]:
    makers: dict[int, SampleMaker] = {}
    for job, spec, digest in todo:
        try:
            if job not in makers:  # (makers share their aligner: stages.shared_aligner)
                makers[job] = SampleMaker(plans[job].options)
            yield job, write_shard(spec, plans[job].out_dir, makers[job], digest)
        except Exception as err:  # noqa: BLE001 - reported per shard, build fails at the end
            yield job, crash_part(spec, digest, err)


class _Bars:
    """A progress bar per recipe: shown one after the other in-process, stacked on Ray."""

    def __init__(self, plans: Sequence[BuildPlan], enabled: bool, stacked: bool) -> None:
        self.plans, self.enabled, self.stacked = plans, enabled, stacked
        self.bars: dict[int, tqdm] = {}
        self.hours = [sum(p["stats"]["seconds"] for p in plan.parts.values()) / 3600
                      for plan in plans]
        self.finished = [sum(len(s.records) for s in plan.specs if s.name in plan.parts)
                         for plan in plans]
        if stacked:
            for i in range(len(plans)):
                self.open(i)

    def open(self, i: int) -> tqdm:
        """The bar of plan ``i`` (created on first use)."""
        if i not in self.bars:
            plan = self.plans[i]
            bar = tqdm(total=len(plan.records), unit="sample", disable=not self.enabled,
                       desc=f"{plan.name}: {len(plan.todo)}/{len(plan.specs)} shards to write",
                       position=i if self.stacked else None, leave=True)
            bar.update(self.finished[i])
            self.bars[i] = bar
        return self.bars[i]

    def update(self, i: int, part: dict[str, Any], samples: int) -> None:
        """Count a finished shard of plan ``i``."""
        bar = self.open(i)
        self.hours[i] += part.get("stats", {}).get("seconds", 0.0) / 3600
        bar.update(samples)
        bar.set_postfix_str(f"{self.hours[i]:.3f} h audio")

    def close(self, i: int) -> None:
        """Close the bar of plan ``i`` (its recipe is written)."""
        self.open(i).close()


def run_builds(plans: Sequence[BuildPlan], *, runner: str = "auto", workers: int | None = None,
               progress: bool = True, pictures: str = "process",
               done: Callable[[BuildPlan, dict[str, Any]], None] | None = None,
               ) -> list[dict[str, Any]]:
    """Write the missing shards of every plan in one runner, then each recipe's report,
    card and index; return the reports in plan order.

    ``runner``: ``local`` (this process), ``ray`` (one Ray session for all recipes) or
    ``auto`` (:func:`choose_runner`).  ``pictures``: ``process`` draws the card pictures in
    a helper process while shards are written (matplotlib never loads in this one),
    ``inline`` in this process, ``off`` not at all.  ``done(plan, report)`` is called as
    each recipe's report is written.  Raises :class:`BuildError` naming every shard whose
    writer crashed (input problems are rejects, not errors); the other recipes are
    finished, and a rerun resumes.
    """
    # (auto's measure, and Ray's for its prestart; counted once, and not for local)
    work = 0 if runner == "local" else sum(p.work() for p in plans)
    runner = choose_runner(runner, plans, work)
    todo = [(i, spec, digest) for i, plan in enumerate(plans) for spec, digest in plan.todo]
    sizes = {(i, spec.name): len(spec.records) for i, spec, _ in todo}
    left = [len(plan.todo) for plan in plans]
    bars = _Bars(plans, progress, stacked=runner == "ray" and len(plans) > 1)
    reports: dict[int, dict[str, Any]] = {}
    failures: list[str] = []
    with CardPictures(pictures) as drawer, _ray_stopped(runner), _Syncer() as syncer:

        def finish(i: int) -> None:
            bars.close(i)
            try:
                reports[i] = _finish_shards(plans[i], drawer, syncer.wait(i))
            except BuildError as err:
                failures.append(f"[{plans[i].name}] {err}")
                return
            if done is not None:
                done(plans[i], reports[i])

        if todo and runner == "local":
            drawer.start()  # its imports overlap the shard writing
        for i, plan in enumerate(plans):
            if not plan.todo:
                finish(i)
        if todo:
            if runner == "local":
                runs = _run_local(todo, plans)
            else:
                from pipeline.build_ray import run_ray

                runs = run_ray(todo, [(p.out_dir, p.options) for p in plans], workers,
                               prestart=work >= RAY_PRESTART_ITEMS)
            for i, part in runs:
                # on Ray: once Ray is up (the first part comes back after ray.init), so
                # that matplotlib's import does not compete with Ray's start for the CPUs
                drawer.start()
                plans[i].parts[part["name"]] = part
                syncer.add(i, plans[i].out_dir, part)
                if not part.get("failed"):  # the helper reads its figures for the card now
                    drawer.prefetch(plans[i].out_dir / part["name"])
                bars.update(i, part, sizes[(i, part["name"])])
                left[i] -= 1
                if left[i] == 0:
                    finish(i)
        for i in sorted(reports):  # cards and indexes once the pictures are drawn
            plan = plans[i]
            write_card(plan.out_dir, plan.recipe.info, reports[i], drawer.result(plan.name))
            # last: its presence marks a complete build
            write_index(plan.out_dir, plan.name, [plan.parts[s.name] for s in plan.specs])
    if failures:
        raise BuildError("\n".join(failures))
    return [reports[i] for i in range(len(plans))]


@contextmanager
def _ray_stopped(runner: str) -> Iterator[None]:
    """On leaving, wait for the Ray session the build stops in the background (if any)."""
    try:
        yield
    finally:
        if runner == "ray":
            from pipeline.build_ray import wait_stopped

            wait_stopped()


class _Syncer:
    """Makes each new shard and its part file durable as it comes back, in a thread, so
    that the disk catches up while later shards are written (syncing them all at the end
    kept a 6 h build waiting ~1 s).  :meth:`wait` returns when a recipe's
    files are synced; its folders (the renames) are synced after that, before its
    ``index.json`` says the build is complete."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="fsync")
        self.pending: dict[int, list[Future[None]]] = {}

    def __enter__(self) -> _Syncer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def add(self, i: int, out_dir: Path, part: dict[str, Any]) -> None:
        """Sync the shard of ``part`` (of plan ``i``) and its part file (a crash left none)."""
        if not part.get("failed"):
            files = [out_dir / part["name"], out_dir / PARTS_DIR / f"{part['name']}.json"]
            self.pending.setdefault(i, []).append(
                self.pool.submit(sync_files, files, dirs=False))

    def wait(self, i: int) -> bool:
        """Wait for plan ``i``'s files (raising what their fsync raised); return whether
        there were any."""
        pending = self.pending.pop(i, [])
        for future in pending:
            future.result()
        return bool(pending)


def _finish_shards(plan: BuildPlan, drawer: CardPictures, synced: bool) -> dict[str, Any]:
    """Check that every shard of ``plan`` was written, sync their folders (``synced``:
    the shards written now are synced), write the report and order the card's pictures;
    return the report."""
    failed = [p for p in plan.parts.values() if p.get("failed")]
    if failed:
        lines = "\n".join(f"  {p['name']}: {p['error']}" for p in failed)
        raise BuildError(f"{len(failed)} shard(s) failed to write (rerun resumes):\n{lines}")
    ordered = [plan.parts[s.name] for s in plan.specs]
    # the shards and part files written now reach the disk before index.json says the
    # build is complete (a power cut before this point leaves a build that resumes)
    if synced:  # (their folders: the renames)
        sync_files([plan.out_dir, plan.out_dir / PARTS_DIR], dirs=False)
    report = write_report(plan.out_dir, plan.recipe.info, ordered, plan.parse_rejects,
                          plan.records, time.monotonic() - plan.start, plan.options,
                          plan.align_skipped)
    drawer.submit(plan.name, plan.out_dir, card_shards(plan.out_dir, plan.recipe.info, report),
                  plan.recipe.info)
    return report


def run_build(
    recipe: Recipe,
    corpus_dir: Path,
    out_dir: Path,
    options: BuildOptions,
    *,
    items: Iterable[Record | Reject] | None = None,
    runner: str = "auto",
    workers: int | None = None,
    progress: bool = True,
    pictures: str = "inline",
) -> dict[str, Any]:
    """Build ``out_dir`` from the corpus at ``corpus_dir``; return the report dict.

    One recipe of :func:`run_builds`: ``items`` are the recipe's parsed records and
    rejects when the caller already has them (otherwise ``recipe.prepare(corpus_dir)``
    runs here).  Raises :class:`BuildError` when a shard writer crashed; the finished
    shards stay and a rerun resumes.
    """
    plan = plan_build(recipe, corpus_dir, out_dir, options, items=items)
    return run_builds([plan], runner=runner, workers=workers, progress=progress,
                      pictures=pictures)[0]
