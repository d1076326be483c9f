"""Where the fixed seconds of a build go, and how long small builds take from the shell.

Usage::

    python bench/build_startup.py                  # phases, then the commands, 3 rounds
    python bench/build_startup.py --rounds 5 --skip-phases

Phases: each measured in a fresh process (cold imports; the OS file cache is warm, as on
a second run): interpreter start, the build entry's imports, packages a build no longer
imports (torch, whisperx, matplotlib, lhotse), Hydra's composition of ``conf/build.yaml``,
the card pictures of one recipe, the English aligner's first use, and Ray: import,
``ray.init``, a first and a second pair of tiny tasks (the build's runner: one task per
shard), ``ray.shutdown``.

Commands: ``make build-dataset RECIPE=clotho SOURCE=sample`` with ``runner=auto`` (the
default), ``runner=ray`` and ``runner=local``, and ``RECIPE=all`` (what ``make demo``
builds), each into a fresh output folder, wall time from the shell's start of ``make`` to
its exit, median of ``--rounds`` interleaved rounds, after one untimed warm-up round that
writes the sample corpora (``data/samples``, reused while ``dataset_recipes/`` is
unchanged).  Ray's fixed cost is the clotho command on Ray minus in-process.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").is_dir() else sys.executable

PHASES = {
    "interpreter start": "pass",
    "import dataset_recipes.build (the build entry)": "import dataset_recipes.build",
    "import torch (no longer on a build's path)": "import torch",
    "import whisperx.alignment (torch + transformers; only for a whisperx language)":
        "import whisperx.alignment",
    "import matplotlib.figure (card pictures, in a helper process)": "import matplotlib.figure",
    "import lhotse (imports torch; only the lhotse recipe's sample)": "import lhotse",
    "Hydra: compose conf/build.yaml": """
from hydra import compose, initialize_config_dir
T0 = time.perf_counter()
with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
    compose(config_name="build", overrides=["recipe=clotho"])
""",
    "card pictures of one recipe (import + 2 PNGs)": """
from pipeline.card_plots import plot_durations, plot_hours
import tempfile
T0 = time.perf_counter()
d = Path(tempfile.mkdtemp())
plot_durations([3.0, 7.5, 12.0, 20.0] * 4, d / "a.png")
plot_hours({("asr", "en"): 3600.0, ("srwt", "en"): 3000.0}, d / "b.png")
""",
    "English aligner: first use minus a second use (the load)": """
import soundfile as sf
from pipeline.align import AlignConfig, make_aligner
clip = ROOT / "dataset_recipes/samples/speech/1272-128104-0000.flac"
audio, _ = sf.read(clip, dtype="float32")
text = "MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES AND WE ARE GLAD TO WELCOME HIS GOSPEL"
aligner = make_aligner(AlignConfig())
T0 = time.perf_counter()
aligner.align(audio, text, "en")
T1 = time.perf_counter()
aligner.align(audio, text, "en")
T2 = time.perf_counter()
print("EXTRA", "English aligner: the same clip again", T2 - T1)
T0 = time.perf_counter() - ((T1 - T0) - (T2 - T1))  # first use minus one clip: the load
""",
    "Ray: import ray": "import ray",
    "Ray: ray.init (local, 2 CPUs)": """
import logging, ray
T0 = time.perf_counter()
ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING,
         log_to_driver=False)
T1 = time.perf_counter()
@ray.remote(num_cpus=1)
def task(i):
    import pipeline.stages  # what a build's first task imports in each worker
    return i
ray.get([task.remote(i) for i in range(2)]); T2 = time.perf_counter()
ray.get([task.remote(i) for i in range(2)]); T3 = time.perf_counter()
ray.shutdown(); T4 = time.perf_counter()
print("EXTRA", "Ray: first 2 tasks (each worker imports pipeline.stages)", T2 - T1)
print("EXTRA", "Ray: 2 more tasks", T3 - T2)
print("EXTRA", "Ray: ray.shutdown", T4 - T3)
T0 = time.perf_counter() - (T1 - T0)  # report ray.init alone
""",
}


def phase(name: str, code: str) -> dict[str, float]:
    """Seconds of ``code`` in a fresh process (from ``T0``, default: after the prelude)."""
    prelude = ("import time\nT0 = time.perf_counter()\nimport sys\nfrom pathlib import Path\n"
               f"ROOT = Path({str(ROOT)!r})\nsys.path.insert(0, str(ROOT))\n")
    tail = "\nprint('TIME', time.perf_counter() - T0)\n"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_ADDRESS": ""}
    t = time.perf_counter()
    proc = subprocess.run([PY, "-c", prelude + code + tail], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t
    if proc.returncode:
        return {name: float("nan")}
    out = {name: wall if code == "pass" else 0.0}
    for line in proc.stdout.splitlines():
        if line.startswith("TIME ") and code != "pass":
            out[name] = float(line.split()[1])
        elif line.startswith("EXTRA "):
            _, label_value = line.split(" ", 1)
            label, value = label_value.rsplit(" ", 1)
            out[label] = float(value)
    return out


def command(args: list[str]) -> tuple[float, float]:
    """Wall seconds of ``make <args>`` from its start to its exit, and the CPU seconds of
    the processes it waited for (Ray's own processes, started apart, are not counted)."""
    env = {**os.environ, "RAY_ADDRESS": ""}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(["make", "-s", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1200)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"make {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--skip-phases", action="store_true")
    p.add_argument("--skip-commands", action="store_true")
    args = p.parse_args()
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at start")
    if not args.skip_phases:
        got: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for name, code in PHASES.items():
                for k, v in phase(name, code).items():
                    got.setdefault(k, []).append(v)
        print("\n| phase (fresh process) | median s |\n|---|---|")
        for k, v in got.items():
            print(f"| {k} | {statistics.median(v):.2f} |")
    if args.skip_commands:
        return
    tmp = Path(tempfile.mkdtemp(prefix="build-startup-"))
    variants = {
        "make build-dataset RECIPE=clotho SOURCE=sample (runner=auto)": ["RECIPE=clotho"],
        "... ARGS=runner=ray": ["RECIPE=clotho", "ARGS=runner=ray"],
        "... ARGS=runner=local": ["RECIPE=clotho", "ARGS=runner=local"],
        "make build-dataset RECIPE=all SOURCE=sample (= make demo)": ["RECIPE=all"],
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    cpus: dict[str, list[float]] = {k: [] for k in variants}
    try:
        for rnd in range(args.rounds + 1):  # round 0: warm-up (writes the sample corpora)
            for name, extra in variants.items():
                out = tmp / "out"
                shutil.rmtree(out, ignore_errors=True)
                wall, cpu = command(["build-dataset", "SOURCE=sample", f"OUT={out}", *extra])
                if rnd:
                    times[name].append(wall)
                    cpus[name].append(cpu)
                    print(f"round {rnd}: {name}: {wall:.1f} s, {cpu:.1f} CPU s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nload average {os.getloadavg()[0]:.2f} at end\n"
          "| command | median wall s | median CPU s (Ray's processes not counted) |\n|---|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:.1f} | {statistics.median(cpus[k]):.1f} |")
    ray, local = med["... ARGS=runner=ray"], med["... ARGS=runner=local"]
    print(f"Ray's fixed cost (clotho on Ray - in-process): {ray - local:.1f} s")


if __name__ == "__main__":
    main()
