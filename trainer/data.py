"""Training streams and once-through evaluation sets over shard sets.

Shards are read by :mod:`trainer.reader` under the rules of :mod:`pipeline.format` (a
refused shard raises out of the stream: training stops, it never skips it); the FLAC bytes
travel undecoded with each pair and are decoded only for this rank's batches.

Training (every rank runs exactly ``steps_per_epoch`` batches, no hang):

* per task, shards are resampled (weighted by size) and the task's entries go through
  ``webdataset``'s shuffle buffer; tasks are mixed with the task weights;
* pools of ``pool_batches`` global batches are sorted by duration and cut into global
  batches (similar lengths together, little padding), whose order is shuffled;
* the stream depends only on ``(seed, epoch)``: every rank walks the same global batches
  and decodes only its own slice ``rank::world_size``, so a run on 2 processes sees the
  same global batch as a run on 1, and resuming at step ``k`` skips ``k`` batches exactly.
  ``per_rank_streams=True`` gives each rank its own stream instead (less reading on very
  many ranks, same step count).

Rank and world size are passed in explicitly (never read from the environment), and data
loader worker ``w`` of ``W`` decodes batches ``w, w + W, ...`` so the loader's in-order
round robin yields the batches in stream order.

Evaluation plans every (clip, entry) pair once from the shards' JSON (no FLAC held), in
groups of consecutive shards; a rank reads the FLAC bytes of one group at a time.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from trainer.features import Collator
from trainer.reader import AudioRef, Pair, Shard, entries_of, load_audio, pairs_of, read_shard

EVAL_POOL_BATCHES = 16  # an evaluation group holds at least this many batches per rank


@dataclass
class StreamConfig:
    """What a training stream draws from and how it batches."""

    shards_by_task: dict[str, list[Shard]]
    task_weights: dict[str, float]
    global_batch_size: int
    steps_per_epoch: int
    seed: int = 0
    shuffle_buffer: int = 256
    pool_batches: int = 8
    per_rank_streams: bool = False


def resampled_shards(shards: list[Shard], rng: random.Random) -> Iterator[Shard]:
    """Endless shard draws, each shard with probability proportional to its sample count.

    Not ``webdataset.ResampledShards``: it draws uniformly (``rng.randint`` over its url
    list) and takes no weights, while a split's last shard is usually short (a 3-sample
    shard would come up as often as a 1000-sample one, its clips ~300x oversampled);
    emulating weights by repeating urls would cost a list entry per sample.
    """
    weights = [max(s.nsamples, 1) for s in shards]
    while True:
        yield rng.choices(shards, weights)[0]


def task_stream(shards: list[Shard], task: str, rng: random.Random, buffer: int) -> Iterator[Pair]:
    """Endless pairs of one task: resampled shards, one entry per clip, shuffle buffer."""
    tasks = frozenset([task])

    def one_entry_per_clip() -> Iterator[Pair]:
        empty = 0
        for shard in resampled_shards(shards, rng):
            found = False
            for key, meta, audio in read_shard(shard.path, shard.nsamples):  # streamed
                entries = entries_of(key, meta, audio, shard.set_name, tasks)
                if entries:
                    found = True
                    yield rng.choice(entries)  # e.g. one of a clip's five captions
            empty = 0 if found else empty + 1
            if empty > 20 * len(shards):
                raise ValueError(
                    f"no {task!r} entries in shards {[s.path for s in shards][:3]}..."
                )

    return wds.filters.shuffle(buffer, initial=buffer, rng=rng)(one_entry_per_clip())


def mixed_stream(cfg: StreamConfig, rng: random.Random) -> Iterator[Pair]:
    """Pairs of all tasks, each draw picking a task by its weight."""
    tasks = sorted(t for t in cfg.shards_by_task if cfg.task_weights.get(t, 0) > 0)
    if not tasks:
        raise ValueError("no task has both training shards and a positive weight")
    streams = {
        t: task_stream(cfg.shards_by_task[t], t, random.Random(rng.random()), cfg.shuffle_buffer)
        for t in tasks
    }
    weights = [cfg.task_weights[t] for t in tasks]
    while True:
        yield next(streams[rng.choices(tasks, weights)[0]])


def duration_batches(pairs: Iterator[Pair], size: int, pool: int, rng: random.Random):
    """Endless batches of ``size`` pairs of similar duration (sorted pools, shuffled order)."""
    while True:
        chunk = sorted(itertools.islice(pairs, size * pool), key=lambda p: p.duration)
        batches = [chunk[i : i + size] for i in range(0, len(chunk), size)]
        del chunk
        rng.shuffle(batches)
        batches.reverse()
        while batches:  # a batch handed out is no longer held here (nor its FLAC bytes)
            yield batches.pop()


def rank_batches(
    cfg: Any, stream: Callable[[random.Random], Iterator[Any]], epoch: int, rank: int,
    world_size: int, name: str = "",
) -> Iterator[list[Any]]:
    """This rank's ``steps_per_epoch`` duration batches of ``epoch`` from ``stream(rng)``.

    ``cfg`` holds ``seed``, ``global_batch_size``, ``per_rank_streams``, ``pool_batches``
    and ``steps_per_epoch``; the stream's random generator is seeded by ``name``, the seed,
    the epoch and (per-rank streams) the rank, so every rank and resume sees the same data.
    """
    if cfg.global_batch_size % world_size:
        raise ValueError(
            f"global_batch_size {cfg.global_batch_size} is not divisible by the world size "
            f"{world_size}; choose a multiple of {world_size}"
        )
    local = cfg.global_batch_size // world_size
    salt = f":{rank}" if cfg.per_rank_streams else ""
    rng = random.Random(f"{name}{cfg.seed}:{epoch}{salt}")
    size = local if cfg.per_rank_streams else cfg.global_batch_size
    batches = duration_batches(stream(rng), size, cfg.pool_batches, rng)
    for batch in itertools.islice(batches, cfg.steps_per_epoch):
        yield batch if cfg.per_rank_streams else batch[rank::world_size]


def train_batches(
    cfg: StreamConfig, epoch: int, rank: int, world_size: int
) -> Iterator[list[Pair]]:
    """This rank's ``steps_per_epoch`` batches of ``epoch`` (pairs, not yet decoded)."""
    return rank_batches(cfg, lambda rng: mixed_stream(cfg, rng), epoch, rank, world_size)


def eval_plan(
    shards: Sequence[Shard], batch_size: int, world_size: int,
    pool_batches: int = EVAL_POOL_BATCHES,
) -> list[tuple[list[Pair], float, int]]:
    """Every (clip, entry) pair of ``shards`` once, as ``(pairs, weight, group)`` batches.

    Consecutive shards form groups of at least ``pool_batches * world_size`` batches; a
    group's pairs are sorted by duration and cut into batches of ``batch_size``, so a
    batch needs only its group's shards.  The batch count is padded to a multiple of
    ``world_size`` with weight-0 copies (every rank runs the same number of forward
    passes, which FSDP needs; padding batches never count).  Pairs hold no FLAC bytes.
    """
    batches: list[tuple[list[Pair], float, int]] = []
    group: list[Pair] = []

    def flush() -> None:
        group.sort(key=lambda p: (p.duration, p.key, p.task, p.target))
        n = batches[-1][2] + 1 if batches else 0  # this group's number
        batches.extend(
            (group[i : i + batch_size], 1.0, n) for i in range(0, len(group), batch_size)
        )
        group.clear()

    for shard in shards:
        group += pairs_of(shard, audio=False)
        if len(group) >= pool_batches * world_size * batch_size:
            flush()
    if group:
        flush()
    while batches and len(batches) % world_size:
        batches.append((batches[-1][0], 0.0, batches[-1][2]))
    return batches


def eval_batches(
    shards: Sequence[Shard], batch_size: int, rank: int, world_size: int,
    pool_batches: int = EVAL_POOL_BATCHES,
) -> list[tuple[list[Pair], float]]:
    """This rank's share of every (clip, entry) pair of ``shards``, each exactly once.

    ``(pairs, weight)`` batches of :func:`eval_plan` (metadata-only pairs); weight 0
    marks a padding batch.
    """
    plan = eval_plan(shards, batch_size, world_size, pool_batches)
    return [(pairs, weight) for pairs, weight, _ in plan[rank::world_size]]


def _worker() -> tuple[int, int]:
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class TrainStream(IterableDataset):
    """Decoded training batches of one rank; ``position`` says (epoch, batches to skip)."""

    def __init__(self, cfg: StreamConfig, collate: Collator, rank: int, world_size: int) -> None:
        self.cfg, self.collate, self.rank, self.world_size = cfg, collate, rank, world_size
        self.epoch, self.skip = 0, 0

    def set_position(self, epoch: int, skip: int) -> None:
        """Start the next iteration at batch ``skip`` of ``epoch`` (for exact resume)."""
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return self.cfg.steps_per_epoch

    def __iter__(self) -> Iterator[dict]:
        worker, workers = _worker()
        batches = train_batches(self.cfg, self.epoch, self.rank, self.world_size)
        for i, pairs in enumerate(batches):
            if i >= self.skip and (i - self.skip) % workers == worker:
                yield self.collate(pairs)


class PlannedEvalSet(IterableDataset):
    """Decoded once-through batches of one rank from a plan of ``(items, weight, group)``.

    A worker reads the FLAC bytes of its batches one plan group at a time (the group's
    shards streamed once), so it never holds more than one group's share of audio.
    Subclasses say which ``(path, key)`` clips an item names and how it takes them.
    """

    def __init__(self, plan: list[tuple[list[Any], float, int]], collate: Callable[..., dict],
                 rank: int, world_size: int, prompt_only: bool = False) -> None:
        self.batches = plan[rank::world_size]
        self.collate, self.prompt_only = collate, prompt_only

    @staticmethod
    def clips(item: Any) -> Iterable[tuple[str, str]]:
        """The ``(shard path, key)`` of each clip ``item`` needs."""
        raise NotImplementedError

    @staticmethod
    def with_audio(item: Any, audio: dict[tuple[str, str], AudioRef]) -> Any:
        """``item`` holding the loaded clips it names."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[dict]:
        worker, workers = _worker()
        mine = self.batches[worker::workers]
        for _, batches in itertools.groupby(mine, key=lambda b: b[2]):
            group = list(batches)
            audio = load_audio({c for items, _, _ in group for i in items for c in self.clips(i)})
            for items, weight, _ in group:
                loaded = [self.with_audio(i, audio) for i in items]
                yield self.collate(loaded, weight, prompt_only=self.prompt_only)
            del audio, group


class EvalSet(PlannedEvalSet):
    """Decoded once-through batches of one rank (see :func:`eval_plan`)."""

    def __init__(
        self, shards: Sequence[Shard], batch_size: int, collate: Collator, rank: int,
        world_size: int, prompt_only: bool = False, pool_batches: int = EVAL_POOL_BATCHES,
    ) -> None:
        plan = eval_plan(shards, batch_size, world_size, pool_batches)
        super().__init__(plan, collate, rank, world_size, prompt_only)

    @staticmethod
    def clips(item: Pair) -> Iterable[tuple[str, str]]:
        return ((item.audio.path, item.key),)

    @staticmethod
    def with_audio(item: Pair, audio: dict[tuple[str, str], AudioRef]) -> Pair:
        return replace(item, audio=audio[item.audio.path, item.key])


class PositionedLoader(torch.utils.data.DataLoader):
    """A loader that asks ``position()`` for (epoch, skip) each time iteration starts.

    Workers copy the dataset when the iterator starts, so the position is set right
    before; Lightning's restored ``global_step`` makes resuming exact.
    """

    def __init__(self, dataset: TrainStream, position: Callable[[], tuple[int, int]], **kw) -> None:
        super().__init__(dataset, batch_size=None, **kw)
        self.position = position

    def __iter__(self) -> Iterator[dict]:  # type: ignore[override]
        # Lazy: Lightning may create the iterator before it restores a checkpoint's step,
        # so the position is read when the first batch is asked for.
        self.dataset.set_position(*self.position())  # type: ignore[attr-defined]
        yield from super().__iter__()
