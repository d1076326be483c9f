"""Training speed on CPU: the FLOP count, no host-sync ops in the step, logs only at the
logging interval, compiled blocks (issue 12; the GPU side is tests/test_trainer_speed_gpu.py)."""

from __future__ import annotations

import csv
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from test_trainer_model import ENC, LM, _net, synthetic_batch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode
from transformers import Qwen2Config, WhisperConfig

from trainer.features import conv_frames
from trainer.flops import dims_of, forward_flops
from trainer.model import adamw, build_model, compile_blocks, scored_index
from trainer.module import QwenAudioModule
from trainer.tokenizer import QwenAudioTokenizer

aten = torch.ops.aten
#: ops that make the host wait for a GPU: .item()/float()/bool(), nonzero, torch.equal, ...
SYNC_OPS = {aten._local_scalar_dense, aten.nonzero, aten.is_nonzero, aten.equal,
            aten.masked_select, aten.masked_scatter, aten._unique2, aten.unique_consecutive,
            aten.unique_dim, aten.repeat_interleave}


class SyncOps(TorchDispatchMode):
    """Records every op of :data:`SYNC_OPS` and boolean-mask indexing (the CPU stand-in for
    ``torch.cuda.set_sync_debug_mode("error")``)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None):
        bool_index = func is aten.index.Tensor and any(
            i is not None and i.dtype == torch.bool for i in args[1])
        if func.overloadpacket in SYNC_OPS or bool_index:
            self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def tok() -> QwenAudioTokenizer:
    return QwenAudioTokenizer.from_texts(["MISTER QUILTER a dog barks rain falls"] * 3, 100)


def test_flop_count_matches_torch_flop_counter(tok: QwenAudioTokenizer) -> None:
    """One row, one clip, no padding: our count = PyTorch's count of the same forward
    (SDPA's math kernel, so that attention is counted as matrix products), but for causal
    attention (we count the T(T+1)/2 pairs a causal kernel computes, it counts T^2) and the
    rotary angles (one (h/2 x 1) @ (1 x T) product, element-wise work for us)."""
    net = _net(tok).eval()
    batch = synthetic_batch(tok, 2, rows=1)
    batch["scored"] = scored_index(batch["labels"])
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        net(batch)
    d = dims_of(net)
    t = int(batch["attention_mask"].sum())
    assert t == batch["input_ids"].shape[1] and batch["feature_lens"][0] == batch[
        "input_features"].shape[-1]
    ours = forward_flops(d, batch["feature_lens"], batch["attention_mask"].sum(1),
                         batch["scored"].numel())
    q = d.heads * d.head_dim
    full_attention = d.layers * (4 * q * t * t - 2 * q * t * (t + 1))
    rotary = 2 * (d.head_dim // 2) * t
    assert int(ours) + full_attention + rotary == counter.get_total_flops()
    assert conv_frames(int(batch["feature_lens"][0])) > 50  # the encoder is really counted


def _module(tok: QwenAudioTokenizer, **kw: Any) -> QwenAudioModule:
    torch.manual_seed(0)
    return QwenAudioModule(
        net=partial(build_model, encoder=WhisperConfig(**ENC), lm=Qwen2Config(**LM)),
        tokenizer=tok, optimizer=partial(adamw, lr=1e-3, weight_decay=0.01), **kw)


class NoSyncBetweenLogs(L.Callback):
    """Runs each step that Lightning does not log (training_step + backward) under
    :class:`SyncOps`."""

    def __init__(self) -> None:
        self.mode: SyncOps | None = None
        self.checked, self.seen = 0, []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, i: int) -> None:
        if i > 0 and not trainer._logger_connector.should_update_logs:
            self.mode = SyncOps()
            self.mode.__enter__()

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: Any, opt: Any) -> None:
        if self.mode is not None:
            self.mode.__exit__(None, None, None)
            self.seen += self.mode.seen
            self.checked += 1
            self.mode = None


def test_steps_between_logs_have_no_sync_ops_and_logs_follow_the_interval(
    tok: QwenAudioTokenizer, tmp_path: Path
) -> None:
    batches = [synthetic_batch(tok, i) for i in range(7)]
    module = _module(tok, peak_tflops=1e-3)
    module.net.host_checks = False  # the accelerators' asynchronous checks, not CPU's exact ones
    check = NoSyncBetweenLogs()
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=7, log_every_n_steps=3, gradient_clip_val=1.0,
        logger=CSVLogger(tmp_path, name="", version=""), enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[check])
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    assert check.checked == 4  # steps 1, 3, 4, 6 (0 warms up; 2 and 5 are logged)
    assert check.seen == []
    rows = {}
    with open(tmp_path / "metrics.csv") as f:
        for row in csv.DictReader(f):
            rows.setdefault(int(row["step"]), {}).update({k: v for k, v in row.items() if v})
    assert sorted(s for s, r in rows.items() if "train/loss" in r) == [2, 5]
    assert sorted(s for s, r in rows.items() if "train/grad_norm" in r) == [2, 5]
    assert float(rows[5]["train/grad_norm"]) > 0
    assert "train/tflops" not in rows[2]  # no interval before the first log
    tflops, mfu = float(rows[5]["train/tflops"]), float(rows[5]["train/mfu"])
    assert tflops > 0 and mfu == pytest.approx(tflops / 1e-3)
    for name in ("train/tokens_per_s", "train/audio_s_per_s", "train/pad_share_text"):
        assert name in rows[5]


@pytest.mark.slow  # compiling 4 layers forward and backward: ~4 min on a loaded 2-core box
def test_compiled_blocks_train_like_eager_blocks(tok: QwenAudioTokenizer) -> None:
    """``model.compile=true``: each layer compiled in place, same names, same loss."""
    batch = synthetic_batch(tok, 3)
    out = []
    for compiled in (False, True):
        net = _net(tok).train()
        names = [n for n, _ in net.named_parameters()]
        if compiled:
            compile_blocks(net)
            assert [n for n, _ in net.named_parameters()] == names
        losses, _ = net(batch)
        losses.mean().backward()
        out.append((losses.detach(), net.lm.model.layers[0].mlp.up_proj.weight.grad))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-4, atol=1e-6)


def test_accumulated_micro_batches_are_logged_once_per_interval(
    tok: QwenAudioTokenizer, tmp_path: Path
) -> None:
    """accumulate 2, log every 2 optimizer steps: logs at steps 1 and 3, each covering the
    4 micro-batches since the previous log."""
    batches = [synthetic_batch(tok, i, rows=2 + i % 2) for i in range(8)]
    for i in range(0, 8, 2):
        total = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches[i : i + 2])
        batches[i] |= {"step_tokens": total, "step_first": True}
        batches[i + 1] |= {"step_tokens": total, "step_first": False}
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=4, log_every_n_steps=2,
        accumulate_grad_batches=2, logger=CSVLogger(tmp_path, name="", version=""),
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(_module(tok), train_dataloaders=DataLoader(batches, batch_size=None))
    rows = {}
    with open(tmp_path / "metrics.csv") as f:
        for row in csv.DictReader(f):
            rows.setdefault(int(row["step"]), {}).update({k: v for k, v in row.items() if v})
    assert sorted(s for s, r in rows.items() if "train/loss" in r) == [1, 3]
    window = batches[4:]
    real = sum(int(b["attention_mask"].sum()) for b in window)
    every = sum(b["attention_mask"].numel() for b in window)
    assert float(rows[3]["train/pad_share_text"]) == pytest.approx(1 - real / every, rel=1e-6)
