"""Peak GPU memory and step time of a real training run of the 2.2 B configuration.

Usage (one CUDA GPU; the demo mixture from ``make demo``)::

    python bench/train_memory.py                         # model=qwen_audio_2b, batch 64
    python bench/train_memory.py --steps 8 --batch-size 64 --accumulate 1
    python bench/train_memory.py --model qwen_audio_2b --extra trainer.devices=1

Runs ``trainer/fit.py``'s own build (Hydra config ``+experiment=multitask
model=<model> trainer=fsdp``: FSDP2 on one device, bf16 compute with fp32 master
weights, activation checkpointing per layer, random init, no download) for ``--steps``
optimizer steps of global batch ``--batch-size`` x ``--accumulate`` and prints one JSON
line: peak allocated and reserved memory (GiB, ``torch.cuda.max_memory_*``), the step
times (the first ``--warmup`` steps left out of the mean), the parameter count, and the
settings.  The numbers go to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(model: str, batch_size: int, accumulate: int, steps: int, warmup: int,
            mixture: Path, extra: list[str], cpu: bool = False) -> dict[str, Any]:
    """Train ``steps`` optimizer steps and return the memory and timing figures
    (``cpu=True``: a smoke run of this script on CPU, peak RSS instead of GPU memory)."""
    import lightning as L
    import torch
    from hydra import compose, initialize_config_dir

    from trainer.fit import build

    if not cpu and not torch.cuda.is_available():
        raise SystemExit("bench/train_memory.py needs a CUDA GPU (--cpu: a smoke run)")
    sync = torch.cuda.synchronize if not cpu else (lambda: None)
    if not mixture.is_file():
        raise SystemExit(f"{mixture} not found: run `make demo` first (or pass --mixture)")
    run = Path(tempfile.mkdtemp(prefix="train_memory_"))
    overrides = [
        "+experiment=multitask", f"model={model}", f"trainer={'fsdp_cpu' if cpu else 'fsdp'}",
        "trainer.devices=1",
        f"data.mixture={mixture}", f"data.global_batch_size={batch_size}",
        f"trainer.accumulate_grad_batches={accumulate}", f"trainer.max_steps={steps}",
        f"data.steps_per_epoch={steps * accumulate}", "trainer.enable_progress_bar=false",
        "+trainer.limit_val_batches=0", "~callbacks.checkpoint", f"paths.run_dir={run}",
        *extra,
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    data, module, trainer = build(cfg)
    times: list[float] = []

    class Clock(L.Callback):
        """Wall time of each optimizer step (its micro-batches and the GPU work)."""

        start = 0.0

        def on_train_batch_start(self, tr: Any, mod: Any, batch: Any, idx: int) -> None:
            if idx % accumulate == 0:
                sync()
                self.start = time.perf_counter()

        def on_train_batch_end(self, tr: Any, mod: Any, out: Any, batch: Any, idx: int) -> None:
            if (idx + 1) % accumulate == 0:
                sync()
                times.append(time.perf_counter() - self.start)

    trainer.callbacks.append(Clock())
    if not cpu:
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, datamodule=data)
    timed = times[warmup:] or times
    gib = 1024**3
    return {
        "model": model, "params": sum(p.numel() for p in module.net.parameters()),
        "global_batch": batch_size * accumulate, "micro_batch": batch_size,
        "accumulate": accumulate, "activation_checkpointing": cfg.model.module
        .activation_checkpointing, "param_dtype": cfg.model.module.param_dtype,
        "steps": len(times), "step_s": [round(t, 3) for t in times],
        "mean_step_s": round(sum(timed) / len(timed), 3),
        **({"peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                  / 1024**2, 2), "device": "cpu"} if cpu else {
            "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / gib, 2),
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / gib, 2),
            "device": torch.cuda.get_device_name()}),
        "torch": torch.__version__,
    }


def main() -> None:
    """Command line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen_audio_2b")
    ap.add_argument("--batch-size", type=int, default=64, help="global batch per micro-step")
    ap.add_argument("--accumulate", type=int, default=1)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--mixture", type=Path, default=ROOT / "data/shards/mixture.json")
    ap.add_argument("--extra", nargs="*", default=[], help="more Hydra overrides")
    ap.add_argument("--cpu", action="store_true", help="smoke run on CPU (e.g. --model tiny)")
    args = ap.parse_args()
    out = measure(args.model, args.batch_size, args.accumulate, args.steps, args.warmup,
                  args.mixture, args.extra, args.cpu)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
