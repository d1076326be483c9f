"""Issue 6: `python -m pipeline.inspect` prints samples with prompts, targets, durations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from recipe_helpers import build_sample

from pipeline.inspect import main
from pipeline.shards import write_tar

ROOT = Path(__file__).resolve().parents[1]
ASR_PROMPT = "<|startoftranscript|><|en|><|transcribe|><|en|><|notimestamps|><|wo_itn|>"


@pytest.fixture(scope="module")
def libri(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("inspect")
    build_sample("librispeech", tmp / "out", tmp / "raw", shard_size=4)
    return tmp / "out"


def _first(libri: Path) -> tuple[str, dict]:
    from pipeline.reader import open_shards

    s = next(open_shards(libri, decode_audio=False))
    return s.key, s.json


def test_prints_prompt_target_and_duration(libri: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    key, meta = _first(libri)
    assert main([str(libri), "-n", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"== {key}  (librispeech-dev-clean-000000.tar, split dev-clean)"
    assert lines[1].startswith(f"   duration {meta['duration']:.2f} s, language en, 16000 Hz, "
                               "peak ")
    assert lines[1].endswith(f"source {meta['source']['file']}")
    assert lines[2:] == [f"   [asr] prompt: {ASR_PROMPT}",
                         f"         target: {meta['tasks'][0]['target']}"]


def test_count_split_and_single_shard(libri: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(libri), "-n", "5", "--split", "train-clean-100"]) == 0
    heads = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("== ")]
    assert len(heads) == 5 and all("split train-clean-100)" in h for h in heads)
    shard = sorted(libri.glob("*.tar"))[1]
    assert main([str(shard), "-n", "100"]) == 0
    heads = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("== ")]
    assert len(heads) == 4 and all(f"({shard.name}, " in h for h in heads)


def test_no_match_and_bad_input_exit_1(libri: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(libri), "--task", "aac"]) == 1
    assert capsys.readouterr().err == f"no samples in {libri} match the filters\n"
    write_tar(tmp_path / "bad.tar", [("k", {"pyd": b"cos\nsystem\n"})])
    assert main([str(tmp_path / "bad.tar")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "member 'k.pyd': unknown extension 'pyd'" in err


def test_runs_as_a_module(libri: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pipeline.inspect", str(libri), "-n", "2"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("[asr] prompt: ") == 2
