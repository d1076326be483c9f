"""LightningModule: the training step, per-task losses and throughput logs, FSDP2 set-up."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.distributed as dist

from trainer.checkpoint import init_weights
from trainer.features import TASK_NAMES
from trainer.flops import Dims, batch_train_flops, dims_of
from trainer.materialize import keep_rows_frozen, named_params
from trainer.model import QwenAudioModel, parallelize, param_groups, scored_index
from trainer.tokenizer import QwenAudioTokenizer

NT = len(TASK_NAMES)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
    min_ratio: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then cosine decay to ``min_ratio`` of the peak learning rate."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


def _optimizer_groups(net: QwenAudioModel) -> list[dict[str, Any]]:
    """:func:`trainer.model.param_groups`, with every parameter that has frozen rows
    (``net.trainable_rows``: an LM head not tied to the embeddings too) in the group
    without weight decay, so that decay cannot move the rows the gradient hook keeps."""
    groups = param_groups(net)
    params = named_params(net)
    kept = {id(params[name]) for name in getattr(net, "trainable_rows", {})}
    moved = [p for p in groups[0]["params"] if id(p) in kept]
    groups[0]["params"] = [p for p in groups[0]["params"] if id(p) not in kept]
    groups[1]["params"] = [*groups[1]["params"], *moved]
    return [g for g in groups if g["params"]]


class QwenAudioModule(L.LightningModule):
    """Trains a :class:`QwenAudioModel` on every task of the mixture at once.

    The loss is the mean over all target tokens of the whole optimizer step (token counts
    are summed over its accumulated micro-batches and over ranks), so any number of
    processes and micro-batches gives the same gradients as one process on one batch.
    """

    def __init__(
        self,
        net: Callable[..., QwenAudioModel],
        tokenizer: QwenAudioTokenizer,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        param_dtype: str | None = None,
        activation_checkpointing: bool = False,
        init_from: str | None = None,
        init_seed: int = 0,
        peak_tflops: float | None = None,
        compile: bool = False,
    ) -> None:
        """``net`` is built on the meta device; ``configure_model`` shards it, then fills
        each rank's shard: deterministic init (``init_seed``), the pretrained folders of
        the model config, then ``init_from`` (see :mod:`trainer.checkpoint`)."""
        super().__init__()
        self.tokenizer = tokenizer
        self.net = net(tokenizer=tokenizer, empty=True)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.param_dtype, self.activation_checkpointing = param_dtype, activation_checkpointing
        self.init_from, self.init_seed = init_from, init_seed
        self._parallelized = False
        self._step_tokens: torch.Tensor | None = None
        self._last_step_time: float | None = None
        self._val: torch.Tensor | None = None
        # throughput logs (_log_train): bf16 dense peak of one device for train/mfu
        self.peak_tflops = peak_tflops
        self.compile = compile  # torch.compile each layer (trainer.model.compile_blocks)
        self._acc: torch.Tensor | None = None
        self._dims: Dims | None = None

    def configure_model(self) -> None:
        """Shard (FSDP2 under ``ModelParallelStrategy``: the net that ``training_step``
        calls), then materialise only this rank's shard with its weights.

        Without a trainer (evaluation, benchmarks, tests) it is materialised on CPU, sharded
        over ``device_mesh["data_parallel"]`` when one was set.
        """
        if self._parallelized:
            return
        mesh, device = None, torch.device("cpu")
        if self._trainer is not None:
            mesh = getattr(self.trainer.strategy, "fsdp_mesh", None)  # HSDP's 2-D mesh
            device = self.trainer.strategy.root_device
        if mesh is None and self.device_mesh is not None:
            mesh = self.device_mesh["data_parallel"]
        parallelize(
            self.net, mesh, self.param_dtype, self.activation_checkpointing, self.compile
        )
        init_weights(self.net, device, self.init_seed, self.init_from)
        params = named_params(self.net)
        for name, first in getattr(self.net, "trainable_rows", {}).items():
            keep_rows_frozen(params[name], first)
        self._parallelized = True

    def _stats(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Local loss sum, and all-reduced per-task sums/counts + batch statistics.

        Tensor code only (no host sync): ``stats`` is ``NT`` per-task loss sums, ``NT``
        per-task token counts, then real tokens, all tokens, audio seconds, real mel
        frames, all mel frames, model FLOPs of a training step (:mod:`trainer.flops`).
        """
        losses, rows = self.net(batch)
        weight = batch["weight"][rows]
        losses = losses * weight
        tasks = batch["task_ids"][rows]
        stats = torch.zeros(2 * NT + 6, device=losses.device)
        stats[:NT].index_add_(0, tasks, losses.detach().float())
        stats[NT : 2 * NT].index_add_(0, tasks, weight.float())
        real = batch["attention_mask"].sum() * (batch["weight"][0] > 0)
        stats[2 * NT] = real
        stats[2 * NT + 1] = batch["attention_mask"].numel()
        stats[2 * NT + 2] = (batch["durations"] * batch["weight"]).sum()
        stats[2 * NT + 3] = batch["feature_lens"].sum()
        stats[2 * NT + 4] = batch["input_features"].shape[-1] * len(batch["feature_lens"])
        if self._dims is None:
            self._dims = dims_of(self.net)
        stats[2 * NT + 5] = batch_train_flops(self._dims, batch) * (batch["weight"][0] > 0)
        return losses.sum(), _all_reduce(stats)


    def _tokens_of_step(self, batch: dict[str, Any], micro_tokens: torch.Tensor) -> torch.Tensor:
        """Target tokens of the whole optimizer step, over its micro-batches and all ranks.

        The training loader counts them on the host before the step's first micro-batch
        (``step_tokens``, see :class:`trainer.datamodule.StepLoader`); they are summed over
        ranks once per step, on its first micro-batch.
        """
        accumulate = self.trainer.accumulate_grad_batches
        if "step_tokens" not in batch:
            if accumulate > 1:
                raise ValueError(
                    "accumulate_grad_batches > 1 needs batches with step_tokens (the loader "
                    "of trainer.datamodule.ShardDataModule counts them)"
                )
            return micro_tokens
        if batch["step_first"] or self._step_tokens is None:
            # a fill, not a host-to-device copy (a blocking copy is a sync on GPUs)
            count = torch.full((1,), float(batch["step_tokens"]), device=micro_tokens.device)
            self._step_tokens = _all_reduce(count)[0].clamp(min=1)
        return self._step_tokens

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Cross-entropy summed over this micro-batch's target tokens, divided by the
        target tokens of the whole optimizer step (all micro-batches, all ranks): the
        gradients of ``k`` accumulated micro-batches equal those of one batch ``k`` times
        as large, on any number of ranks."""
        local_sum, stats = self._stats(batch)
        tokens = stats[NT : 2 * NT].sum().clamp(min=1)
        step_tokens = self._tokens_of_step(batch, tokens)
        # DDP/FSDP average gradients over ranks and Lightning divides each micro-batch's
        # loss by accumulate_grad_batches: both factors are undone here.
        scale = self.trainer.world_size * self.trainer.accumulate_grad_batches
        loss = local_sum * scale / step_tokens
        self._log_train(stats, tokens)
        return loss

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Adds ``scored`` (:func:`trainer.model.scored_index`) while the labels are on the
        host, so that the loss sizes its gather without waiting for the GPU."""
        if isinstance(batch, dict) and "labels" in batch and "scored" not in batch:
            batch["scored"] = scored_index(batch["labels"])
        return batch

    def _log_now(self) -> bool:
        """Whether Lightning writes the logs of this step (``log_every_n_steps``), on its
        last micro-batch (with ``accumulate_grad_batches``, the earlier ones only add up)."""
        trainer = self.trainer
        if trainer.training and trainer.fit_loop._should_accumulate():
            return False
        return bool(trainer._logger_connector.should_update_logs)

    def _log_train(self, stats: torch.Tensor, tokens: torch.Tensor) -> None:
        """Sums ``stats`` on the device every step; converts and logs them only on the
        steps Lightning logs (``trainer.log_every_n_steps``): the only host syncs.

        The losses are the means over the target tokens of the steps since the last log;
        ``train/tokens_per_s`` (real sequence tokens, audio pads included),
        ``train/audio_s_per_s``, ``train/tflops`` (model TFLOP/s per device) and
        ``train/mfu`` (against ``peak_tflops``) are over the wall time between two logs.
        """
        acc = stats.detach()
        self._acc = acc if self._acc is None else self._acc + acc
        if not self._log_now():
            return
        s = self._acc.tolist()  # the one sync of the logging interval
        self._acc = None
        logs = {"train/loss": sum(s[:NT]) / max(sum(s[NT : 2 * NT]), 1.0)}
        for i, name in enumerate(TASK_NAMES):
            if s[NT + i] > 0:
                logs[f"train/loss_{name}"] = s[i] / s[NT + i]
        logs["train/pad_share_text"] = 1 - s[2 * NT] / max(s[2 * NT + 1], 1.0)
        logs["train/pad_share_audio"] = 1 - s[2 * NT + 3] / max(s[2 * NT + 4], 1.0)
        now = time.perf_counter()
        if self._last_step_time is not None:
            seconds = now - self._last_step_time
            logs["train/tokens_per_s"] = s[2 * NT] / seconds
            logs["train/audio_s_per_s"] = s[2 * NT + 2] / seconds
            tflops = s[2 * NT + 5] / seconds / self.trainer.world_size / 1e12
            logs["train/tflops"] = tflops
            if self.peak_tflops:
                logs["train/mfu"] = tflops / self.peak_tflops
        self._last_step_time = now
        self.log("loss", logs["train/loss"], prog_bar=True, logger=False, batch_size=1)
        self.log_dict(logs, on_step=True, batch_size=1)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """On logged steps, ``train/grad_norm``: the total gradient norm before clipping."""
        if not self._log_now():
            return
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if grads:
            norm = torch.nn.utils.get_total_norm(grads)
            full = getattr(norm, "full_tensor", None)  # FSDP2: a DTensor of partial norms
            norm = full() if full is not None else norm
            self.log("train/grad_norm", float(norm), on_step=True, batch_size=1)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Accumulates per-task sums; every sample counts exactly once."""
        _, stats = self._stats(batch)
        self._val = stats if self._val is None else self._val + stats

    def on_validation_epoch_end(self) -> None:
        """Logs ``val/loss`` and ``val/loss_<task>`` (already reduced over ranks)."""
        if self._val is None:
            return
        s, self._val = self._val, None
        logs = {"val/loss": float(s[:NT].sum() / s[NT : 2 * NT].sum().clamp(min=1))}
        for i, name in enumerate(TASK_NAMES):
            if s[NT + i] > 0:
                logs[f"val/loss_{name}"] = float(s[i] / s[NT + i])
        self.log_dict(logs, batch_size=1)

    def configure_optimizers(self) -> dict[str, Any]:
        """The configured optimizer over trainable parameters, with a per-step schedule."""
        if not any(p.requires_grad for p in self.parameters()):
            raise ValueError("every part of the model is frozen: nothing to train")
        opt = self.optimizer_factory(_optimizer_groups(self.net))
        if self.scheduler_factory is None:
            return {"optimizer": opt}
        total = int(self.trainer.estimated_stepping_batches)
        sched = self.scheduler_factory(opt, total_steps=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
