"""The build job end to end: shards readable by tarfile and webdataset, exact prompts,
16 kHz mono FLAC, index/report/card, byte-identical rebuilds, resume after a crash."""

import dataclasses
import errno
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import soundfile as sf
import webdataset as wds
from recipe_helpers import build_sample

from dataset_recipes import RECIPES
from pipeline import shards as shards_mod
from pipeline import tags
from pipeline.build import run_build
from pipeline.record import Reject
from pipeline.shards import file_md5
from pipeline.stages import PARTS_DIR, BuildOptions

ROOT = Path(__file__).parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
ASR_EN = "<|startoftranscript|><|en|><|transcribe|><|en|><|notimestamps|><|wo_itn|>"
AAC = "<|startofanalysis|><|unknown|><|caption|><|en|><|notimestamps|><|caption_clotho|>"


def _tar_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}


@pytest.fixture(scope="module")
def ray_build(tmp_path_factory) -> Path:
    """`python -m dataset_recipes.build recipe=librispeech,clotho source=sample` on local Ray."""
    root = tmp_path_factory.mktemp("ray")
    cmd = [sys.executable, "-m", "dataset_recipes.build", "recipe=[librispeech,clotho]",
           "source=sample", f"out={root}", "align.enabled=false", "shard_size=8",
           "progress=false", "workers=2", "runner=ray"]
    env = {**os.environ, "RAY_ADDRESS": ""}
    proc = subprocess.run(cmd, cwd=tmp_path_factory.mktemp("cwd"), env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "librispeech: 24 samples" in proc.stdout and "clotho: 14 samples" in proc.stdout
    # Ray's own INFO lines (and its core worker's actor warnings) stay out of the output
    assert "INFO" not in proc.stderr and "core_worker" not in proc.stderr, proc.stderr
    return root


def test_shards_read_back_with_tarfile_and_webdataset(ray_build):
    out = ray_build / "librispeech"
    names = sorted(p.name for p in out.glob("*.tar"))
    assert names == ["librispeech-dev-clean-000000.tar"] + [
        f"librispeech-train-clean-100-{i:06d}.tar" for i in range(3)]
    keys = []
    for shard in names:
        with tarfile.open(out / shard) as tar:
            members = tar.getnames()
        assert all(m.count(".") == 1 for m in members)  # key has no dots
        assert members[0::2] == [m.replace(".json", ".flac") for m in members[1::2]]
        for sample in wds.WebDataset(str(out / shard), shardshuffle=False, empty_check=False):
            assert set(sample) >= {"__key__", "flac", "json"}
            meta = json.loads(sample["json"])
            pcm, sr = sf.read(io.BytesIO(sample["flac"]), dtype="int16")
            assert sr == 16000 and pcm.ndim == 1
            assert abs(len(pcm) / sr - meta["duration"]) < 1e-3
            assert meta["tasks"][0]["prompt"] == ASR_EN and meta["language"] == "en"
            assert meta["format_version"] == 1 and meta["key"] == sample["__key__"]
            keys.append(sample["__key__"])
    assert len(keys) == len(set(keys)) == 24
    with tarfile.open(out / "librispeech-dev-clean-000000.tar") as tar:
        meta = json.load(tar.extractfile("1272-128104-0000.json"))
    assert meta["tasks"] == [{"task": "asr", "prompt": ASR_EN, "target":  # <|wo_itn|> style
                              "mister quilter is the apostle of the middle classes and we are "
                              "glad to welcome his gospel"}]


def test_index_report_card_and_mixture(ray_build):
    out = ray_build / "clotho"
    index = json.loads((out / "index.json").read_text())
    assert index["__kind__"] == "wids-shard-index-v1"
    for entry in index["shardlist"]:
        path = out / entry["url"]
        assert entry["filesize"] == path.stat().st_size and entry["md5sum"] == file_md5(path)
        with tarfile.open(path) as tar:
            assert entry["nsamples"] == len(tar.getnames()) // 2
    report = json.loads((out / "report.json").read_text())
    assert report["samples"] == 14 and report["rejects"] == 0
    dev = report["splits"]["development"]
    assert dev["role"] == "train" and dev["samples"] == 8
    assert dev["tasks"]["aac"]["entries"] == 40 and dev["tasks"]["aac"]["prompts"] == [AAC]
    assert dev["tasks"]["aac"]["hours"] == dev["hours"]  # 5 captions, the audio counts once
    assert report["wall_seconds"] > 0 and report["audio_seconds_per_second"] > 0
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: other\n") and "- split: development" in card
    escaped = AAC.replace("|", "\\|")  # table cells escape "|" (GFM)
    assert f"| aac | 70 | 0.0192 | `{escaped}` |" in card and "drossos2020clotho" in card
    assert (out / "rejects.jsonl").read_text() == ""
    mixture = json.loads((ray_build / "mixture.json").read_text())
    assert [s["name"] for s in mixture["sets"]] == ["clotho", "librispeech"]
    assert set(mixture["task_weights"]) == {"aac", "asr"}
    assert abs(sum(mixture["task_weights"].values()) - 1) < 1e-5


def test_ray_and_local_builds_are_byte_identical(ray_build, tmp_path):
    build_sample("clotho", tmp_path / "a", tmp_path / "raw", shard_size=8)
    build_sample("clotho", tmp_path / "b", tmp_path / "raw2", shard_size=8)
    a, b, ray = (_tar_bytes(p) for p in (tmp_path / "a", tmp_path / "b", ray_build / "clotho"))
    assert a == b == ray and len(a) == 3
    assert (tmp_path / "a" / "index.json").read_bytes() == (
        ray_build / "clotho" / "index.json").read_bytes()


def test_crash_midway_then_rerun_gives_the_same_shards(tmp_path, monkeypatch):
    clean = tmp_path / "clean"
    build_sample("librispeech", clean, tmp_path / "raw", shard_size=4)
    out = tmp_path / "crashed"
    real_replace = os.replace
    calls = {"n": 0}

    def dying_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 5:  # tar, part, tar, part, then killed writing the third tar
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(shards_mod.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        build_sample("librispeech", out, tmp_path / "raw", shard_size=4)
    monkeypatch.setattr(shards_mod.os, "replace", real_replace)
    assert len(list(out.glob("*.tar"))) == 2 and len(list(out.glob("*.tar.tmp"))) == 1
    assert not (out / "index.json").exists()  # a half build never looks complete
    report = build_sample("librispeech", out, tmp_path / "raw", shard_size=4)
    assert report["samples"] == 24
    assert _tar_bytes(out) == _tar_bytes(clean) and not list(out.glob("*.tmp"))
    assert (out / "index.json").read_bytes() == (clean / "index.json").read_bytes()


def test_rerun_skips_finished_shards_and_drops_stale_ones(tmp_path):
    out = tmp_path / "out"
    build_sample("clotho", out, tmp_path / "raw", shard_size=2)
    assert len(list(out.glob("*.tar"))) == 8
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    build_sample("clotho", out, tmp_path / "raw", shard_size=2)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")} == mtimes
    build_sample("clotho", out, tmp_path / "raw", shard_size=8)
    assert sorted(p.name for p in out.glob("*.tar")) == [
        "clotho-development-000000.tar", "clotho-evaluation-000000.tar",
        "clotho-validation-000000.tar"]


def test_bad_items_are_recorded_and_never_fatal(tmp_path):
    recipe = RECIPES["librispeech"]
    report = run_build(recipe, recipe.locate(FIXTURES / "librispeech"), tmp_path,
                       BuildOptions(), runner="local", progress=False)
    assert report["samples"] == 2 and report["rejects"] == 4
    assert report["splits"]["dev-clean"]["rejects"] == {"parse": 3, "audio": 1}
    bad = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    audio_reject = next(r for r in bad if r["stage"] == "audio")
    assert audio_reject["source"] == "dev-clean/1272/128104/1272-128104-0002.flac"
    assert audio_reject["reason"].startswith("corrupt FLAC")


def test_every_stored_prompt_is_released(ray_build):
    for tar_path in ray_build.glob("*/*.tar"):
        for sample in wds.WebDataset(str(tar_path), shardshuffle=False, empty_check=False):
            for entry in json.loads(sample["json"])["tasks"]:
                tags.check_tokens(entry["prompt"] + entry["target"])
                assert tags.parse(entry["prompt"] + entry["target"]).target == entry["target"]


def test_cli_errors_name_the_layout_and_the_fix(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dataset_recipes.build", "recipe=clotho", f"raw={tmp_path}",
         f"out={tmp_path / 'o'}", "runner=local"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "holds no Clotho v2.1 corpus" in proc.stderr
    assert "zenodo.org/records/4783391" in proc.stderr and "SOURCE=sample" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "dataset_recipes.build", "recipe=nope"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown recipe 'nope'; choose one of" in proc.stderr


@pytest.fixture
def ray_head(tmp_path):
    """A real Ray cluster head, `ray start --head --block` on a free port, with token
    authentication on (a token in its HOME, as `ray get-auth-token --generate` writes).
    Yields (address, env); stopping it stops only its own processes."""
    import signal
    import socket
    import tempfile
    import time

    ray_cli = str(Path(sys.executable).parent / "ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tmp_path / "home"
    home.mkdir()
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env |= {"HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([ray_cli, "get-auth-token", "--generate"], env=env, check=True,
                   capture_output=True, timeout=60)
    assert (home / ".ray" / "auth_token").is_file()
    log = tmp_path / "head.log"
    with open(log, "w") as log_file:
        head = subprocess.Popen(
            [ray_cli, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
             "--include-dashboard=false", f"--temp-dir={temp_dir}"],
            env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in log.read_text():
            assert head.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        assert "Token authentication is enabled" in log.read_text()
        yield f"127.0.0.1:{port}", env
    finally:
        head.send_signal(signal.SIGINT)  # `ray start --block` then stops its processes
        try:
            head.wait(timeout=30)
        finally:
            try:
                os.killpg(head.pid, signal.SIGKILL)  # anything of its session left over
            except ProcessLookupError:
                pass
            head.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_build_on_a_ray_cluster_started_with_ray_start(ray_head, ray_build, tmp_path):
    """RAY_ADDRESS=127.0.0.1:<port> of a `ray start --head` cluster: the workers get the
    project through a runtime_env working_dir, run in another folder, and write the same
    bytes as local Ray; the cluster's auth token is sent although RAY_AUTH_MODE is unset."""
    address, env = ray_head
    cmd = [sys.executable, "-m", "dataset_recipes.build", "recipe=clotho", "source=sample",
           "out=shards", "align.enabled=false", "shard_size=8", "progress=false", "workers=1"]
    proc = subprocess.run(cmd, cwd=tmp_path, env={**env, "RAY_ADDRESS": address},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _tar_bytes(tmp_path / "shards") == _tar_bytes(ray_build / "clotho")
    assert json.loads((tmp_path / "shards" / "index.json").read_text()) == json.loads(
        (ray_build / "clotho" / "index.json").read_text())
    # without the token the cluster refuses the driver, and the error says what to do
    cmd[5] = "out=other"  # (in "shards" every shard is done: Ray would not be started)
    proc = subprocess.run(cmd, cwd=tmp_path, env={**env, "RAY_ADDRESS": address,
                                                  "RAY_AUTH_MODE": "disabled",
                                                  "RAY_gcs_server_port_wait_time_s": "2"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"cannot join the Ray cluster at RAY_ADDRESS={address}" in proc.stderr
    assert "auth_token" in proc.stderr


def test_new_stages_version_rewrites_every_shard(tmp_path, monkeypatch):
    import pipeline.build as build_mod

    out = tmp_path / "out"
    build_sample("clotho", out, tmp_path / "raw", shard_size=8)
    parts = {p.name: json.loads(p.read_text())["digest"] for p in (out / ".build").glob("*.json")}
    monkeypatch.setattr(build_mod, "STAGES_VERSION", build_mod.STAGES_VERSION + 1)
    build_sample("clotho", out, tmp_path / "raw", shard_size=8)
    again = {p.name: json.loads(p.read_text())["digest"] for p in (out / ".build").glob("*.json")}
    assert parts.keys() == again.keys() and all(parts[k] != again[k] for k in parts)


def test_several_recipes_read_one_folder_each_under_raw(tmp_path):
    for name in ("clotho", "librispeech"):
        RECIPES[name].make_sample(tmp_path / "raw" / name)
    cmd = [sys.executable, "-m", "dataset_recipes.build", "recipe=[clotho,librispeech]",
           f"raw={tmp_path / 'raw'}", f"out={tmp_path / 'out'}", "runner=local",
           "align.enabled=false", "progress=false"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "clotho: 14 samples" in proc.stdout and "librispeech: 24 samples" in proc.stdout
    assert (tmp_path / "out" / "mixture.json").is_file()


def test_a_relative_corpus_path_reaches_workers_as_an_absolute_one(tmp_path, monkeypatch):
    """Ray workers on a cluster run in their own folder: records must name absolute files
    even when the caller passes a relative corpus path."""
    recipe = RECIPES["clotho"]
    recipe.make_sample(tmp_path / "raw")
    monkeypatch.chdir(tmp_path)
    seen = []
    real_prepare = recipe.prepare

    def prepare(corpus_dir):
        for item in real_prepare(corpus_dir):
            if not isinstance(item, Reject):
                seen.append(item.audio)
            yield item

    recipe = dataclasses.replace(recipe, prepare=prepare)
    report = run_build(recipe, recipe.locate(Path("raw")), Path("out"), BuildOptions(),
                       runner="local", progress=False)
    assert report["samples"] == 14 and len(seen) == 14
    assert all(Path(a).is_absolute() and Path(a).is_file() for a in seen)


@pytest.mark.parametrize(("code", "fails"), [(errno.EINVAL, False), (errno.ENOTSUP, False),
                                             (errno.EIO, True)])
def test_sync_tolerates_file_systems_that_cannot_sync_but_not_io_errors(tmp_path, monkeypatch,
                                                                        code, fails):
    (tmp_path / "a.tar").write_bytes(b"x")

    def fsync(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(shards_mod.os, "fsync", fsync)
    if fails:
        with pytest.raises(OSError):
            shards_mod.sync_files([tmp_path / "a.tar"])
    else:
        shards_mod.sync_files([tmp_path / "a.tar"])


def test_every_new_shard_is_synced_before_the_index_is_written(tmp_path, monkeypatch):
    """Shards and part files are fsynced (in a thread, as they come back), then their two
    folders, all before index.json exists: a power cut never leaves an index naming a
    shard that is not on the disk."""
    recipe = RECIPES["esc50"]
    corpus = recipe.locate(recipe.make_sample(tmp_path / "raw"))
    out = tmp_path / "out"
    synced: list[tuple[Path, bool]] = []  # (what, whether index.json existed then)
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append((Path(os.readlink(f"/proc/self/fd/{fd}")), (out / "index.json").exists()))
        real_fsync(fd)

    monkeypatch.setattr(shards_mod.os, "fsync", fsync)
    report = run_build(recipe, corpus, out, BuildOptions(shard_size=4), runner="local",
                       progress=False, pictures="off")
    assert report["samples"] == 25
    tars = sorted(out.glob("*.tar"))
    parts = sorted((out / PARTS_DIR).glob("*.json"))
    assert len(tars) == len(parts) == 10
    files = [path for path, _ in synced]
    assert sorted(files[:-2]) == sorted(tars + parts)  # each once
    assert sorted(files[-2:]) == [out, out / PARTS_DIR]  # then the folders (the renames)
    assert not any(index_there for _, index_there in synced)
    assert (out / "index.json").exists()

    synced.clear()  # a rebuild writes nothing new, so it syncs nothing
    run_build(recipe, corpus, out, BuildOptions(shard_size=4), runner="local",
              progress=False, pictures="off")
    assert synced == []
