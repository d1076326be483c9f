"""Issue 6: `python -m pipeline.verify` (make verify) passes on a fresh build and fails,
naming the shard and key, after a byte flip, a deleted or extra shard, or a stale report."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from recipe_helpers import build_sample

from pipeline.verify import format_summary, main, verify

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("verify")
    build_sample("clotho", tmp / "out", tmp / "raw", shard_size=4)
    return tmp / "out"


@pytest.fixture
def out(built: Path, tmp_path: Path) -> Path:
    """A private copy of the build, free to damage."""
    return Path(shutil.copytree(built, tmp_path / "out"))


def _md5(out: Path, shard: str) -> str:
    index = json.loads((out / "index.json").read_text())
    return next(s["md5sum"] for s in index["shardlist"] if s["url"] == shard)


def _member_offset(shard: Path, member: str) -> int:
    with tarfile.open(shard) as tar:
        return tar.getmember(member).offset_data


def test_fresh_build_passes(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(built)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"verify {built}",
        "  development: 2 shards, 8 samples, 0.0108 h; tasks: aac 40; languages: unknown 8",
        "  evaluation: 1 shards, 3 samples, 0.0042 h; tasks: aac 15; languages: unknown 3",
        "  validation: 1 shards, 3 samples, 0.0042 h; tasks: aac 15; languages: unknown 3",
        "OK: every shard matches index.json and FORMAT.md",
    ]


def test_flipped_json_byte_names_shard_and_key(out: Path) -> None:
    shard = out / "clotho-development-000001.tar"
    data = bytearray(shard.read_bytes())
    at = _member_offset(shard, "rising_tone.json")
    assert data[at : at + 1] == b"{"
    data[at] ^= 0x01  # '{' -> 'z': no longer JSON
    shard.write_bytes(bytes(data))
    result = verify(out)
    assert not result.ok
    assert result.problems[0].startswith(
        f"clotho-development-000001.tar: md5 {hashlib.md5(data).hexdigest()} "
        f"differs from index.json ({_md5(out, shard.name)})")
    assert result.problems[1].startswith(
        "clotho-development-000001.tar: rising_tone.json is not UTF-8 JSON")
    assert result.problems[2] == ("report.json: split development counts 8 samples, "
                                  "the shards hold 7 readable ones")
    assert len(result.problems) == 3


def test_flipped_audio_byte_fails_on_md5(out: Path) -> None:
    shard = out / "clotho-validation-000000.tar"
    data = bytearray(shard.read_bytes())
    data[_member_offset(shard, "metronome.flac") + 5000] ^= 0x40
    shard.write_bytes(bytes(data))
    problems = verify(out).problems
    assert problems[0].startswith("clotho-validation-000000.tar: md5 ")
    assert problems[1].startswith("clotho-validation-000000.tar: metronome.flac does not decode")
    assert problems[2:] == ["report.json: split validation counts 3 samples, "
                            "the shards hold 2 readable ones"]


def test_deleted_shard_fails(out: Path) -> None:
    (out / "clotho-evaluation-000000.tar").unlink()
    assert verify(out).problems == [
        "clotho-evaluation-000000.tar: missing (listed in index.json); rebuild the output",
        "report.json: split evaluation counts 3 samples, the shards hold 0 readable ones",
    ]


def test_unlisted_shard_and_stale_count_fail(out: Path) -> None:
    shutil.copy(out / "clotho-evaluation-000000.tar", out / "clotho-evaluation-000009.tar")
    index = json.loads((out / "index.json").read_text())
    index["shardlist"][0]["nsamples"] = 5
    (out / "index.json").write_text(json.dumps(index))
    assert verify(out).problems == [
        "clotho-development-000000.tar: holds 4 samples, index.json says 5; the shard is "
        "damaged or stale, rebuild it",
        "clotho-evaluation-000009.tar: not listed in index.json; remove it or rebuild",
    ]


def test_missing_index_fails(out: Path) -> None:
    (out / "index.json").unlink()
    result = verify(out)
    assert len(result.problems) == 1 and "index.json: missing; the build did not finish" in (
        result.problems[0])
    assert "FAILED: 1 problem(s)" in format_summary(result)


def test_command_line_exit_status(built: Path, out: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "pipeline.verify", str(built)], cwd=ROOT,
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and ok.stdout.rstrip().endswith("OK: every shard matches "
                                                              "index.json and FORMAT.md")
    (out / "clotho-validation-000000.tar").unlink()
    bad = subprocess.run([sys.executable, "-m", "pipeline.verify", str(out)], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "  clotho-validation-000000.tar: missing (listed in index.json)" in bad.stdout


def test_make_verify_target_runs_the_module() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # run as a top-level make even under `make test` (no inherited flags, no dir messages)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(["make", "--no-print-directory", "-n", "verify", "OUT=/some/out"],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == ".venv/bin/python -m pipeline.verify /some/out"
