"""Read Hugging Face datasets row by row, without decoding audio and without the network.

:func:`open_hf` accepts
  * a local ``save_to_disk`` folder (a ``DatasetDict`` with ``dataset_dict.json``, or one
    ``Dataset`` with ``state.json``),
  * a local folder of parquet files, in the hub's layouts (``data/<split>-00000-of-00003
    .parquet``, ``<config>/<split>/0000.parquet``, ``<split>.parquet``, ...),
  * a hub id ``owner/name`` (optionally ``owner/name/<subfolder>``) that is already in the
    local Hugging Face hub cache (``HF_HUB_CACHE``, or ``HF_HOME/hub``).  The network is never
    used, whatever ``HF_HUB_OFFLINE`` says: download first with
    ``hf download <id> --repo-type dataset`` (``huggingface-cli download`` on older hubs).

Rows are read straight from Arrow, so an ``Audio`` column arrives as its stored
``{"bytes": ..., "path": ...}`` struct: no torchcodec/FFmpeg is needed (decoding through
``datasets`` needs FFmpeg's shared libraries; so does *encoding* with datasets 5).
:func:`write_audio` saves a row's audio bytes as a file that the build's decoder reads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import UserError

ROW_BATCH = 256
_SHARD = re.compile(r"^(?P<split>.+?)-\d{5}-of-\d{5}")
_MAGIC = ((b"RIFF", "wav"), (b"fLaC", "flac"), (b"OggS", "ogg"), (b"ID3", "mp3"),
          (b".snd", "au"), (b"FORM", "aiff"), (b"\xff\xfb", "mp3"), (b"\xff\xf3", "mp3"),
          (b"\xff\xf2", "mp3"))
_EXTS = {"wav", "flac", "ogg", "mp3", "au", "aiff", "aif", "m4a", "mp4", "opus", "webm"}


class HFSourceError(UserError, ValueError):
    """A Hugging Face dataset that cannot be read; the message says what to do."""


@dataclass(frozen=True)
class HFSplit:
    """One split of a dataset: its name, config, rows and features.

    ``config`` is the config folder inside the dataset (``<config>/<split>/...``), the saved
    dataset's ``config_name``, or else the name of the folder ``hf=`` points at.
    """

    name: str
    config: str | None
    num_rows: int
    columns: tuple[str, ...]
    features: Any  # datasets.Features
    batches: Callable[[], Iterator[Any]]  # yields pyarrow Tables or RecordBatches

    def rows(self) -> Iterator[dict[str, Any]]:
        """The rows as plain dicts (audio columns as ``{"bytes", "path"}``)."""
        for batch in self.batches():
            yield from batch.to_pylist()

    def class_names(self, column: str) -> list[str] | None:
        """Names of a ``ClassLabel`` column (rows hold their index), else ``None``."""
        feature = self.features.get(column) if self.features is not None else None
        return list(feature.names) if hasattr(feature, "names") else None


def hub_cache_dir() -> Path:
    """The hub cache folder as the environment sets it now (``HF_HUB_CACHE``, ``HF_HOME``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_snapshot(spec: str, cache_dir: Path | None = None) -> Path:
    """The local folder of hub dataset ``owner/name[/subfolder]`` from the cache only."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    parts = spec.strip("/").split("/")
    repo_id, sub = "/".join(parts[:2]), parts[2:]
    cache = Path(cache_dir) if cache_dir else hub_cache_dir()
    try:
        path = Path(snapshot_download(repo_id, repo_type="dataset", cache_dir=cache,
                                      local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError) as err:
        raise HFSourceError(
            f"hf={spec}: no local folder of that name and the dataset {repo_id!r} is not in "
            f"the Hugging Face hub cache ({cache}); the build never downloads. Download it "
            f"first (`hf download {repo_id} --repo-type dataset`, with network), or save it "
            "with `datasets.load_dataset(...).save_to_disk(DIR)` and pass hf=DIR. "
            f"({type(err).__name__})") from None
    path = path.joinpath(*sub)
    if not path.is_dir():
        raise HFSourceError(f"hf={spec}: {'/'.join(sub)} is not a folder of {repo_id} "
                            f"(snapshot in {path.parents[len(sub) - 1]})")
    return path


def _disk_splits(folder: Path) -> list[HFSplit]:
    import datasets

    loaded = datasets.load_from_disk(str(folder))
    named = loaded.items() if isinstance(loaded, datasets.DatasetDict) else [
        (str(loaded.split) if loaded.split else "train", loaded)]
    out = []
    for name, ds in named:
        config = ds.info.config_name if ds.info.config_name not in (None, "default") else None
        config = config or folder.name  # a folder named after its config (clean, fr_en)
        out.append(HFSplit(name, config, ds.num_rows, tuple(ds.column_names), ds.features,
                           lambda ds=ds: ds.with_format("arrow").iter(batch_size=ROW_BATCH)))
    return out


def _parquet_place(rel: Path) -> tuple[str | None, str]:
    """``(config, split)`` of a parquet file from its path inside the dataset folder."""
    dirs = [d for d in rel.parent.parts if d != "data"]
    m = _SHARD.match(rel.stem)
    if m:
        split = m.group("split")
    elif rel.stem.isdigit() and dirs:  # <config>/<split>/0000.parquet
        split, dirs = dirs[-1], dirs[:-1]
    elif rel.stem.isdigit():
        split = "train"
    else:
        split = rel.stem
    return ("/".join(dirs) or None), split


def _parquet_splits(folder: Path, files: list[Path]) -> list[HFSplit]:
    import pyarrow.parquet as pq
    from datasets import Features

    groups: dict[tuple[str | None, str], list[Path]] = {}
    for f in files:
        groups.setdefault(_parquet_place(f.relative_to(folder)), []).append(f)
    configs = sorted({c or "" for c, _ in groups})
    if len(configs) > 1:
        raise HFSourceError(
            f"{folder} holds several configs ({', '.join(c or '<top>' for c in configs)}); "
            "pick one by pointing hf= at its folder, e.g. hf=" + str(folder / configs[-1]))
    out = []
    for (config, split), paths in sorted(groups.items(), key=lambda kv: kv[0][1]):
        schema = pq.read_schema(paths[0])
        rows = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)

        def batches(paths: list[Path] = paths) -> Iterator[Any]:
            for p in paths:
                yield from pq.ParquetFile(p).iter_batches(batch_size=ROW_BATCH)

        out.append(HFSplit(split, config or folder.name, rows, tuple(schema.names),
                           Features.from_arrow_schema(schema), batches))
    return out


def open_hf(spec: str | Path, *, cache_dir: Path | None = None) -> tuple[str, list[HFSplit]]:
    """Open ``spec`` (a local dataset folder or a cached hub id); return a display label
    and its splits.  Raises :class:`HFSourceError` saying what is missing."""
    folder = Path(spec).expanduser()
    label = str(spec)
    if not folder.is_dir():
        if str(spec).startswith((".", "/", "~")) or str(spec).count("/") < 1:
            raise HFSourceError(f"hf={spec}: no such folder, and not a hub id 'owner/name'")
        folder = hub_snapshot(str(spec), cache_dir)
    if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
        return label, _disk_splits(folder)
    files = sorted(folder.rglob("*.parquet"))
    if files:
        return label, _parquet_splits(folder, files)
    found = sorted(p.name for p in folder.iterdir())[:12]
    raise HFSourceError(
        f"hf={spec}: {folder} is neither a save_to_disk folder (dataset_dict.json or "
        f"state.json) nor a folder of parquet files; it holds {found}. Save the dataset with "
        "`ds.save_to_disk(DIR)` or `ds.to_parquet(DIR/'train.parquet')` and pass hf=DIR.")


def audio_ext(data: bytes, path: str | None) -> str:
    """A file extension for audio bytes: the stored path's, else sniffed from the header."""
    ext = Path(path).suffix.lower().lstrip(".") if path else ""
    if ext in _EXTS:
        return ext
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    return "bin"  # left to the decoder's FFmpeg fallback


def write_audio(value: Any, dest_stem: Path) -> Path:
    """Save an ``Audio`` cell (``{"bytes", "path"}``) as ``<dest_stem>.<ext>``; return the
    file.  A cell without bytes whose ``path`` is an existing local file is used as is.
    Rerunning rewrites nothing that is already there with the same size."""
    if not isinstance(value, dict):
        raise HFSourceError(f"audio cell is {type(value).__name__}, not {{'bytes', 'path'}}; "
                            "is this an Audio column?")
    data, path = value.get("bytes"), value.get("path")
    if not data:
        if path and Path(path).is_file():
            return Path(path)
        raise HFSourceError(f"audio cell has no bytes and its path {path!r} is not a local file")
    dest = dest_stem.with_name(f"{dest_stem.name}.{audio_ext(data, path)}")
    if dest.is_file() and dest.stat().st_size == len(data):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(dest)
    return dest
