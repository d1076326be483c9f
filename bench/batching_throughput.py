"""Training throughput of the trainer's data path + step against a 30 s-padding baseline.

Usage::

    python bench/batching_throughput.py                      # 16 steps, global batch 8
    python bench/batching_throughput.py --steps 32 --batch-size 16

Two variants train ``model=tiny`` (built by the project's Hydra config and
``trainer.fit.build_module``, so the same :class:`~trainer.model.QwenAudioModel`) on the
demo mixture (``data/shards/mixture.json``, ``make demo``), on the *same examples*:

* ``project``: the data module's own training loader (``ShardDataModule.train_dataloader``:
  duration-sorted pools cut into batches, mel features cut to the longest clip of the batch);
* ``baseline``: what a user would write first: the same mixed task stream (same seed, same
  draws), batches in arrival order, every clip's mel padded to 30 s (3000 frames) by
  ``WhisperFeatureExtractor``'s default ``padding="max_length"``.  Token sequences are
  built the same way (one audio token per 40 ms of real audio, text padded to the longest
  row), and ``feature_lens`` are the real lengths, so the model masks the padding and the
  loss is the same; only batching and feature padding differ (checked at the end).

Each variant runs in its own process (peak RSS from ``resource.getrusage`` is per process),
with ``torch.set_num_threads(1)`` and one-thread BLAS; ``--rounds`` alternating runs of the
two spread other load of a shared machine over both (the table shows each variant's fastest
round, with the highest peak RSS of its rounds).  ``--warmup`` steps on batches of another
epoch come first and are not timed; then ``--steps`` steps are timed one by one: building
the batch (stream walk, FLAC decode, log-mel, tokens) and the training step (forward +
backward + AdamW step).  Choose ``--steps`` as a multiple of the data module's
``pool_batches`` (8) so that both variants see exactly the same examples.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = ("project", "baseline")


# --------------------------------------------------------------------------- child side


def build(steps: int, batch_size: int) -> tuple[Any, Any]:
    """The project's data module and LightningModule for ``model=tiny`` on the demo mixture."""
    from hydra import compose, initialize_config_dir

    from trainer.fit import build_module

    overrides = [
        "+experiment=multitask", "model=tiny", "trainer=cpu", "torch_threads=1",
        f"paths.root_dir={ROOT}", f"data.global_batch_size={batch_size}",
        f"data.steps_per_epoch={steps}", "data.num_workers=0",
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return build_module(cfg)


def arrival_batches(cfg: Any, epoch: int, rank: int = 0, world: int = 1) -> Iterator[list[Any]]:
    """The pairs of ``trainer.data.train_batches`` (rank 0 of 1) in arrival order.

    Same generator seed and the same random draws as ``duration_batches`` (it shuffles
    each pool of ``pool_batches`` batches; the shuffle of a same-size dummy list keeps the
    generator in step), so every pool holds the same examples, neither sorted nor shuffled.
    One process only (``rank``, ``world`` are there to match ``train_batches``).
    """
    assert (rank, world) == (0, 1)
    from trainer.data import mixed_stream

    rng = random.Random(f"{cfg.seed}:{epoch}")
    pairs = mixed_stream(cfg, rng)
    size = cfg.global_batch_size
    done = 0
    while done < cfg.steps_per_epoch:
        chunk = list(itertools.islice(pairs, size * cfg.pool_batches))
        rng.shuffle([None] * cfg.pool_batches)
        for i in range(0, len(chunk), size):
            if done == cfg.steps_per_epoch:
                return
            yield chunk[i : i + size]
            done += 1


class Timed:
    """Wraps a callable and sums its wall time."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return self.fn(*args, **kw)
        finally:
            self.seconds += time.perf_counter() - t


def run_variant(variant: str, steps: int, batch_size: int, warmup: int) -> dict[str, Any]:
    """Warm up, then time ``steps`` batches + training steps of one variant."""
    import torch

    from trainer.data import TrainStream, train_batches
    from trainer.module import NT

    data, module = build(steps, batch_size)
    module.configure_model()  # the net is built on the meta device; materialise it (CPU)
    net = module.net
    net.train()
    optimizer = module.optimizer_factory([p for p in net.parameters() if p.requires_grad])
    cfg = data.stream_config()
    built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux -> MiB

    if variant == "project":
        timed_mel = Timed(data.collate.mel)
        data.collate.mel = timed_mel  # instance attribute: Collator.__call__ calls self.mel
        warm = TrainStream(cfg, data.collate, 0, 1)
        warm.set_position(1, 0)
        warm_batches: Iterator[dict] = iter(warm)
        batches: Iterator[dict] = iter(data.train_dataloader())  # (epoch 0, skip 0): no trainer
    else:
        from trainer.features import Collator

        collate = Collator(data.tokenizer, data.collate.extractor.feature_size, pad_to_30s=True)
        timed_mel = Timed(collate.mel)
        collate.mel = timed_mel  # type: ignore[method-assign]
        warm_batches = map(collate, arrival_batches(cfg, 1))
        batches = map(collate, arrival_batches(cfg, 0))

    def step(batch: dict[str, Any]) -> None:
        local_sum, stats = module._stats(batch)  # the module's own loss path (net + stats)
        loss = local_sum / stats[NT : 2 * NT].sum().clamp(min=1)  # as training_step
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step(next(warm_batches))
    del warm_batches  # its stream (and shuffle buffers) go

    timed_mel.seconds = 0.0
    rows = []
    for _ in range(steps):
        mel0 = timed_mel.seconds
        t0 = time.perf_counter()
        batch = next(batches)
        t1, c1 = time.perf_counter(), time.process_time()
        step(batch)
        t2, c2 = time.perf_counter(), time.process_time()
        rows.append({
            "data_s": t1 - t0, "step_s": t2 - t1, "step_cpu_s": c2 - c1,
            "mel_s": timed_mel.seconds - mel0,
            "audio_s": float(batch["durations"].sum()),
            "frames_real": int(batch["feature_lens"].sum()),
            "frames_all": int(batch["input_features"].shape[-1] * len(batch["feature_lens"])),
            "tokens_real": int(batch["attention_mask"].sum()),
            "tokens_all": int(batch["attention_mask"].numel()),
            "targets": int((batch["labels"] != -100).sum()),
        })
        del batch
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del batches
    order = train_batches if variant == "project" else arrival_batches
    pair_lists = [[(p.key, p.task, p.target) for p in b] for b in order(cfg, 0, 0, 1)]

    check = None
    if variant == "baseline":  # same pairs, both collations, same weights: same loss?
        net.eval()
        pairs = next(iter(train_batches(cfg, 0, 0, 1)))
        with torch.no_grad():
            a, _ = net(data.collate(pairs))
            b, _ = net(collate(pairs))
        check = float((a.sum() - b.sum()).abs() / b.sum().abs())
    return {"variant": variant, "rows": rows, "peak_rss_mib": peak, "built_rss_mib": built,
            "pairs": pair_lists,
            "loss_rel_diff": check, "threads": torch.get_num_threads(),
            "torch": torch.__version__}


# --------------------------------------------------------------------------- parent side


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    """Totals of one variant's timed steps."""
    rows = res["rows"]

    def tot(k: str) -> float:
        return sum(r[k] for r in rows)

    n = len(rows)
    return {
        "variant": res["variant"], "batches": n, "audio_s": tot("audio_s"),
        "frames_per_clip": tot("frames_all") / n / len(res["pairs"][0]),
        "pad_audio": 1 - tot("frames_real") / tot("frames_all"),
        "pad_text": 1 - tot("tokens_real") / tot("tokens_all"),
        "data_s": tot("data_s") / n, "mel_s": tot("mel_s") / n, "step_s": tot("step_s") / n,
        "step_cpu_s": tot("step_cpu_s") / n,
        "audio_per_s_step": tot("audio_s") / tot("step_s"),
        "tokens_per_s_step": tot("tokens_real") / tot("step_s"),
        "targets_per_s_step": tot("targets") / tot("step_s"),
        "audio_per_s_all": tot("audio_s") / (tot("step_s") + tot("data_s")),
        "peak_rss_mib": res["peak_rss_mib"], "built_rss_mib": res["built_rss_mib"],
    }


def table(summaries: list[dict[str, Any]]) -> str:
    """Markdown table of the summaries."""
    head = (
        "| variant | batches | audio s | mel frames/clip | audio pad share | text pad share | "
        "data s/batch | mel s/batch | step s/batch (CPU s) | audio s/s (step) | tokens/s (step) | "
        "target tokens/s (step) | audio s/s (data+step) | peak RSS MiB (after build) |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for s in summaries:
        lines.append(
            f"| {s['variant']} | {s['batches']} | {s['audio_s']:.1f} | "
            f"{s['frames_per_clip']:.0f} | {s['pad_audio']:.2f} | {s['pad_text']:.2f} | "
            f"{s['data_s']:.3f} | {s['mel_s']:.3f} | {s['step_s']:.3f} ({s['step_cpu_s']:.3f}) | "
            f"{s['audio_per_s_step']:.0f} | {s['tokens_per_s_step']:.0f} | "
            f"{s['targets_per_s_step']:.0f} | {s['audio_per_s_all']:.0f} | "
            f"{s['peak_rss_mib']:.0f} ({s['built_rss_mib']:.0f}) |"
        )
    return "\n".join(lines)


def main() -> None:
    """Run each variant in a fresh process, then print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=16, help="timed steps per variant")
    ap.add_argument("--batch-size", type=int, default=8, help="global batch (one process)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--rounds", type=int, default=2,
                    help="alternating runs of each variant; the table shows each one's best")
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not (ROOT / "data/shards/mixture.json").exists():
        sys.exit("data/shards/mixture.json not found: run `make demo` first")

    if args.variant:  # child: one variant, JSON on the last stdout line
        res = run_variant(args.variant, args.steps, args.batch_size, args.warmup)
        print(json.dumps(res))
        return

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for r in range(args.rounds):  # alternate, so that other load falls on both alike
        for variant in VARIANTS:
            t = time.perf_counter()
            out = subprocess.run(
                [sys.executable, __file__, "--variant", variant, "--steps", str(args.steps),
                 "--batch-size", str(args.batch_size), "--warmup", str(args.warmup)],
                check=True, capture_output=True, text=True, env=env,
            )
            runs[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1} {variant}: {time.perf_counter() - t:.1f} s wall (process)",
                  file=sys.stderr)

    def total(res: dict[str, Any]) -> float:
        return sum(x["data_s"] + x["step_s"] for x in res["rows"])

    results = [min(runs[v], key=total) for v in VARIANTS]  # best round of each
    for res, v in zip(results, VARIANTS, strict=True):
        res["peak_rss_mib"] = max(x["peak_rss_mib"] for x in runs[v])
    examples = {
        tuple(sorted(map(tuple, itertools.chain(*x["pairs"])))) for v in VARIANTS for x in runs[v]
    }
    same = len(examples) == 1  # every round of both variants
    print(table([summarize(r) for r in results]))
    print()
    print(f"- both variants trained on the same examples: {'yes' if same else 'NO'}"
          f" ({args.steps} timed steps x batch {args.batch_size}, {args.warmup} warm-up steps,"
          f" torch threads {results[0]['threads']})")
    print("- peak RSS: whole process; in brackets its peak once torch, transformers, Lightning,"
          " Hydra, the tokenizer, the data module and the model are built (before any data)")
    print(f"- loss of one batch, 30 s-padded vs cut features (same weights): relative "
          f"difference {results[1]['loss_rel_diff']:.1e}")
    spread = "; ".join(
        f"{v} " + ", ".join(f"{summarize(x)['audio_per_s_all']:.0f}" for x in runs[v])
        for v in VARIANTS
    )
    print(f"- audio s/s (data+step) of every round: {spread}")
    print(f"- machine: {os.cpu_count()} CPU cores seen; torch {results[0]['torch']}, CPU only")


if __name__ == "__main__":
    main()
