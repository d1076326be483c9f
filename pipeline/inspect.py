"""Print a few samples of built shards: key, split, duration, language, prompts, targets.

``python -m pipeline.inspect <output dir | index.json | shard.tar> [-n 3] [--task asr]``
reads the shards with :func:`pipeline.reader.open_shards` (audio decoded, so a sample that
prints is a sample that loads) and shows what a model would be trained on.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from pipeline.reader import FormatError, Sample, open_shards

#: Longest target text shown in full; longer ones are cut with an ellipsis.
MAX_TARGET_CHARS = 300


def _short(text: str, limit: int = MAX_TARGET_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(sample: Sample) -> str:
    """A few lines describing one sample, as :func:`main` prints them."""
    peak = float(abs(sample.waveform).max()) if sample.waveform is not None and len(
        sample.waveform) else 0.0
    src = sample.source
    lines = [
        f"== {sample.key}  ({Path(sample.shard).name}, split {src.get('split')})",
        f"   duration {sample.duration:.2f} s, language {sample.language}, "
        f"{sample.sample_rate} Hz, peak {peak:.3f}, source {src.get('file')}",
    ]
    if "truncated_from" in sample.json:
        lines.append(f"   truncated from {sample.json['truncated_from']:.2f} s")
    for entry in sample.tasks:
        lines.append(f"   [{entry['task']}] prompt: {entry['prompt']}")
        lines.append(f"   {' ' * (len(entry['task']) + 2)} target: {_short(entry['target'])}")
    if sample.words:
        shown = " ".join(f"{w['word']}({w['start']:.2f}-{w['end']:.2f})"
                         for w in sample.words[:8])
        more = f" … ({len(sample.words)} words)" if len(sample.words) > 8 else ""
        lines.append(f"   words: {shown}{more}")
    return "\n".join(lines)


def inspect(source: str | Path, count: int = 3, tasks: Iterable[str] | None = None,
            splits: Iterable[str] | None = None) -> list[str]:
    """Descriptions of the first ``count`` samples of ``source`` (optionally filtered)."""
    out = []
    for sample in open_shards(source, tasks=tasks, splits=splits):
        out.append(describe(sample))
        if len(out) >= count:
            break
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.inspect", description=__doc__)
    parser.add_argument("source", type=Path, help="output directory, index.json or .tar shard")
    parser.add_argument("-n", "--count", type=int, default=3, help="samples to show (3)")
    parser.add_argument("--task", action="append", help="only this task (repeatable)")
    parser.add_argument("--split", action="append", help="only this split (repeatable)")
    args = parser.parse_args(argv)
    try:
        shown = inspect(args.source, args.count, args.task, args.split)
    except (FormatError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not shown:
        print(f"no samples in {args.source} match the filters", file=sys.stderr)
        return 1
    print("\n".join(shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
