"""Reread a finished output directory and check it against ``FORMAT.md`` and its index.

``python -m pipeline.verify <dir>`` (or ``make verify OUT=<dir>``) checks, for every shard
listed in ``index.json``: that it exists with the listed size and md5, that every member is
safe and known, that members pair up (``flac`` + ``json``), that each JSON matches the
format and each FLAC decodes to 16 kHz mono with the JSON's duration, that the sample count
matches the index, that keys are unique within a split, and that no unlisted shard lies
beside them; then that ``report.json`` counts the same samples.  It prints a summary and
exits non-zero on any problem, each problem naming the shard and the key.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.format import (
    AUDIO_EXT,
    INDEX_NAME,
    META_EXT,
    FormatError,
    ShardRef,
    count_problem,
    decode_flac,
    iter_raw,
    load_index,
    parse_meta,
)
from pipeline.shards import file_md5

#: Largest accepted gap between the JSON ``duration`` and the decoded length (seconds).
DURATION_TOLERANCE = 1e-3


@dataclass
class SplitSummary:
    """What verification counted in one split."""

    shards: int = 0
    samples: int = 0
    seconds: float = 0.0
    tasks: Counter[str] = field(default_factory=Counter)
    languages: Counter[str] = field(default_factory=Counter)


@dataclass
class VerifyResult:
    """Problems found (empty when the directory is valid) and counts per split."""

    out_dir: Path
    problems: list[str] = field(default_factory=list)
    splits: dict[str, SplitSummary] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


def _check_file(ref: ShardRef, problems: list[str]) -> bool:
    """Existence, size and md5 against the index; False when the shard cannot be read."""
    name = ref.path.name
    if not ref.path.is_file():
        problems.append(f"{name}: missing (listed in {INDEX_NAME}); rebuild the output")
        return False
    if ref.md5sum is None or ref.filesize is None:
        problems.append(f"{name}: md5 and size not in {INDEX_NAME}, so not checked")
    size = ref.path.stat().st_size
    if ref.filesize is not None and size != ref.filesize:
        problems.append(f"{name}: {size} bytes, {INDEX_NAME} says {ref.filesize}")
    if ref.md5sum is not None:
        got = file_md5(ref.path)
        if got != ref.md5sum:
            problems.append(f"{name}: md5 {got} differs from {INDEX_NAME} ({ref.md5sum}); "
                            "the shard was modified or damaged")
    return True


def _check_sample(key: str, members: dict[str, bytes], ref: ShardRef, summary: SplitSummary,
                  problems: list[str]) -> None:
    name = ref.path.name
    try:
        obj = parse_meta(members[META_EXT], key, name)
    except FormatError as err:
        problems.append(f"{err}")
        return
    try:
        wav = decode_flac(members[AUDIO_EXT], key, name, "int16")
    except FormatError as err:
        problems.append(f"{err}")
        return
    seconds = len(wav) / obj["sample_rate"]
    if abs(seconds - obj["duration"]) > DURATION_TOLERANCE:
        problems.append(f"{name}: {key}: audio lasts {seconds:.4f} s, JSON duration says "
                        f"{obj['duration']}")
    if ref.split is not None and obj["source"]["split"] != ref.split:
        problems.append(f"{name}: {key}: JSON split {obj['source']['split']!r}, "
                        f"{INDEX_NAME} says {ref.split!r}")
    summary.samples += 1
    summary.seconds += seconds
    summary.languages[obj["language"]] += 1
    summary.tasks.update(e["task"] for e in obj["tasks"])


def _check_shard(ref: ShardRef, result: VerifyResult, keys: dict[str, dict[str, str]]) -> None:
    problems, name = result.problems, ref.path.name
    split = ref.split or "?"
    summary = result.splits.setdefault(split, SplitSummary())
    summary.shards += 1
    if not _check_file(ref, problems):
        return
    count = 0
    seen = keys.setdefault(split, {})
    try:
        for key, members in iter_raw(ref.path, name=name):
            count += 1
            if key in seen:
                problems.append(f"{name}: {key}: key also in {seen[key]} (split {split})")
            seen[key] = name
            _check_sample(key, members, ref, summary, problems)
    except FormatError as err:
        problems.append(f"{err}")
    problem = count_problem(name, count, ref.nsamples)
    if problem:
        problems.append(problem)


def _check_report(result: VerifyResult) -> None:
    path = result.out_dir / "report.json"
    if not path.is_file():
        result.problems.append(f"{path.name}: missing; rerun the build to write it")
        return
    try:
        splits = json.loads(path.read_text(encoding="utf-8")).get("splits", {})
    except (json.JSONDecodeError, AttributeError) as err:
        result.problems.append(f"{path.name}: unreadable ({err})")
        return
    for name, summary in result.splits.items():
        want = splits.get(name, {}).get("samples")
        if want != summary.samples:
            result.problems.append(f"{path.name}: split {name} counts {want} samples, "
                                   f"the shards hold {summary.samples} readable ones")


def verify(out_dir: str | Path) -> VerifyResult:
    """Check every shard of ``out_dir`` against its ``index.json`` and the format."""
    out = Path(out_dir)
    result = VerifyResult(out)
    if not (out / INDEX_NAME).is_file():
        result.problems.append(f"{out / INDEX_NAME}: missing; the build did not finish "
                               "(rerun make build-dataset) or this is not an output directory")
        return result
    try:
        refs = load_index(out / INDEX_NAME).shards
    except FormatError as err:
        result.problems.append(str(err))
        return result
    keys: dict[str, dict[str, str]] = {}
    for ref in refs:
        _check_shard(ref, result, keys)
    listed = {ref.path.name for ref in refs}
    for path in sorted(out.glob("*.tar")):
        if path.name not in listed:
            result.problems.append(f"{path.name}: not listed in {INDEX_NAME}; "
                                   "remove it or rebuild")
    _check_report(result)
    return result


def format_summary(result: VerifyResult) -> str:
    """Human-readable summary: one line per split, then the problems or OK."""
    lines = [f"verify {result.out_dir}"]
    for name, s in sorted(result.splits.items()):
        tasks = ", ".join(f"{t} {n}" for t, n in sorted(s.tasks.items()))
        langs = ", ".join(f"{lang} {n}" for lang, n in sorted(s.languages.items()))
        lines.append(f"  {name}: {s.shards} shards, {s.samples} samples, "
                     f"{s.seconds / 3600:.4f} h; tasks: {tasks or '-'}; languages: {langs or '-'}")
    if result.ok:
        lines.append("OK: every shard matches index.json and FORMAT.md")
    else:
        lines.append(f"FAILED: {len(result.problems)} problem(s)")
        lines += [f"  {p}" for p in result.problems]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.verify <dir>``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.verify", description=__doc__)
    parser.add_argument("out_dir", type=Path, help="output directory holding index.json")
    args = parser.parse_args(argv)
    result = verify(args.out_dir)
    print(format_summary(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
