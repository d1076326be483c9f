"""Parse time and peak memory of every recipe on label files of the corpus's real size.

    .venv/bin/python bench/parse_scale.py                    # all recipes, real sizes
    .venv/bin/python bench/parse_scale.py nsynth audioset    # some
    .venv/bin/python bench/parse_scale.py --items 100000     # another size for all

For each recipe a child process writes the label files in the corpus's own format
(:mod:`dataset_recipes.samples.metadata`, ``REAL_SIZE`` items: LibriSpeech 281,241
utterances, NSynth 305,979 notes, AudioSet 2,041,789 segments, Common Voice/CoVoST
300,000 rows, ...), then a second child parses it as the build does (``recipe.prepare``,
items counted as they stream out, every folder listing answered from the label files
since no audio is written; CochlScene and GTZAN get real files) and reports its wall and
CPU seconds and its peak resident memory (``ru_maxrss``) before and after the parse.
Imports and first-call costs are spent on a 20-item corpus before the timing starts.
Prints a Markdown table (the one in bench/RESULTS.md) and the machine load (``--out``:
the figures as JSON too).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATE = 50_000  # items per second the issue asks for

_WRITE = """
import sys
from pathlib import Path
from dataset_recipes.samples import metadata
metadata.WRITERS[sys.argv[1]](Path(sys.argv[2]), int(sys.argv[3]))
"""

_PARSE = """
import json, resource, sys, time
from pathlib import Path
from dataset_recipes import RECIPES
from dataset_recipes.samples import metadata
from pipeline.record import Record
name, raw, n, warm = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
recipe = RECIPES[name]
with metadata.listing(name, warm, 20):
    list(recipe.prepare(recipe.locate(warm)))
listing = metadata.listing(name, raw, n)
root = recipe.locate(raw)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
wall, cpu = time.perf_counter(), time.process_time()
records = rejects = 0
with listing:
    for item in recipe.prepare(root):
        if isinstance(item, Record):
            records += 1
        else:
            rejects += 1
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"records": records, "rejects": rejects, "wall_s": wall, "cpu_s": cpu,
                  "rss_before_mib": before / 1024, "rss_peak_mib": after / 1024}))
"""


def _run(code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True)
    return done.stdout


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(name: str, n: int, tmp: Path) -> dict[str, Any]:
    """Write a corpus of ``n`` items for ``name`` under ``tmp`` and parse it in a child."""
    raw, warm = tmp / name, tmp / f"{name}-warm"
    start = time.perf_counter()
    _run(_WRITE, name, str(raw), str(n))
    _run(_WRITE, name, str(warm), "20")
    written = time.perf_counter() - start
    label_bytes = _size(raw)
    try:
        result = json.loads(_run(_PARSE, name, str(raw), str(n), str(warm)))
    finally:
        shutil.rmtree(raw, ignore_errors=True)
        shutil.rmtree(warm, ignore_errors=True)
    return {"recipe": name, "items": n, "label_mib": label_bytes / 2**20,
            "write_s": written, **result}


def _table(rows: list[dict[str, Any]]) -> str:
    out = ["| recipe | items | label files | parse wall | parse CPU | items/s (wall) | "
           "items/CPU-s | peak RSS (added by the parse) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        n, wall, cpu = r["items"], r["wall_s"], r["cpu_s"]
        added = r["rss_peak_mib"] - r["rss_before_mib"]
        out.append(f"| {r['recipe']} | {n:,} | {r['label_mib']:.1f} MiB | {wall:.1f} s | "
                   f"{cpu:.1f} s | {n / wall:,.0f} | {n / cpu:,.0f} | "
                   f"{r['rss_peak_mib']:.0f} MiB (+{added:.0f}) |")
    return "\n".join(out)


def main() -> None:
    """Measure the recipes named on the command line (default: all)."""
    sys.path.insert(0, str(ROOT))
    from dataset_recipes.samples.metadata import REAL_SIZE, WRITERS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipes", nargs="*", default=sorted(WRITERS))
    parser.add_argument("--items", type=int, default=None, help="items per corpus "
                        "(default: each corpus's real size)")
    parser.add_argument("--tmp", type=Path, default=None, help="scratch folder")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures here "
                        "as JSON")
    args = parser.parse_args()
    load = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for name in args.recipes:
            row = measure(name, args.items or REAL_SIZE[name], Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
    load_end = os.getloadavg()
    print(_table(rows))
    print(f"\nload average (1 min) at start {load[0]:.1f}, at end {load_end[0]:.1f}, on "
          f"{os.cpu_count()} CPUs; target {TARGET_RATE:,} items/s")
    if args.out is not None:
        args.out.write_text(json.dumps({"load_start": load, "load_end": load_end,
                                        "cpus": os.cpu_count(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
