"""GPU: no host-device synchronisation between logging steps (issue 12, item 3).

Run on a CUDA machine: ``pytest -m gpu tests/test_trainer_speed_gpu.py``.  The steps that
Lightning does not log run under ``torch.cuda.set_sync_debug_mode("error")``: any
``.item()``, ``nonzero``, boolean-mask index or blocking copy raises.  The CPU stand-in
(same steps, sync ops recorded by a dispatch mode) is tests/test_trainer_speed.py.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from test_trainer_model import ENC, LM, synthetic_batch
from transformers import Qwen2Config, WhisperConfig

from trainer.model import adamw, build_model, param_groups, scored_index
from trainer.module import QwenAudioModule
from trainer.tokenizer import QwenAudioTokenizer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.fixture(scope="module")
def tok() -> QwenAudioTokenizer:
    return QwenAudioTokenizer.from_texts(["MISTER QUILTER a dog barks rain falls"] * 3, 100)


class SyncErrorBetweenLogs(L.Callback):
    """Whole steps that Lightning does not log (forward, backward, clipping, fused AdamW)
    under ``set_sync_debug_mode("error")``."""

    def __init__(self) -> None:
        self.on, self.checked = False, 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, i: int) -> None:
        if i > 0 and not trainer._logger_connector.should_update_logs:
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            self.on = True

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, out: Any, batch: Any,
                           i: int) -> None:
        if self.on:
            torch.cuda.set_sync_debug_mode("default")
            self.on, self.checked = False, self.checked + 1


def test_lightning_steps_between_logs_never_sync(tok: QwenAudioTokenizer, tmp_path: Path) -> None:
    batches = [synthetic_batch(tok, i) for i in range(7)]
    module = QwenAudioModule(
        net=partial(build_model, encoder=WhisperConfig(**ENC), lm=Qwen2Config(**LM)),
        tokenizer=tok, optimizer=partial(adamw, lr=1e-3, weight_decay=0.01), peak_tflops=989.0)
    check = SyncErrorBetweenLogs()
    trainer = L.Trainer(
        accelerator="gpu", devices=1, precision="bf16-mixed", max_steps=7, log_every_n_steps=3,
        gradient_clip_val=1.0, default_root_dir=tmp_path, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, callbacks=[check])
    try:
        trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(
            batches, batch_size=None, pin_memory=True))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert check.checked == 4  # steps 1, 3, 4, 6
    assert module.trainer.optimizers[0].defaults["fused"] is True


def test_bare_steps_never_sync(tok: QwenAudioTokenizer) -> None:
    """The model's own step (bf16 autocast, clipping, fused AdamW), without Lightning."""
    torch.manual_seed(0)
    net = build_model(tok, WhisperConfig(**ENC), Qwen2Config(**LM)).cuda().train()
    net.host_checks = False
    opt = adamw(param_groups(net), lr=1e-3, weight_decay=0.01)
    batches = []
    for i in range(4):
        b = synthetic_batch(tok, i)
        b["scored"] = scored_index(b["labels"])
        batches.append({k: v.cuda(non_blocking=True) for k, v in b.items()})

    def step(batch: dict[str, torch.Tensor]) -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            losses, _ = net(batch)
        (losses.sum() / batch["scored"].numel()).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step(batches[0])  # optimizer state, cuBLAS handles: set up before the check
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for b in batches[1:]:
            step(b)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert opt.defaults["fused"] is True
