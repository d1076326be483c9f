"""The mixture file: which built shard sets a multitask run trains on, with task weights.

``mixture.json`` sits in the root of several build directories (``data/shards``)::

    {"format_version": 1,
     "sets": [{"name": "clotho", "index": "clotho/index.json",
               "splits": {"development": {"role": "train", "samples": 8, "hours": 0.01,
                                          "tasks": {"aac": {"entries": 40, "hours": 0.01}}}}}],
     "task_weights": {"aac": 0.41, "asr": 0.59}}

Paths are relative to the mixture file.  Default task weights follow temperature
sampling over the training hours of each task, ``w ∝ hours ** 0.5``, so that small tasks
are seen more often than their share of audio while large ones still dominate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.errors import UserError
from pipeline.record import FORMAT_VERSION

TEMPERATURE_EXPONENT = 0.5


class MixtureError(UserError, ValueError):
    """A mixture file that cannot be used; the message names the file and the problem."""


class MixtureNotFound(MixtureError, FileNotFoundError):
    """No mixture file where one was expected; the message says how to build one."""


def describe_set(build_dir: Path, root: Path) -> dict[str, Any]:
    """The mixture entry of one finished build directory (read from its report)."""
    report = json.loads((build_dir / "report.json").read_text())
    splits = {
        name: {"role": s["role"], "samples": s["samples"], "hours": s["hours"],
               "tasks": {t: {"entries": v["entries"], "hours": v["hours"]}
                         for t, v in s["tasks"].items()}}
        for name, s in report["splits"].items()
    }
    return {"name": report["recipe"], "index": str((build_dir / "index.json").relative_to(root)),
            "splits": splits}


def task_weights(sets: list[dict[str, Any]]) -> dict[str, float]:
    """Default sampling weight per task from training hours (``hours ** 0.5``, normalized)."""
    hours: dict[str, float] = {}
    for s in sets:
        for split in s["splits"].values():
            if split["role"] != "train":
                continue
            for task, t in split["tasks"].items():
                hours[task] = hours.get(task, 0.0) + t["hours"]
    raw = {t: h**TEMPERATURE_EXPONENT for t, h in sorted(hours.items()) if h > 0}
    total = sum(raw.values())
    return {t: round(v / total, 6) for t, v in raw.items()} if total else {}


def write_mixture(root: Path) -> Path:
    """Write ``root/mixture.json`` listing every finished build directly under ``root``."""
    root = Path(root)
    dirs = sorted(p.parent for p in root.glob("*/index.json")
                  if (p.parent / "report.json").is_file())
    if not dirs:
        raise MixtureError(f"{root} holds no finished build (no */index.json); build first")
    sets = [describe_set(d, root) for d in dirs]
    mixture = {"format_version": FORMAT_VERSION, "sets": sets, "task_weights": task_weights(sets)}
    path = root / "mixture.json"
    tmp = path.with_name("mixture.json.tmp")
    tmp.write_text(json.dumps(mixture, indent=1) + "\n")
    tmp.replace(path)
    return path


def load_mixture(path: Path) -> dict[str, Any]:
    """Read and check a mixture file; index paths come back absolute."""
    path = Path(path)
    try:
        mixture = json.loads(path.read_text())
    except FileNotFoundError:
        raise MixtureNotFound(f"{path} not found; run `make demo` or "
                           "`make build-dataset RECIPE=all` to build shards first") from None
    if mixture.get("format_version", 0) > FORMAT_VERSION:
        raise MixtureError(f"{path} has format_version {mixture['format_version']}, newer than "
                           f"this code understands ({FORMAT_VERSION}); update the project")
    for s in mixture.get("sets", []):
        index = path.parent / s["index"]
        if not index.is_file():
            raise MixtureError(f"{path}: set {s['name']!r} points to missing {index}")
        s["index"] = str(index.resolve())
    return mixture
