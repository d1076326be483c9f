"""Issue 6: the shards load with plain webdataset, Hugging Face datasets, Ray Data and wids,
each giving the same samples as the project's reader (keys, texts, bitwise PCM)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from recipe_helpers import build_sample

from pipeline.reader import open_shards, sample_positions

Ref = dict[str, dict[str, Any]]  # split -> key -> {"json": ..., "pcm": int16 array}


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("interop")
    build_sample("clotho", tmp / "out", tmp / "raw", shard_size=4)
    return tmp / "out"


@pytest.fixture(autouse=True)
def _hf_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a hub: local files only."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def ref(out_dir: Path) -> Ref:
    """What the project's own reader yields, per split."""
    out: Ref = {}
    for s in open_shards(out_dir, dtype="int16"):
        out.setdefault(s.source["split"], {})[s.key] = {"json": s.json, "pcm": s.waveform}
    return out


def _pcm(flac: bytes) -> np.ndarray:
    pcm, sr = sf.read(io.BytesIO(flac), dtype="int16")
    assert sr == 16000
    return pcm


def _same(ref: Ref, got: Ref) -> None:
    """Same splits, keys, JSON (tasks, texts, durations) and bitwise-identical PCM."""
    assert {s: sorted(k) for s, k in got.items()} == {s: sorted(k) for s, k in ref.items()}
    for split, samples in ref.items():
        for key, want in samples.items():
            assert got[split][key]["json"] == want["json"], (split, key)
            assert got[split][key]["pcm"].dtype == np.int16
            np.testing.assert_array_equal(got[split][key]["pcm"], want["pcm"])


def _collect(rows: Any) -> Ref:
    out: Ref = {}
    for row in rows:
        meta = row["json"] if isinstance(row["json"], dict) else json.loads(row["json"])
        assert row["__key__"] == meta["key"]
        out.setdefault(meta["source"]["split"], {})[row["__key__"]] = {
            "json": meta, "pcm": _pcm(row["flac"])}
    return out


def test_reference_set_is_the_whole_build(out_dir: Path, ref: Ref) -> None:
    index = json.loads((out_dir / "index.json").read_text())
    counts: dict[str, int] = {}
    for shard in index["shardlist"]:
        counts[shard["split"]] = counts.get(shard["split"], 0) + shard["nsamples"]
    assert {s: len(k) for s, k in ref.items()} == counts == {
        "development": 8, "evaluation": 3, "validation": 3}


def test_plain_webdataset(out_dir: Path, ref: Ref) -> None:
    import webdataset as wds

    urls = [str(p) for p in sorted(out_dir.glob("*.tar"))]
    rows = list(wds.WebDataset(urls, shardshuffle=False, nodesplitter=None))
    assert all(set(r) >= {"__key__", "flac", "json"} for r in rows)
    _same(ref, _collect(rows))


def test_hf_datasets_webdataset_builder(out_dir: Path, ref: Ref, tmp_path: Path) -> None:
    import datasets

    # Features declared as in the card's front matter: FLAC stays bytes (no torchcodec).
    features = datasets.Features({"__key__": datasets.Value("string"),
                                  "__url__": datasets.Value("string"),
                                  "flac": datasets.Value("binary"), "json": datasets.Json()})
    files = {s: [str(p) for p in sorted(out_dir.glob(f"clotho-{s}-*.tar"))] for s in ref}
    ds = datasets.load_dataset("webdataset", data_files=files, features=features,
                               cache_dir=str(tmp_path / "hf"))
    got: Ref = {}
    for split in ds:
        got.update(_collect(ds[split]))
    _same(ref, got)


def _hf_audio_16k(split_ds: Any) -> dict[str, np.ndarray]:
    """Audio decoded at 16 kHz: through datasets' Audio feature where torchcodec and FFmpeg
    load, else (FFmpeg absent, as on the project's machines) FLAC bytes via soundfile."""
    try:
        import torchcodec.decoders  # noqa: F401 - needs FFmpeg's shared libraries
    except (ImportError, RuntimeError, OSError):
        if os.environ.get("CI"):  # .ci/run installs FFmpeg's libraries: test the real path
            raise
        return {row["__key__"]: _pcm(row["flac"]) for row in split_ds}
    import datasets

    decoded = split_ds.cast_column("flac", datasets.Audio(sampling_rate=16000))
    out = {}
    for row in decoded:
        samples = row["flac"].get_all_samples()
        assert samples.sample_rate == 16000
        out[row["__key__"]] = np.round(samples.data.numpy()[0] * 32768).astype(np.int16)
    return out


def test_output_dir_is_a_hf_dataset_repo(out_dir: Path, ref: Ref, tmp_path: Path) -> None:
    import datasets

    ds = datasets.load_dataset(str(out_dir), cache_dir=str(tmp_path / "hf"))
    assert sorted(ds) == sorted(ref)
    got: Ref = {}
    for split in ds:
        assert ds[split].features["flac"] == datasets.Value("binary")
        got.update(_collect(ds[split]))
        for key, pcm in _hf_audio_16k(ds[split]).items():
            np.testing.assert_array_equal(pcm, ref[split][key]["pcm"])
    _same(ref, got)


def test_ray_read_webdataset(out_dir: Path, ref: Ref) -> None:
    ray = pytest.importorskip("ray")
    from ray.data import DataContext

    started = not ray.is_initialized()  # leave a Ray started by another test alone
    if started:
        ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        DataContext.get_current().enable_progress_bars = False
        urls = [str(p) for p in sorted(out_dir.glob("*.tar"))]
        rows = ray.data.read_webdataset(urls, decoder=None).take_all()
    finally:
        if started:
            ray.shutdown()
    assert all(isinstance(r["flac"], bytes) for r in rows)
    _same(ref, _collect(rows))


def test_wids_random_access_by_key(out_dir: Path, ref: Ref, tmp_path: Path) -> None:
    import wids

    index = out_dir / "index.json"
    ds = wids.ShardListDataset(str(index), cache_dir=str(tmp_path / "wids"),
                               transformations=[])
    positions = sample_positions(index)
    assert len(ds) == len(positions) == sum(len(k) for k in ref.values())
    got: Ref = {}
    for (split, key) in reversed(sorted(positions)):  # any order: random access
        row = ds[positions[(split, key)]]
        assert row["__key__"] == key and row["__shard__"].endswith(".tar")
        meta = json.loads(row[".json"].read())
        got.setdefault(split, {})[key] = {"json": meta, "pcm": _pcm(row[".flac"].read())}
    _same(ref, got)


def test_card_pictures_and_source_table(out_dir: Path, ref: Ref, tmp_path: Path) -> None:
    from dataset_recipes.clotho import RECIPE
    from pipeline.card_plots import card_section, gather

    readme = (out_dir / "README.md").read_text()
    shards = sorted(out_dir.glob("*.tar"))
    for name in ("duration_histogram.png", "hours_per_task_language.png"):
        assert f"](images/{name})" in readme
        assert (out_dir / "images" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| aac | unknown | 14 | 0.0192 |" in readme
    assert (f"| Clotho v2.1 | 14 | 0.0192 | {RECIPE.info.licence} | `drossos2020clotho` |"
            in readme)
    stats = gather(shards)
    assert sorted(stats.durations) == sorted(
        s["json"]["duration"] for split in ref.values() for s in split.values())
    # same shards, same picture bytes (no timestamps in the PNGs)
    card_section(tmp_path, shards, {"clotho": RECIPE.info})
    for name in ("duration_histogram.png", "hours_per_task_language.png"):
        assert (tmp_path / "images" / name).read_bytes() == (
            out_dir / "images" / name).read_bytes()
