"""End-to-end `trainer/fit.py` runs on CPU: train, checkpoint, exact resume, 2-process FSDP2."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from trainer_shards import write_mixture

ROOT = Path(__file__).resolve().parents[1]


def fit(run_dir: Path, mixture: Path, *overrides: str) -> dict[int, dict[str, float]]:
    """Run fit.py in a subprocess; returns the logged train metrics by step."""
    cmd = [
        sys.executable, str(ROOT / "trainer/fit.py"), "+experiment=multitask", "model=tiny",
        "trainer=cpu", f"data.mixture={mixture}", f"hydra.run.dir={run_dir}",
        "data.steps_per_epoch=3", "trainer.max_epochs=2", "data.num_workers=0",
        "trainer.enable_progress_bar=false", "torch_threads=1",
        "callbacks.checkpoint.every_n_train_steps=2", "callbacks.checkpoint.every_n_epochs=null",
        "callbacks.checkpoint.save_top_k=-1", *overrides,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    steps: dict[int, dict[str, float]] = {}
    with open(run_dir / "metrics.csv") as f:
        for row in csv.DictReader(f):
            if row.get("train/loss"):
                steps[int(row["step"])] = {k: float(v) for k, v in row.items() if v}
    return steps


@pytest.fixture(scope="module")
def mixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mixture(tmp_path_factory.mktemp("shards"), train=(8, 5), valid=(3,))


@pytest.fixture(scope="module")
def baseline(mixture: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    run = tmp_path_factory.mktemp("run")
    return run, fit(run, mixture)


def test_fit_trains_logs_and_checkpoints(baseline: tuple[Path, dict]) -> None:
    run, steps = baseline
    assert sorted(steps) == list(range(6))
    assert steps[5]["train/loss"] < steps[0]["train/loss"]
    for name in ("train/tokens_per_s", "train/audio_s_per_s", "train/pad_share_text",
                 "train/pad_share_audio"):
        assert name in steps[5]
    assert {k for k in steps[0] if k.startswith("train/loss_")} <= {
        "train/loss_asr", "train/loss_srwt", "train/loss_aac"}
    assert any(k.startswith("train/loss_") for k in steps[0])
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "val/loss" in header and "val/loss_aac" in header
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["last.ckpt", "step0000002.ckpt", "step0000004.ckpt", "step0000006.ckpt"]
    last = run / "checkpoints" / "last.ckpt"  # a link to the newest, not a second copy
    assert last.is_symlink() and last.resolve().name == "step0000006.ckpt"


def test_resume_continues_with_the_same_losses(
    baseline: tuple[Path, dict], mixture: Path, tmp_path: Path
) -> None:
    run, steps = baseline
    ckpt = run / "checkpoints" / "step0000002.ckpt"
    # one data-loader worker this time: the stream must not depend on it
    resumed = fit(tmp_path, mixture, f"ckpt_path={ckpt}", "data.num_workers=1")
    assert sorted(resumed) == [2, 3, 4, 5]
    for step in resumed:
        assert resumed[step]["train/loss"] == pytest.approx(steps[step]["train/loss"], abs=1e-6)


def test_fsdp2_two_processes_match_one(
    baseline: tuple[Path, dict], mixture: Path, tmp_path: Path
) -> None:
    _, steps = baseline
    two = fit(tmp_path, mixture, "trainer=fsdp_cpu", "trainer.max_epochs=1")
    assert sorted(two) == [0, 1, 2]
    for step in two:
        assert two[step]["train/loss"] == pytest.approx(steps[step]["train/loss"], rel=1e-5)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert ckpt.is_dir() and (ckpt / "meta.pt").is_file()  # a sharded, distributed checkpoint
    assert ckpt.is_symlink() and ckpt.resolve().name == "step0000002.ckpt"
    # both ranks wrote their shard into the one run directory
    assert sorted(p.name for p in ckpt.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]


def test_evaluate_writes_a_per_task_table(baseline: tuple[Path, dict]) -> None:
    from trainer.evaluate import evaluate

    run, _ = baseline
    scores = evaluate(run, role="valid", max_new_tokens=4)
    assert set(scores) == {"asr", "srwt", "aac"}
    assert scores["asr"]["n"] == 3 and scores["aac"]["n"] == 6  # every entry exactly once
    assert scores["asr"]["wer"] >= 0 and 0 <= scores["srwt"]["coverage"] <= 1
    table = (run / "eval_valid.md").read_text()
    assert "| asr | 3 | wer |" in table and "| aac | 6 | bleu4 |" in table
    assert len((run / "predictions_valid.jsonl").read_text().splitlines()) == 12


def test_evaluation_split_over_two_ranks_matches_one_process(
    baseline: tuple[Path, dict], tmp_path: Path
) -> None:
    """torchrun with 2 gloo ranks: each decodes its share, rank 0 gathers: the same
    predictions, in the same order, and the same scores as the one-process CPU path."""
    import shutil

    from trainer.evaluate import evaluate

    run = tmp_path / "run"
    shutil.copytree(baseline[0], run, symlinks=True)
    evaluate(run, role="valid", max_new_tokens=4, device="cpu")
    outputs = ("predictions_valid.jsonl", "eval_valid.json", "eval_valid.md")
    single = [(run / name).read_text() for name in outputs]
    for name in outputs:
        (run / name).unlink()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", str(ROOT / "trainer/evaluate.py"), "--run-dir", str(run), "--role", "valid",
           "--max-new-tokens", "4", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert [(run / name).read_text() for name in outputs] == single  # scores and predictions
    assert len(single[0].splitlines()) == 12
    assert out.stdout.count("| asr | 3 | wer |") == 1  # the table, printed by rank 0 only
