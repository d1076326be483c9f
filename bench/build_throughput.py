"""Build throughput: the project's build (one process, and Ray Data) against the loop a user
would write first, on the same generated corpus, in one run.

Usage::

    python bench/build_throughput.py                      # 240 clips x 10 s, 44.1 kHz stereo
    python bench/build_throughput.py --clips 400 --seconds 20 --workers 2

The corpus is written in Clotho's official layout (captions CSV + ``development/*.wav``) with
generated sounds, so the real Clotho recipe parses it.  Variants:

- ``naive loop``: ``soundfile.read`` -> mean over channels -> ``scipy.signal.resample_poly``
  -> ``webdataset.ShardWriter`` writing FLAC + JSON; no checks, no rejects, no resume, shard
  names and bytes not deterministic.
- ``pipeline, runner=local``: ``run_build`` in this process (the same stages as Ray).
- ``pipeline, runner=ray``: ``run_build`` on a local Ray instance with ``--workers`` actors
  (Ray's start-up is timed apart; actor start-up is in the wall time).

Figures: wall seconds, samples/s and audio seconds per wall second, best of ``--repeat``
interleaved runs (so page cache and imports favour no variant), and the peak RSS of this
process (Ray's worker processes are not included).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dataset_recipes.clotho import RECIPE, _sound  # noqa: E402
from pipeline.build import run_build  # noqa: E402
from pipeline.stages import BuildOptions  # noqa: E402

KINDS = ("beeps", "hiss", "sweep", "hum", "clicks")


def make_corpus(root: Path, clips: int, seconds: float) -> float:
    """Write ``clips`` stereo 44.1 kHz wavs in Clotho's layout; return total audio seconds."""
    rng = np.random.default_rng(0)
    (root / "development").mkdir(parents=True, exist_ok=True)
    rows = [["file_name", *(f"caption_{i}" for i in range(1, 6))]]
    for i in range(clips):
        kind = KINDS[i % len(KINDS)]
        mono = _sound(kind, seconds, rng).astype(np.float32)
        stereo = np.stack([mono, 0.8 * mono], axis=1)
        name = f"clip {i:05d}.wav"
        sf.write(root / "development" / name, stereo, 44100, subtype="PCM_16")
        rows.append([name, *(f"a {kind} sound, caption {j}" for j in range(5))])
    with open(root / "clotho_captions_development.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return clips * seconds


def naive_loop(corpus: Path, out: Path) -> int:
    """What a user writes first: read, downmix, resample, write with webdataset."""
    import webdataset as wds
    from scipy.signal import resample_poly

    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(corpus / "clotho_captions_development.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with wds.ShardWriter(str(out / "naive-%06d.tar"), maxcount=256, verbose=0) as sink:
        for row in rows:
            data, _ = sf.read(corpus / "development" / row["file_name"], dtype="float32")
            mono = data.mean(axis=1) if data.ndim == 2 else data
            mono = resample_poly(mono, 160, 441).astype(np.float32)
            buf = io.BytesIO()
            sf.write(buf, mono, 16000, format="FLAC", subtype="PCM_16")
            captions = [row[f"caption_{i}"] for i in range(1, 6)]
            sink.write({"__key__": f"s{n:06d}", "flac": buf.getvalue(),
                        "json": json.dumps({"captions": captions}).encode()})
            n += 1
    return n


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Generate the corpus, run the three variants, print a markdown table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=240)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--workers", type=int, default=2, help="Ray actors")
    p.add_argument("--shard-size", type=int, default=16)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        audio_s = make_corpus(tmp / "corpus", args.clips, args.seconds)
        options = BuildOptions(shard_size=args.shard_size)
        import ray

        t0 = time.perf_counter()
        ray.init(include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        variants: list[tuple[str, Callable[[Path], int]]] = [
            ("naive loop (soundfile + scipy + webdataset)",
             lambda out: naive_loop(tmp / "corpus", out)),
            ("pipeline, runner=local", lambda out: run_build(
                RECIPE, tmp / "corpus", out, options, runner="local", progress=False)["samples"]),
            (f"pipeline, runner=ray ({args.workers} actors)", lambda out: run_build(
                RECIPE, tmp / "corpus", out, options, runner="ray", workers=args.workers,
                progress=False)["samples"]),
        ]
        best: dict[str, tuple[int, float]] = {}
        for rep in range(args.repeat):  # interleaved, best of: load falls on all alike
            for i, (name, fn) in enumerate(variants):
                t0 = time.perf_counter()
                n = fn(tmp / f"out{i}-{rep}")
                wall = time.perf_counter() - t0
                if name not in best or wall < best[name][1]:
                    best[name] = (n, wall)
        rows = [(name, n, wall, n / wall, audio_s / wall) for name, (n, wall) in best.items()]
        same = all((tmp / "out1-0" / q.name).read_bytes() == q.read_bytes()
                   for q in (tmp / "out2-0").glob("*.tar"))
    print(f"corpus: {args.clips} clips x {args.seconds:g} s, 44.1 kHz stereo wav "
          f"({audio_s / 3600:.3f} h); shards of {args.shard_size}")
    print(f"best of {args.repeat} interleaved runs; peak RSS of this process (driver, all "
          f"variants): {_peak_rss_mb():.0f} MB")
    print("| variant | samples | wall s | samples/s | audio s/s |")
    print("|---|---|---|---|---|")
    for name, n, wall, sps, aps in rows:
        print(f"| {name} | {n} | {wall:.2f} | {sps:.1f} | {aps:.0f} |")
    print(f"starting the local Ray instance (not in the table): {ray_start:.1f} s")
    print(f"ray and local shards byte-identical: {same}")


if __name__ == "__main__":
    main()
