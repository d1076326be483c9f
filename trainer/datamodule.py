"""LightningDataModule over shard sets: a mixture file or explicit ``index.json`` files."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from trainer.data import EvalSet, PositionedLoader, StreamConfig, TrainStream
from trainer.features import IGNORE, Collator
from trainer.reader import Shard, pairs_of, read_mixture, select_shards
from trainer.tokenizer import QwenAudioTokenizer


def target_tokens(batch: dict[str, Any]) -> float:
    """Weighted count of the scored tokens of a batch (host tensors: no device sync)."""
    scored = (batch["labels"][:, 1:] != IGNORE).sum(1).to(batch["weight"].dtype)
    return float((scored * batch["weight"]).sum())


def with_step_tokens(batches: Iterable[dict[str, Any]], accumulate: int) -> Iterator[dict]:
    """Batches in groups of ``accumulate`` (one optimizer step), each group looked at whole
    before its first batch is handed out: every batch carries ``step_tokens`` (the target
    tokens of its group on this rank) and ``step_first`` (first batch of its group)."""
    it = iter(batches)
    while True:
        group = [b for _, b in zip(range(accumulate), it, strict=False)]
        if not group:
            return
        total = sum(target_tokens(b) for b in group)
        for i, batch in enumerate(group):
            yield {**batch, "step_tokens": total, "step_first": i == 0}


class StepLoader(PositionedLoader):
    """The training loader: batches with the target-token count of their optimizer step,
    so that the loss is normalised over the whole step (see ``QwenAudioModule``)."""

    def __init__(self, *args: Any, accumulate: int = 1, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.accumulate = accumulate

    def __iter__(self) -> Iterator[dict]:  # type: ignore[override]
        yield from with_step_tokens(super().__iter__(), self.accumulate)


class ShardDataModule(L.LightningDataModule):
    """Training stream + once-through validation over built shard sets.

    Give ``mixture`` (the build's ``mixture.json``, whose task weights are used unless
    ``task_weights`` is set) or ``indexes`` plus ``splits`` (role -> split names).
    ``global_batch_size`` is split over the ranks; ``steps_per_epoch=None`` takes one pass
    worth of training samples.
    """

    def __init__(
        self,
        tokenizer: Callable[..., QwenAudioTokenizer],
        mixture: str | None = None,
        indexes: list[str] | None = None,
        splits: dict[str, list[str]] | None = None,
        task_weights: dict[str, float] | None = None,
        global_batch_size: int = 8,
        eval_batch_size: int = 8,
        steps_per_epoch: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        shuffle_buffer: int = 64,
        pool_batches: int = 8,
        per_rank_streams: bool = False,
        num_mel_bins: int = 80,
    ) -> None:
        super().__init__()
        if (mixture is None) == (indexes is None):
            raise ValueError("give data.mixture=<mixture.json> or data.indexes=[...], not both")
        if mixture is not None:
            mix = read_mixture(mixture)
            self.shards, weights = mix["shards"], mix["task_weights"]
        else:
            self.shards = select_shards(list(indexes or []), dict(splits or {}))
            weights = {}
        if not self.shards["train"]:
            raise ValueError(f"no training shards in {mixture or indexes}: check the split roles")
        self.task_weights = dict(task_weights) if task_weights else weights
        self.tokenizer = tokenizer(texts=self._texts())
        self.collate = Collator(self.tokenizer, num_mel_bins)
        self.global_batch_size, self.eval_batch_size = global_batch_size, eval_batch_size
        self.num_workers, self.seed = num_workers, seed
        self.shuffle_buffer, self.pool_batches = shuffle_buffer, pool_batches
        self.per_rank_streams = per_rank_streams
        total = sum(s.nsamples for s in self.shards["train"])
        self.steps_per_epoch = steps_per_epoch or max(1, math.ceil(total / global_batch_size))

    def _texts(self) -> Iterator[str]:
        for shard in self.shards["train"]:
            for pair in pairs_of(shard, audio=False):  # JSON only: no FLAC held
                yield pair.prompt
                yield pair.target

    def shards_by_task(self) -> dict[str, list[Shard]]:
        """Training shards of each task (from the mixture, or found by reading the shards)."""
        out: dict[str, list[Shard]] = {}
        for shard in self.shards["train"]:
            tasks = shard.tasks or {p.task for p in pairs_of(shard, audio=False)}
            for task in sorted(tasks):
                out.setdefault(task, []).append(shard)
        return out

    def stream_config(self) -> StreamConfig:
        """The training stream's settings (weights default to 1 per task present)."""
        by_task = self.shards_by_task()
        weights = self.task_weights or {t: 1.0 for t in by_task}
        return StreamConfig(
            by_task, weights, self.global_batch_size, self.steps_per_epoch, self.seed,
            self.shuffle_buffer, self.pool_batches, self.per_rank_streams,
        )

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)

    def _position(self) -> tuple[int, int]:
        """(epoch, batches to skip) from the optimizer steps done (restored on resume)."""
        if self.trainer is None:
            return 0, 0
        done = self.trainer.global_step * self.trainer.accumulate_grad_batches
        return divmod(done, self.steps_per_epoch)

    def train_dataloader(self) -> StepLoader:
        """Endless-stream loader cut to ``steps_per_epoch`` batches per rank."""
        rank, world = self._rank()
        accumulate = self.trainer.accumulate_grad_batches if self.trainer else 1
        if self.trainer is not None and self.trainer.reload_dataloaders_every_n_epochs != 1:
            # After a resume Lightning 2.6 reuses the first epoch's iterator otherwise.
            raise ValueError("set trainer.reload_dataloaders_every_n_epochs=1 (exact resume)")
        if self.steps_per_epoch % accumulate:
            raise ValueError(
                f"steps_per_epoch {self.steps_per_epoch} must be a multiple of "
                f"accumulate_grad_batches {accumulate} (exact resume counts whole steps)"
            )
        stream = TrainStream(self.stream_config(), self.collate, rank, world)
        return StepLoader(
            stream, self._position, num_workers=self.num_workers, accumulate=accumulate
        )

    def eval_loader(
        self, role: str = "valid", prompt_only: bool = False,
        rank: int | None = None, world: int | None = None, per_rank: int | None = None,
    ) -> DataLoader:
        """Once-through loader over the ``role`` shards (valid or test); ``rank``/``world``
        default to the trainer's, ``per_rank`` to ``eval_batch_size // world``."""
        if rank is None or world is None:
            rank, world = self._rank()
        per_rank = per_rank or max(1, self.eval_batch_size // world)
        data = EvalSet(self.shards[role], per_rank, self.collate, rank, world, prompt_only)
        return DataLoader(data, batch_size=None, num_workers=self.num_workers)

    def val_dataloader(self):
        """Validation loader, or no validation when the mixture has no valid split."""
        return self.eval_loader("valid") if self.shards["valid"] else []

    def describe(self) -> str:
        """One line per role: shard and sample counts."""
        return "; ".join(
            f"{role}: {len(s)} shards, {sum(x.nsamples for x in s)} samples"
            for role, s in self.shards.items()
        ) + f"; steps/epoch {self.steps_per_epoch}"
