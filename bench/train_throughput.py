"""Training step throughput: the trainer as ``fit.py`` runs it against a bare PyTorch loop.

Usage::

    python bench/train_throughput.py --device cpu --model tiny                 # ~3 min on CPU
    python bench/train_throughput.py --device cuda --model qwen_audio_2b --batch-size 16

Both variants train the model of ``conf/model/<--model>.yaml`` (``+experiment=multitask``,
the demo mixture ``data/shards/mixture.json`` of ``make demo``, or ``--mixture``), each in
a fresh process (model init included, so peak memory is per variant):

* ``trainer``: ``trainer.fit.build`` + ``Trainer.fit``, exactly as ``python trainer/fit.py``
  (Lightning, the data module and its loader, the configured strategy and precision:
  ``--trainer`` defaults to ``cpu`` on CPU and ``fsdp`` with one device on CUDA), for
  ``--warmup`` + ``--steps`` steps; the batches it trains on are saved (host copies);
* ``loop``: the same model config, built and wrapped the same way (``configure_model``:
  activation checkpointing, ``model.compile``), replaying the trainer's batches already on
  the device; bf16 autocast when the model config computes in bf16, the configured
  optimizer (fused AdamW on CUDA), the trainer's gradient clipping; no loader, no Lightning.

Timed: the ``--steps`` steps after ``--warmup`` untimed ones, between two device syncs.
Printed per variant: s/step (and the process's CPU seconds per step, which other load on
a shared machine disturbs less), real tokens/s (non-padding sequence tokens, audio included),
model TFLOP/s (:mod:`trainer.flops`: encoder + LM + attention + LM head on the scored
tokens, 3x the forward), MFU against ``--peak-tflops`` (default: the card's bf16 dense
peak, e.g. 989 for an H100/H200; none on CPU) and peak memory (CUDA: max allocated; CPU:
peak RSS), then the trainer's share of the loop's throughput.  ``--override`` passes
further Hydra overrides to both, e.g. ``trainer.log_every_n_steps=10``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def compose_cfg(args: argparse.Namespace) -> Any:
    """The Hydra config both variants use."""
    from hydra import compose, initialize_config_dir

    trainer = args.trainer or ("cpu" if args.device == "cpu" else "fsdp")
    overrides = [
        "+experiment=multitask", f"model={args.model}", f"trainer={trainer}",
        f"paths.root_dir={ROOT}", f"data.global_batch_size={args.batch_size}",
        f"data.steps_per_epoch={args.warmup + args.steps}", "trainer.max_epochs=1",
        f"trainer.max_steps={args.warmup + args.steps}", "trainer.enable_progress_bar=false",
        "+trainer.limit_val_batches=0", "~callbacks.checkpoint",
        "+trainer.enable_checkpointing=false", f"paths.run_dir={args.run_dir}",
    ]
    if args.mixture:
        overrides.append(f"data.mixture={args.mixture}")
    if args.device == "cpu":
        overrides += ["torch_threads=1", "data.num_workers=0"]
    else:
        overrides += ["trainer.devices=1"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides + list(args.override))


def counts(batches: list[dict[str, Any]], net: Any) -> tuple[int, float]:
    """Real tokens and model FLOPs of a list of (host) batches."""
    from trainer.flops import batch_train_flops, dims_of

    d = dims_of(net)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    return tokens, sum(float(batch_train_flops(d, b)) for b in batches)


def peak_memory(device: str) -> float:
    """Peak memory of this process in GiB (CUDA: max allocated; CPU: peak RSS)."""
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_trainer(args: argparse.Namespace, batches_file: Path) -> dict[str, Any]:
    """``fit.py``'s objects, timed by a callback; saves the batches it trained on."""
    import lightning as L
    import torch

    from trainer.fit import build

    cfg = compose_cfg(args)
    data, module, trainer = build(cfg)
    saved: list[dict[str, Any]] = []
    hook = module.on_before_batch_transfer

    def capture(batch: Any, idx: int) -> Any:
        batch = hook(batch, idx)
        saved.append({k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
        return batch

    module.on_before_batch_transfer = capture  # Lightning looks the hook up on the instance
    times: dict[str, float] = {}

    class Clock(L.Callback):
        def on_train_batch_start(self, tr: Any, pl: Any, batch: Any, i: int) -> None:
            if tr.global_step == args.warmup and "start" not in times:
                torch.cuda.synchronize() if args.device == "cuda" else None
                times["start"], times["cpu_start"] = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, tr: Any, pl: Any, out: Any, batch: Any, i: int) -> None:
            if tr.global_step == args.warmup + args.steps:
                torch.cuda.synchronize() if args.device == "cuda" else None
                times["end"], times["cpu_end"] = time.perf_counter(), time.process_time()

    trainer.callbacks.append(Clock())
    trainer.fit(module, datamodule=data)
    timed = saved[args.warmup : args.warmup + args.steps]
    torch.save(saved, batches_file)
    tokens, flops = counts(timed, module.net)
    return {"variant": "trainer", "seconds": times["end"] - times["start"], "steps": len(timed),
            "cpu_seconds": times["cpu_end"] - times["cpu_start"],
            "tokens": tokens, "flops": flops, "peak_gib": peak_memory(args.device),
            "log_every_n_steps": trainer.log_every_n_steps,
            "strategy": type(trainer.strategy).__name__, "precision": str(cfg.trainer.precision)}


def run_loop(args: argparse.Namespace, batches_file: Path) -> dict[str, Any]:
    """The same model, its optimizer and clipping, on the saved batches; nothing else."""
    import contextlib

    import torch

    from trainer.fit import build_module
    from trainer.model import param_groups

    cfg = compose_cfg(args)
    _, module = build_module(cfg)
    module.configure_model()  # activation checkpointing, compile, weights (no sharding)
    device = torch.device(args.device)
    net = module.net.to(device).train()
    net.host_checks = False
    opt = module.optimizer_factory(param_groups(net))
    clip = cfg.trainer.get("gradient_clip_val")
    bf16 = module.param_dtype == "bfloat16" or "bf16" in str(cfg.trainer.precision)
    autocast = (torch.autocast(args.device, dtype=torch.bfloat16) if bf16
                else contextlib.nullcontext())
    host = torch.load(batches_file, weights_only=False)
    batches = [{k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                for k, v in b.items()} for b in host]

    def step(b: dict[str, Any]) -> None:
        with autocast:
            losses, rows = net(b)
        loss = (losses * b["weight"][rows]).sum() / max(b["scored"].numel(), 1)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(args.warmup):
        step(batches[i % len(batches)])
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    sync()
    order = [(args.warmup + i) % len(batches) for i in range(args.steps)]
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in order:
        step(batches[i])
    sync()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    tokens, flops = counts([host[i] for i in order], net)
    return {"variant": "loop", "seconds": seconds, "steps": len(order), "tokens": tokens,
            "cpu_seconds": cpu_seconds,
            "flops": flops, "peak_gib": peak_memory(args.device), "autocast_bf16": bf16}


def report(results: list[dict[str, Any]], peak: float | None, card: str) -> str:
    """The comparison table."""
    head = ("| variant | s/step (CPU s/step) | real tokens/s | model TFLOP/s | MFU | "
            "peak memory GiB |")
    lines = [head, "|---|---|---|---|---|---|"]
    for r in results:
        tflops = r["flops"] / r["seconds"] / 1e12
        mfu = f"{tflops / peak:.1%}" if peak else "n/a"
        lines.append(f"| {r['variant']} | {r['seconds'] / r['steps']:.3f} "
                     f"({r['cpu_seconds'] / r['steps']:.3f}) | "
                     f"{r['tokens'] / r['seconds']:.0f} | {tflops:.3g} | {mfu} | "
                     f"{r['peak_gib']:.2f} |")
    t, lp = results
    lines.append("")
    ratio = (t["steps"] / t["seconds"]) / (lp["steps"] / lp["seconds"])
    cpu = (t["steps"] / t["cpu_seconds"]) / (lp["steps"] / lp["cpu_seconds"])
    lines.append(f"- trainer / loop throughput: {ratio:.2f} by wall time, {cpu:.2f} by the "
                 f"process's CPU time (target >= 0.9); device: {card}; MFU peak: "
                 f"{peak or 'none'} TFLOP/s")
    lines.append(f"- trainer: {t['strategy']}, precision {t['precision']}, log_every_n_steps "
                 f"{t['log_every_n_steps']}; loop: bf16 autocast {lp['autocast_bf16']}")
    return "\n".join(lines)


def main() -> None:
    """Run both variants in fresh processes, then print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--model", default="tiny", help="a conf/model config name")
    ap.add_argument("--trainer", default=None, help="conf/trainer name (cpu / fsdp by device)")
    ap.add_argument("--batch-size", type=int, default=8, help="global batch")
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="bf16 dense peak of the device (default: by card name)")
    ap.add_argument("--mixture", default=None, help="mixture.json (default: the demo's)")
    ap.add_argument("--override", action="append", default=[], help="a Hydra override")
    ap.add_argument("--variant", choices=["trainer", "loop"], help=argparse.SUPPRESS)
    ap.add_argument("--batches", help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:  # child: one variant, JSON on the last stdout line
        run = run_trainer if args.variant == "trainer" else run_loop
        print(json.dumps(run(args, Path(args.batches))))
        return
    mixture = Path(args.mixture or ROOT / "data/shards/mixture.json")
    if not mixture.exists():
        sys.exit(f"{mixture} not found: run `make demo` first, or give --mixture")
    card, peak = "CPU", args.peak_tflops
    if args.device == "cuda":
        import torch

        from trainer.flops import peak_tflops_of

        card = torch.cuda.get_device_name()
        peak = peak or peak_tflops_of(card)
    env = dict(os.environ, OMP_NUM_THREADS="1") if args.device == "cpu" else dict(os.environ)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        batches = Path(tmp) / "batches.pt"
        for variant in ("trainer", "loop"):
            t = time.perf_counter()
            out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--variant", variant,
                                  "--batches", str(batches), "--run-dir", tmp], env=env,
                                 capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{variant} failed:\n{out.stderr[-4000:]}")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{variant}: {time.perf_counter() - t:.0f} s wall (process)", file=sys.stderr)
    print(report(results, peak, card))


if __name__ == "__main__":
    main()
