"""Helpers of the trainer-at-scale tests: gloo process groups, small configs, batches."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from transformers import Qwen2Config, WhisperConfig

from trainer.features import Collator
from trainer.model import build_model
from trainer.tokenizer import build_tokenizer

ENC = dict(num_mel_bins=80, d_model=64, encoder_layers=2, encoder_attention_heads=4,
           encoder_ffn_dim=128, decoder_layers=1, decoder_attention_heads=4,
           decoder_ffn_dim=128, max_source_positions=1500, dropout=0.0)
LM = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
          num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True)


def spawn(fn: Any, world: int, tmp: Path, *args: Any) -> list[dict[str, Any]]:
    """Run ``fn(rank, world, tmp, *args)`` in ``world`` gloo processes; returns the dict
    each rank wrote with :func:`report`."""
    mp.spawn(_entry, args=(fn, world, str(tmp), args), nprocs=world, join=True)
    return [json.loads((tmp / f"rank{r}.json").read_text()) for r in range(world)]


def _entry(rank: int, fn: Any, world: int, tmp: str, args: tuple) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/pg", rank=rank,
                            world_size=world)
    try:
        fn(rank, world, Path(tmp), *args)
    finally:
        dist.destroy_process_group()


def report(tmp: Path, rank: int, **values: Any) -> None:
    """What rank ``rank`` tells the test."""
    (tmp / f"rank{rank}.json").write_text(json.dumps(values))


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def tokenizer() -> Any:
    """The real Qwen vocabulary (155,165 ids; the audio tokens start at 151,851)."""
    return build_tokenizer()


def tiny_net(tok: Any, **kw: Any) -> Any:
    """A ~20 M parameter model on the meta device (configs, or ``*_path`` folders)."""
    if "encoder_path" in kw:
        return build_model(tok, empty=True, **kw)
    return build_model(tok, WhisperConfig(**ENC), Qwen2Config(**LM), empty=True, **kw)


def batch(tok: Any, n: int, seed: int = 0) -> dict[str, Any]:
    """A training batch of ``n`` synthetic clips whose targets hold time tokens (ids of
    the added vocabulary) and plain words (ids of the original one)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        seconds = 0.5 + 0.25 * (i % 3)
        audio = (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
        # targets of different lengths: micro-batches hold different token counts
        target = f"<|0.00|>hello<|0.{20 + i:02d}|>{' world' * (1 + i)}<|{seconds:.2f}|>"
        pairs.append(SimpleNamespace(
            key=f"clip{i}", task="srwt" if i % 2 else "asr",
            prompt="<|startoftranscript|><|en|><|transcribe|><|en|><|notimestamps|><|wo_itn|>",
            target=target, duration=seconds, audio=SimpleNamespace(read=lambda a=audio: a),
        ))
    return Collator(tok)(pairs)


def rows(b: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    """Rows ``start:stop`` of a batch (same padding width)."""
    clips = b["input_features"].shape[0] == b["input_ids"].shape[0]
    out = {}
    for key, value in b.items():
        if isinstance(value, torch.Tensor) and value.dim() and (
            key not in ("input_features", "feature_lens") or clips
        ):
            out[key] = value[start:stop]
        elif isinstance(value, list):
            out[key] = value[start:stop]
        else:
            out[key] = value
    return out
