"""Build throughput on LibriSpeech-layout corpora: the project's build command against
Lhotse (and a naive process pool), whole commands, on the same corpora, in one run.

Usage::

    python bench/build_throughput.py                     # 1.25 h and 6 h, 3 rounds
    python bench/build_throughput.py --hours 10 --small-hours 2 --repeat 2 \
        --variants lhotse,pipeline-ray,pipeline-local,pipeline-cluster,naive

The corpora are generated once (deterministic from ``--seed``) under ``--corpus-root``
(``data/bench/librispeech-gen-<hours>h``, git-ignored; delete them when done) in
LibriSpeech's official layout:
``LibriSpeech/train-clean-100/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac``
(16 kHz mono 16-bit FLAC, 2-20 s, written by libFLAC with the same metadata blocks as the
real release: seek table, Vorbis comment, 8 KiB padding) plus ``<speaker>-<chapter>.trans.txt``.
The audio is speech-like: a glottal pulse train with a moving pitch, shaped by three
moving formant resonators, in syllables and pauses, over a low noise floor, so FLAC
compresses it about as much as read speech.

Variants, each a whole command in its own process, timed from its start to its exit
(interpreter, imports, Ray's start and stop included).  CPU (the sum over the process tree,
Ray's processes included) and peak memory (the sum of the tree's RSS) are sampled every
50 ms in a first, untimed round of every variant and corpus, which also brings the corpora
into the page cache; the ``--repeat`` timed rounds after it run with nothing watching them.
Sampling a dozen processes every 50 ms costs ~0.9 CPU s in a 13 s build, which on 2 cores
made the build it watched 0.5-1 s slower, Ray's (a dozen processes) more than Lhotse's:

- ``pipeline-ray`` / ``pipeline-local`` / ``pipeline-auto``: ``python -m
  dataset_recipes.build recipe=librispeech raw=<corpus> out=<out> align.enabled=false
  runner=ray|local|auto`` (what ``make build-dataset RECIPE=librispeech RAW=... OUT=...
  ALIGN=0`` runs); ``pipeline-cluster``: ``runner=ray`` with ``RAY_ADDRESS`` naming a
  single-node cluster started (untimed) with ``ray start --head`` before the rounds.
- ``lhotse``: a process running ``lhotse.recipes.prepare_librispeech`` (2 jobs) and
  ``CutSet.to_shar(fields={"recording": "flac"})`` (2 jobs), Lhotse's own way to shards;
  its in-process time (imports excluded) is reported too.
- ``naive``: a ``multiprocessing.Pool(2)`` reads each file with soundfile and re-encodes it
  to FLAC; the parent writes them with ``webdataset.ShardWriter``.

Alignment is off (the others do not align).  The pipeline keeps LibriSpeech's FLAC frames
as they are after decoding them in full (:func:`pipeline.audio.load`), where the others
re-encode.  Figures: median wall of the whole command per corpus, its audio seconds per
second on the larger corpus, the steady-state rate (extra audio / extra wall between
the two corpora) with the fixed cost it implies, and the rate the CPUs allow at the margin
(extra audio / extra CPU seconds, times the CPUs; see :func:`report`).  Run on an idle
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.audio import strip_flac_metadata  # noqa: E402

SR = 16000
WORDS = ("THE AND OF TO A IN HE I THAT WAS IT HIS YOU WITH AS HAD FOR HER SHE BUT AT NOT "
         "BE ON THEY ALL BY SO HIM IS ONE HAVE WHICH SAID FROM WERE THIS WOULD WHEN THERE "
         "MY ME IF THEIR NO WHAT OUT AN UP ARE THEM INTO COULD BEEN SOME LITTLE MAN NOW "
         "TIME GREAT OLD HOUSE LONG DAY NIGHT WATER HAND EYES DOOR ROOM VOICE").split()


# ---------------------------------------------------------------- corpus generation
def speech_like(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Deterministic speech-like audio: voiced syllables with formants, and pauses."""
    from scipy.signal import lfilter

    n = int(seconds * SR)
    out = np.zeros(n, np.float64)
    pos = int(rng.uniform(0.1, 0.3) * SR)
    while pos < n - SR // 10:
        syl = int(rng.uniform(0.12, 0.35) * SR)
        seg = min(syl, n - pos)
        t = np.arange(seg) / SR
        f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(1, 4) * t))
        phase = np.cumsum(f0 / SR)
        src = (phase % 1.0) - 0.5  # sawtooth: a crude glottal source, rich in harmonics
        src += 0.05 * rng.standard_normal(seg)  # aspiration
        y = np.zeros(seg)
        for lo, hi in ((300, 900), (900, 2400), (2400, 3400)):
            fc, bw = rng.uniform(lo, hi), rng.uniform(60, 160)
            r = np.exp(-np.pi * bw / SR)
            a = [1, -2 * r * np.cos(2 * np.pi * fc / SR), r * r]
            y += lfilter([1 - r], a, src)
        env = np.sin(np.pi * np.arange(seg) / seg) ** 0.7
        out[pos:pos + seg] += 0.25 * y * env * rng.uniform(0.4, 1.0)
        pos += seg + int(rng.choice([0.02, 0.05, 0.3, 0.6], p=[0.5, 0.3, 0.15, 0.05]) * SR)
    out += 0.002 * rng.standard_normal(n)
    return np.clip(out, -0.99, 0.99)


def _with_librispeech_metadata(flac: bytes) -> bytes:
    """Add the SEEKTABLE, VORBIS_COMMENT and 8 KiB PADDING blocks real LibriSpeech
    files carry after STREAMINFO (soundfile writes STREAMINFO and a comment only)."""
    stream, _ = strip_flac_metadata(flac)  # fLaC, STREAMINFO (4 + 34 bytes), frames
    streaminfo, frames = stream[8:42], stream[42:]
    seek = b"\xff" * 8 + b"\x00" * 10  # one placeholder seek point, as `flac` writes
    vendor = b"reference libFLAC 1.2.1 20070917"
    comment = len(vendor).to_bytes(4, "little") + vendor + b"\x00\x00\x00\x00"
    blocks = [(0, streaminfo), (3, seek), (4, comment), (1, b"\x00" * 8192)]
    last = len(blocks) - 1
    head = b"".join(bytes([k | (0x80 if i == last else 0)]) + len(b).to_bytes(3, "big") + b
                    for i, (k, b) in enumerate(blocks))
    return b"fLaC" + head + frames


def make_corpus(root: Path, hours: float, seed: int) -> tuple[int, float]:
    """Write the corpus under ``root/LibriSpeech`` (reused when already complete)."""
    stamp = root / "corpus.json"
    want = {"hours": hours, "seed": seed, "version": 1}
    if stamp.exists() and json.loads(stamp.read_text())["params"] == want:
        got = json.loads(stamp.read_text())
        return got["utterances"], got["seconds"]
    shutil.rmtree(root, ignore_errors=True)
    import io

    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    split = root / "LibriSpeech" / "train-clean-100"
    total, count, spk = 0.0, 0, 100
    with tqdm(total=round(hours * 3600), unit="audio s", desc="generating corpus") as bar:
        while total < hours * 3600:
            spk += 1
            for chapter in (spk * 10 + 1, spk * 10 + 2):
                folder = split / str(spk) / str(chapter)
                folder.mkdir(parents=True)
                lines = []
                for utt in range(int(rng.integers(8, 16))):
                    seconds = float(np.clip(rng.gamma(6.0, 2.1), 2.0, 20.0))
                    uid = f"{spk}-{chapter}-{utt:04d}"
                    buf = io.BytesIO()
                    pcm = np.round(speech_like(seconds, rng) * 32767).astype(np.int16)
                    sf.write(buf, pcm, SR, format="FLAC", subtype="PCM_16")
                    (folder / f"{uid}.flac").write_bytes(_with_librispeech_metadata(buf.getvalue()))
                    words = rng.choice(WORDS, size=max(2, int(seconds * 2.7)))
                    lines.append(f"{uid} {' '.join(words)}")
                    total += len(pcm) / SR
                    count += 1
                    bar.update(len(pcm) / SR)
                (folder / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    stamp.write_text(json.dumps({"params": want, "utterances": count, "seconds": total}))
    return count, total


# ---------------------------------------------------------------- variants (child process)
def _naive_encode(path: str) -> tuple[str, bytes]:
    import io

    data, sr = sf.read(path, dtype="int16")
    buf = io.BytesIO()
    sf.write(buf, data, sr, format="FLAC", subtype="PCM_16")
    return Path(path).stem, buf.getvalue()


def run_naive(corpus: Path, out: Path, shard_size: int) -> int:
    import multiprocessing as mp

    import webdataset as wds

    texts: dict[str, str] = {}
    files = []
    for trans in sorted((corpus / "LibriSpeech").rglob("*.trans.txt")):
        for line in trans.read_text().splitlines():
            uid, text = line.split(" ", 1)
            texts[uid] = text
            files.append(str(trans.parent / f"{uid}.flac"))
    out.mkdir(parents=True)
    n = 0
    with mp.Pool(2) as pool, wds.ShardWriter(str(out / "naive-%06d.tar"), maxcount=shard_size,
                                             verbose=0) as sink:
        for uid, flac in pool.imap(_naive_encode, files, chunksize=8):
            sink.write({"__key__": uid, "flac": flac,
                        "json": json.dumps({"text": texts[uid]}).encode()})
            n += 1
    return n


def run_lhotse(corpus: Path, out: Path, shard_size: int) -> int:
    from lhotse import CutSet
    from lhotse.recipes import prepare_librispeech

    manifests = prepare_librispeech(corpus / "LibriSpeech", output_dir=out / "manifests",
                                    num_jobs=2)["train-clean-100"]
    cuts = CutSet.from_manifests(recordings=manifests["recordings"],
                                 supervisions=manifests["supervisions"])
    written = cuts.to_shar(out / "shar", fields={"recording": "flac"}, shard_size=shard_size,
                           num_jobs=2)
    return sum(1 for _ in CutSet.from_shar(fields={"cuts": written["cuts"]}))


def child(variant: str, corpus: Path, out: Path, shard_size: int) -> None:
    t0 = time.perf_counter()
    n = run_naive(corpus, out, shard_size) if variant == "naive" else run_lhotse(
        corpus, out, shard_size)
    print(json.dumps({"samples": n, "inner": time.perf_counter() - t0}))


def command(variant: str, corpus: Path, out: Path, shard_size: int) -> list[str]:
    """The whole command a user runs for ``variant`` (pipeline: the build's command line,
    as ``make build-dataset RECIPE=librispeech RAW=... OUT=... ALIGN=0`` runs it)."""
    if variant in ("naive", "lhotse"):
        return [sys.executable, __file__, "--child", variant, "--corpus", str(corpus),
                "--out", str(out), "--shard-size", str(shard_size)]
    runner = {"pipeline-ray": "ray", "pipeline-cluster": "ray", "pipeline-local": "local",
              "pipeline-auto": "auto"}[variant]
    return [sys.executable, "-m", "dataset_recipes.build", "recipe=librispeech",
            f"raw={corpus}", f"out={out}", "align.enabled=false", "progress=false",
            f"shard_size={shard_size}", f"runner={runner}"]


# ---------------------------------------------------------------- driver
def _tree_usage(pid: int, cpu: dict[int, float]) -> int:
    """RSS of the process tree now; records each process's latest CPU seconds in ``cpu``."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
            t = p.cpu_times()
            cpu[p.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


class RayHead:
    """A running single-node Ray cluster (`ray start --head --block`), as a cluster user
    has before a build; its start is not timed, its processes' CPU and memory are."""

    def __init__(self) -> None:
        import socket
        import tempfile

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
        self.log = Path(self.temp_dir) / "head.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
                 f"--port={self.port}", "--num-cpus=2", "--include-dashboard=false",
                 "--disable-usage-stats", f"--temp-dir={self.temp_dir}"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "RAY_ADDRESS": ""})
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"ray start failed:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.5)
        self.address = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def measure(variant: str, corpus: Path, out: Path, shard_size: int,
            head: RayHead | None = None, watch: bool = True) -> dict[str, float]:
    """Run one variant in a child process; wall time from inside, and with ``watch`` the
    process tree's CPU and peak RSS, sampled from here every 50 ms (which slows it)."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "RAY_ADDRESS": head.address if head else "", "OMP_NUM_THREADS": "1"}
    head_cpu0: dict[int, float] = {}
    head_cpu: dict[int, float] = {}
    if head and watch:
        _tree_usage(head.proc.pid, head_cpu0)
    t0 = time.perf_counter()
    proc = subprocess.Popen(command(variant, corpus, out, shard_size), stdout=subprocess.PIPE,
                            env=env, text=True, cwd=ROOT)
    peak = 0
    cpu: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            rss = _tree_usage(proc.pid, cpu)
            if head:
                rss += _tree_usage(head.proc.pid, head_cpu)
            peak = max(peak, rss)
            time.sleep(0.05)

    watcher = threading.Thread(target=sample, daemon=True) if watch else None
    if watcher:
        watcher.start()
    stdout, _ = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    if watcher:
        watcher.join()
    if proc.returncode:
        raise SystemExit(f"{variant} failed (exit {proc.returncode})")
    if variant.startswith("pipeline"):
        report = json.loads((out / "report.json").read_text())
        assert report["rejects"] == 0, report
        got = {"samples": report["samples"], "inner": report["wall_seconds"]}
    else:
        got = json.loads(stdout.strip().splitlines()[-1])
    got["wall"] = wall
    size = sum(p.stat().st_size for p in out.rglob("*.tar"))
    if not watch:
        return {**got, "tar_mb": size / 2**20}
    # CPU: the last reading of every process of the tree (Ray's own processes included;
    # a process's last 50 ms before it exits may be missed)
    cluster_cpu = sum(t - head_cpu0.get(pid, 0.0) for pid, t in head_cpu.items())
    return {**got, "peak_mb": peak / 2**20, "tar_mb": size / 2**20,
            "cpu": sum(cpu.values()) + cluster_cpu}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hours", type=float, default=6.0)
    p.add_argument("--small-hours", type=float, default=1.25,
                   help="second corpus for the steady-state rate; 0: none")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--corpus-root", type=Path, default=ROOT / "data" / "bench")
    p.add_argument("--work", type=Path, default=ROOT / "data" / "bench" / "out")
    p.add_argument("--shard-size", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--variants", default="lhotse,pipeline-ray,pipeline-local")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.corpus, args.out, args.shard_size)
        return
    sizes = sorted({h for h in (args.small_hours, args.hours) if h > 0})
    corpora: dict[float, tuple[Path, float]] = {}
    for hours in sizes:
        corpus = args.corpus_root / f"librispeech-gen-{hours:g}h"
        count, seconds = make_corpus(corpus, hours, args.seed)
        corpus_mb = sum(f.stat().st_size for f in corpus.rglob("*.flac")) / 2**20
        print(f"corpus: {count} utterances, {seconds / 3600:.2f} h, {corpus_mb:.0f} MB of "
              f"FLAC ({corpus})", flush=True)
        corpora[hours] = (corpus, seconds)
    variants = args.variants.split(",")
    head = RayHead() if "pipeline-cluster" in variants else None
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    try:
        results = run_rounds(args, variants, corpora, head)
    finally:
        if head:
            head.stop()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    report(args, variants, corpora, results)


def run_rounds(args: argparse.Namespace, variants: list[str],
               corpora: dict[float, tuple[Path, float]],
               head: RayHead | None) -> dict[tuple[Any, ...], list[dict[str, float]]]:
    """Every variant on every corpus: a watched round (CPU, memory; key ``(v, h, "watched")``)
    and then ``--repeat`` interleaved timed rounds (key ``(v, h)``)."""
    runs: dict[tuple[Any, ...], list[dict[str, float]]] = {}
    for rnd in range(args.repeat + 1):
        for hours, (corpus, seconds) in corpora.items():
            for v in variants:
                got = measure(v, corpus, args.work / v, args.shard_size,
                              head if v == "pipeline-cluster" else None, watch=rnd == 0)
                line = (f"{hours:g} h {v}: {got['wall']:.1f} s whole command "
                        f"({got['inner']:.1f} s inside), {seconds / got['wall']:.0f} audio s/s")
                if rnd == 0:
                    print(f"watched round (not timed) {line}, {got['cpu']:.1f} CPU s, peak "
                          f"{got['peak_mb']:.0f} MB", flush=True)
                    runs[(v, hours, "watched")] = [got]
                else:
                    print(f"round {rnd} {line}", flush=True)
                    runs.setdefault((v, hours), []).append(got)
    shutil.rmtree(args.work, ignore_errors=True)
    return runs


def _median(runs: list[dict[str, float]], key: str) -> float:
    values = sorted(r[key] for r in runs)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def report(args: argparse.Namespace, variants: list[str],
           corpora: dict[float, tuple[Path, float]],
           runs: dict[tuple[Any, ...], list[dict[str, float]]]) -> None:
    """Whole-command wall per corpus, and the steady-state rate between the two corpora
    (extra audio / extra wall), side by side; medians of the rounds.  Beside it, the rate
    the CPUs allow at the margin: extra audio / extra CPU seconds of the watched rounds,
    times the CPUs.  A two-point slope credits a variant with whatever share of the CPUs
    its smaller build left idle; the ceiling does not, and no variant's steady state can
    pass it (a variant that uses every CPU at the margin runs at it)."""
    sizes = sorted(corpora)
    big, small = sizes[-1], sizes[0]
    audio = {h: corpora[h][1] for h in sizes}
    cpus = os.cpu_count() or 1
    print(f"\nmedians of {args.repeat} interleaved timed rounds, {cpus} CPUs; whole "
          "command: from the process's start to its exit (interpreter, imports, Ray's start "
          "and stop included); CPU and peak RSS: the watched round")
    cols = " | ".join(f"{h:g} h wall s" for h in sizes)
    print(f"| variant | {cols} | whole-command audio s/s ({big:g} h) | steady-state audio s/s "
          f"| fixed s | audio s per extra CPU s | ceiling on {cpus} CPUs, audio s/s "
          "| CPU s | peak RSS MB |")
    print("|---|" + "---|" * (len(sizes) + 7))
    steady: dict[str, float] = {}
    ceiling: dict[str, float] = {}
    for v in variants:
        walls = {h: _median(runs[(v, h)], "wall") for h in sizes}
        cpu = {h: runs[(v, h, "watched")][0]["cpu"] for h in sizes}
        rate = audio[big] / walls[big]
        extra = "- | - | - | -"
        if big != small and walls[big] > walls[small] and cpu[big] > cpu[small]:
            steady[v] = (audio[big] - audio[small]) / (walls[big] - walls[small])
            fixed = walls[big] - audio[big] / steady[v]
            per_cpu = (audio[big] - audio[small]) / (cpu[big] - cpu[small])
            ceiling[v] = per_cpu * cpus
            extra = f"{steady[v]:.0f} | {fixed:.1f} | {per_cpu:.0f} | {ceiling[v]:.0f}"
        cells = " | ".join(f"{walls[h]:.1f}" for h in sizes)
        print(f"| {v} | {cells} | {rate:.0f} | {extra} | {cpu[big]:.1f} | "
              f"{runs[(v, big, 'watched')][0]['peak_mb']:.0f} |")
    if "lhotse" in variants:
        lh = _median(runs[("lhotse", big)], "wall")
        lh_inner = _median(runs[("lhotse", big)], "inner")
        print(f"lhotse at {big:g} h: {lh:.1f} s whole command, {lh_inner:.1f} s in-process "
              "(prepare + export, imports excluded)")
        for v in variants:
            if v.startswith("pipeline"):
                ours = _median(runs[(v, big)], "wall")
                line = (f"{v}: whole {big:g} h command {lh / ours:.2f}x Lhotse's whole command, "
                        f"{lh_inner / ours:.2f}x its in-process time")
                if v in steady and "lhotse" in steady:
                    line += (f"; steady state {steady[v] / steady['lhotse']:.2f}x Lhotse's, "
                             f"CPU-bound ceiling {ceiling[v] / ceiling['lhotse']:.2f}x")
                print(line)


if __name__ == "__main__":
    main()
