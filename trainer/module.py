"""LightningModule: the training step, per-task losses and throughput logs, FSDP2 set-up."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.distributed as dist

from trainer.features import TASK_NAMES
from trainer.model import QwenAudioModel, parallelize
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


class QwenAudioModule(L.LightningModule):
    """Trains a :class:`QwenAudioModel` on every task of the mixture at once.

    The loss is the mean over all target tokens of the *global* batch (token counts are
    summed over ranks), so any number of processes gives the same loss and gradients as
    one process on the same global batch.
    """

    def __init__(
        self,
        net: Callable[..., QwenAudioModel],
        tokenizer: QwenAudioTokenizer,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        param_dtype: str | None = None,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.net = net(tokenizer=tokenizer)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.param_dtype, self.activation_checkpointing = param_dtype, activation_checkpointing
        self._parallelized = False
        self._last_step_time: float | None = None
        self._val: torch.Tensor | None = None

    def configure_model(self) -> None:
        """FSDP2 under ``ModelParallelStrategy`` (shards the net that ``training_step`` calls)."""
        if self._parallelized:
            return
        mesh = self.device_mesh["data_parallel"] if self.device_mesh is not None else None
        parallelize(self.net, mesh, self.param_dtype, self.activation_checkpointing)
        self._parallelized = True

    def _stats(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Local loss sum, and all-reduced per-task sums/counts + batch statistics."""
        losses, rows = self.net(batch)
        weight = batch["weight"][rows]
        losses = losses * weight
        tasks = batch["task_ids"][rows]
        stats = torch.zeros(2 * NT + 5, device=losses.device)
        stats[:NT].index_add_(0, tasks, losses.detach().float())
        stats[NT : 2 * NT].index_add_(0, tasks, weight.float())
        real = batch["attention_mask"].sum() * (batch["weight"][0] > 0)
        stats[2 * NT] = real
        stats[2 * NT + 1] = batch["attention_mask"].numel()
        stats[2 * NT + 2] = (batch["durations"] * batch["weight"]).sum()
        stats[2 * NT + 3] = batch["feature_lens"].sum()
        stats[2 * NT + 4] = batch["input_features"].shape[-1] * len(batch["feature_lens"])
        return losses.sum(), _all_reduce(stats)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Global-token-mean cross-entropy of the target tokens."""
        local_sum, stats = self._stats(batch)
        tokens = stats[NT : 2 * NT].sum().clamp(min=1)
        # Gradients are averaged over ranks by DDP/FSDP, hence the world-size factor.
        loss = local_sum * self.trainer.world_size / tokens
        self._log_train(stats, tokens)
        return loss

    def _log_train(self, stats: torch.Tensor, tokens: torch.Tensor) -> None:
        logs = {"train/loss": stats[:NT].sum() / tokens}
        for i, name in enumerate(TASK_NAMES):
            if stats[NT + i] > 0:
                logs[f"train/loss_{name}"] = stats[i] / stats[NT + i]
        logs["train/pad_share_text"] = 1 - stats[2 * NT] / stats[2 * NT + 1]
        logs["train/pad_share_audio"] = 1 - stats[2 * NT + 3] / stats[2 * NT + 4]
        now = time.perf_counter()
        if self._last_step_time is not None:
            seconds = now - self._last_step_time
            logs["train/tokens_per_s"] = stats[2 * NT] / seconds
            logs["train/audio_s_per_s"] = stats[2 * NT + 2] / seconds
        self._last_step_time = now
        self.log("loss", logs["train/loss"], prog_bar=True, logger=False, batch_size=1)
        self.log_dict({k: float(v) for k, v in logs.items()}, on_step=True, batch_size=1)

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
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise ValueError("every part of the model is frozen: nothing to train")
        opt = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return {"optimizer": opt}
        total = int(self.trainer.estimated_stepping_batches)
        sched = self.scheduler_factory(opt, total_steps=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
