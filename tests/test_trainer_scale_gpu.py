"""Issue 9 item 8 on a CUDA GPU: the 2.2 B configuration (model=qwen_audio_2b, random init,
activation checkpointing, bf16 compute, FSDP2) trains at global batch 64 of the demo
mixture on one GPU; prints the peak memory and step time for bench/RESULTS.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MIXTURE = ROOT / "data" / "shards" / "mixture.json"

pytestmark = pytest.mark.gpu


def _demo_mixture() -> Path:
    """The demo mixture, built from the recipes' sample corpora when missing (`make demo`)."""
    if not MIXTURE.is_file():
        cmd = [sys.executable, "-m", "dataset_recipes.build", "recipe=all", "source=sample",
               "align.skip_languages=[zh]"]
        subprocess.run(cmd, cwd=ROOT, check=True, timeout=3600)
    return MIXTURE


def test_2b_model_trains_at_global_batch_64_on_one_gpu() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    cmd = [sys.executable, str(ROOT / "bench/train_memory.py"), "--steps", "4", "--warmup",
           "2", "--batch-size", "64", "--mixture", str(_demo_mixture())]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3000,
                         env={**os.environ, "CUDA_VISIBLE_DEVICES": os.environ.get(
                             "CUDA_VISIBLE_DEVICES", "0")})
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(result))  # the figures for bench/RESULTS.md (pytest -s)
    assert 2.1e9 < result["params"] < 2.3e9
    assert result["global_batch"] == 64 and result["steps"] == 4
    assert result["activation_checkpointing"] is True
    total = torch.cuda.get_device_properties(0).total_memory / 1024**3
    assert result["peak_reserved_gib"] < total
