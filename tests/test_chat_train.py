"""Chat-stage training data and a tiny run: batches with several clips per row in the
model's order, assistant-only labels, a deterministic resumable stream, once-through
evaluation, and the tiny model's loss falling under `trainer/fit.py +experiment=chat`."""

from __future__ import annotations

import csv
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from trainer_shards import write_mixture

from trainer.chat_data import ChatDataModule
from trainer.features import IGNORE, audio_token_count
from trainer.tokenizer import build_tokenizer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> ChatDataModule:
    torch.set_num_threads(1)
    mixture = write_mixture(tmp_path_factory.mktemp("shards"), train=(8, 5), valid=(3,))
    return ChatDataModule(functools.partial(build_tokenizer), mixture=str(mixture),
                          global_batch_size=4, eval_batch_size=4, steps_per_epoch=4,
                          num_workers=0, seed=5)


def test_batches_hold_several_clips_in_row_order(data: ChatDataModule) -> None:
    tok = data.tokenizer
    batches = list(data.train_dataloader())
    assert len(batches) == 4
    rows_with_two = 0
    for b in batches:
        ids, lens = b["input_ids"], b["feature_lens"].tolist()
        assert b["input_features"].shape[0] == len(lens) == int((ids == tok.audio_start_id).sum())
        # the k-th pad run of the batch (row-major) is clip k: its length is clip k's tokens
        runs = [int(((row == tok.audio_pad_id) & (torch.arange(len(row)) > s)
                     & (torch.arange(len(row)) < e)).sum())
                for row in ids
                for s, e in zip((row == tok.audio_start_id).nonzero().flatten().tolist(),
                                (row == tok.audio_end_id).nonzero().flatten().tolist(),
                                strict=True)]
        assert runs == [audio_token_count(n * 160) for n in lens]
        rows_with_two += int(((ids == tok.audio_start_id).sum(1) > 1).sum())
        for row, labels in zip(ids.tolist(), b["labels"].tolist(), strict=True):
            scored = [t for t in labels if t != IGNORE]
            im_end = tok.token_to_id("<|im_end|>")
            assert scored and scored[-1] == im_end
            assert tok.audio_pad_id not in scored and tok.token_to_id("<|im_start|>") not in scored
            answers = tok.decode(scored).split("<|im_end|>")[:-1]
            text = tok.decode(row)
            assert all(f"<|im_start|>assistant\n{a}<|im_end|>" in text for a in answers)
    assert rows_with_two > 0  # conversations over several audios occur


def test_stream_is_deterministic_and_resumes(data: ChatDataModule) -> None:
    first = [b["keys"] for b in data.train_dataloader()]
    assert first == [b["keys"] for b in data.train_dataloader()]
    stream = data.train_dataloader().dataset
    stream.set_position(0, 2)  # resuming after two optimizer steps
    assert [b["keys"] for b in stream] == first[2:]


def test_evaluation_has_each_valid_sample_once(data: ChatDataModule) -> None:
    keys = [k for b in data.eval_loader("valid") for k, w in zip(b["keys"], b["weight"],
                                                                  strict=True) if w > 0]
    assert len(keys) == len(set(keys)) == 6  # 3 speech + 3 sound validation samples
    prompts = list(data.eval_loader("valid", prompt_only=True))
    tok = data.tokenizer
    for b in prompts:
        for row in b["input_ids"].tolist():  # left-padded, ends with the assistant header
            assert row[-3:] == [tok.token_to_id("<|im_start|>"), *tok.encode("assistant\n")]


def fit(run: Path, mixture: Path, *overrides: str) -> tuple[dict[int, float], list[float]]:
    """A tiny chat run of fit.py in a subprocess: train loss by step, validation losses."""
    cmd = [sys.executable, str(ROOT / "trainer/fit.py"), "+experiment=chat", "model=tiny",
           "trainer=cpu", f"data.mixture={mixture}", f"hydra.run.dir={run}",
           "data.steps_per_epoch=6", "trainer.max_epochs=2", "data.num_workers=0",
           "data.global_batch_size=4", "trainer.enable_progress_bar=false", "torch_threads=1",
           "optim.optimizer.lr=3e-3", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    train, val = {}, []
    with open(run / "metrics.csv") as f:
        for row in csv.DictReader(f):
            if row.get("train/loss"):
                train[int(row["step"])] = float(row["train/loss"])
            if row.get("val/loss"):
                val.append(float(row["val/loss"]))
    return train, val


@pytest.mark.slow
def test_tiny_model_loss_falls_on_a_chat_run(tmp_path: Path) -> None:
    mixture = write_mixture(tmp_path / "shards", train=(8, 5), valid=(3,))
    train, val = fit(tmp_path / "run", mixture)
    assert sorted(train) == list(range(12))
    first, last = sum(train[s] for s in range(3)) / 3, sum(train[s] for s in range(9, 12)) / 3
    assert last < first - 0.3  # falls, beyond step-to-step noise
    assert len(val) == 2 and val[1] < val[0]
    # trainer/evaluate.py decodes the chat prompts: each validation conversation once
    from trainer.evaluate import evaluate

    scores = evaluate(tmp_path / "run", role="valid", max_new_tokens=6, device="cpu")
    assert sum(s["n"] for s in scores.values()) == 6 and set(scores) <= {"asr", "aac", "srwt"}
    assert all(set(s) == {"n", "exact", "wer"} for s in scores.values())
    rows = [json.loads(x) for x in (tmp_path / "run" / "predictions_valid.jsonl").open()]
    assert len({r["key"] for r in rows}) == 6
    assert all("<|im_end|>" not in r["prediction"] and r["reference"] for r in rows)


@pytest.mark.slow
def test_fsdp2_two_processes_match_one_on_chat_batches(tmp_path: Path) -> None:
    mixture = write_mixture(tmp_path / "shards", train=(8, 5), valid=(3,))
    short = ("data.steps_per_epoch=3", "trainer.max_epochs=1")
    one, _ = fit(tmp_path / "one", mixture, *short)
    two, _ = fit(tmp_path / "two", mixture, *short, "trainer=fsdp_cpu")
    assert sorted(one) == sorted(two) == [0, 1, 2]
    for step in one:  # same global batches of conversations, split over two ranks
        assert two[step] == pytest.approx(one[step], rel=1e-5)
