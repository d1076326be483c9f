"""Reading + decoding throughput of built shards with three readers, in one run.

Usage::

    python bench/read_throughput.py                   # builds the LibriSpeech + Clotho samples
    python bench/read_throughput.py --out data/shards/librispeech --repeat 3

Readers: the project's ``pipeline.reader.open_shards`` (float32 waveform), plain
``webdataset`` (``WebDataset`` over the tars, FLAC decoded with soundfile, JSON parsed) and
Hugging Face ``datasets`` (``load_dataset("webdataset", ...)`` with the card's features,
FLAC bytes decoded with soundfile, since its Audio feature needs FFmpeg through torchcodec).
Each pass reads every sample and decodes its audio; the figures are samples/s and
audio-seconds/s over ``--repeat`` interleaved passes, in one process (one core).
``datasets`` also reports its one-time conversion to Arrow (``prepare``) separately.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.reader import open_shards  # noqa: E402

Reader = Callable[[], Iterator[np.ndarray]]


def build_samples(tmp: Path) -> list[Path]:
    """Build the LibriSpeech and Clotho sample corpora (in-process runner); return out dirs."""
    from dataset_recipes.clotho import RECIPE as CLOTHO
    from dataset_recipes.librispeech import RECIPE as LIBRI
    from pipeline.build import run_build
    from pipeline.stages import BuildOptions

    outs = []
    for recipe in (LIBRI, CLOTHO):
        raw = recipe.make_sample(tmp / recipe.info.name / "raw")
        out = tmp / recipe.info.name / "out"
        run_build(recipe, recipe.locate(raw), out, BuildOptions(shard_size=8), runner="local",
                  progress=False)
        outs.append(out)
    return outs


def project_reader(dirs: list[Path]) -> Reader:
    """The project's reader: every sample, audio decoded to float32."""
    def run() -> Iterator[np.ndarray]:
        for sample in open_shards(dirs):
            yield sample.waveform  # type: ignore[misc]
    return run


def _decode(flac: bytes) -> np.ndarray:
    return sf.read(io.BytesIO(flac), dtype="float32")[0]


def webdataset_reader(urls: list[str]) -> Reader:
    """Plain webdataset: raw members, FLAC via soundfile, JSON parsed."""
    import webdataset as wds

    def run() -> Iterator[np.ndarray]:
        for row in wds.WebDataset(urls, shardshuffle=False, nodesplitter=None):
            json.loads(row["json"])
            yield _decode(row["flac"])
    return run


def datasets_reader(urls: list[str], cache: Path) -> tuple[Reader, float]:
    """Hugging Face datasets over the same tars; returns the reader and the prepare time."""
    import datasets

    datasets.disable_progress_bars()
    features = datasets.Features({"__key__": datasets.Value("string"),
                                  "__url__": datasets.Value("string"),
                                  "flac": datasets.Value("binary"), "json": datasets.Json()})
    start = time.perf_counter()
    ds = datasets.load_dataset("webdataset", data_files={"train": urls}, features=features,
                               cache_dir=str(cache), split="train")
    prepare = time.perf_counter() - start

    def run() -> Iterator[np.ndarray]:
        for row in ds:
            assert isinstance(row["json"], dict)
            yield _decode(row["flac"])
    return run, prepare


def measure(readers: dict[str, Reader], repeat: int) -> dict[str, tuple[int, float, float]]:
    """``name -> (samples, audio seconds, wall seconds)`` over ``repeat`` full passes each.

    Passes are interleaved (one pass of each reader per round), so that load from other
    processes on the machine falls on every reader alike.
    """
    totals = {name: [0, 0, 0.0] for name in readers}
    for _ in range(repeat):
        for name, reader in readers.items():
            acc = totals[name]
            start = time.perf_counter()
            for wav in reader():
                acc[0] += 1
                acc[1] += len(wav)
            acc[2] += time.perf_counter() - start
    return {name: (int(n), frames / 16000, wall) for name, (n, frames, wall) in totals.items()}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, action="append",
                        help="built output directory (repeatable); default: build the samples")
    parser.add_argument("--repeat", type=int, default=10, help="passes over the data (10)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        dirs = args.out or build_samples(tmp)
        urls = [str(p) for d in dirs for p in sorted(d.glob("*.tar"))]
        hf_reader, prepare = datasets_reader(urls, tmp / "hf-cache")
        readers = {"pipeline.reader.open_shards": project_reader(dirs),
                   "webdataset 1.0.2 (+ soundfile)": webdataset_reader(urls),
                   "datasets 5.0.1 (+ soundfile)": hf_reader}
        for reader in readers.values():  # warm-up pass: imports, page cache
            sum(1 for _ in reader())
        print(f"{len(urls)} shards; {args.repeat} passes each; "
              f"datasets prepare (tar -> Arrow, once): {prepare:.2f} s\n")
        print("| reader | samples | audio s | wall s | samples/s | audio s/s |")
        print("|---|---|---|---|---|---|")
        for name, (n, audio, wall) in measure(readers, args.repeat).items():
            print(f"| {name} | {n} | {audio:.1f} | {wall:.2f} | {n / wall:.0f} | "
                  f"{audio / wall:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
