"""Whole `trainer/fit.py` runs at scale on CPU: the headline command without weights,
torchrun ranks in one run directory (stage 1 with a frozen LM), hybrid sharding on a
2 x 2 mesh, and the per-rank memory of building and sharding a 0.5 B model."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from scale_helpers import peak_rss_bytes, report, spawn, tokenizer
from trainer_shards import write_mixture

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
COMMON = ["data.steps_per_epoch=3", "trainer.max_epochs=1", "data.num_workers=0",
          "trainer.enable_progress_bar=false", "torch_threads=1", "model.checkpoint_every=3"]


def _run(cmd: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def _torchrun(n: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", str(n), str(ROOT / "trainer/fit.py")]


def _losses(run: Path) -> dict[int, float]:
    with open(run / "metrics.csv") as f:
        return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(f)
                if r.get("train/loss")}


@pytest.fixture(scope="module")
def mixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mixture(tmp_path_factory.mktemp("shards"), train=(8, 5), valid=(3,))


def test_headline_command_without_weights_says_what_it_needs(tmp_path: Path) -> None:
    # the data is missing too: the weights are checked first, before any heavy work
    out = _run([sys.executable, str(ROOT / "trainer/fit.py"), "+experiment=multitask",
                f"paths.checkpoints={tmp_path}/none", f"data.mixture={tmp_path}/no.json",
                f"hydra.run.dir={tmp_path}/run"], timeout=300)
    assert out.returncode == 1
    err = out.stderr
    assert "Traceback" not in err and "no.json" not in err
    assert "model=qwen_audio_7b needs local weights that are not here" in err
    for needed in (f"{tmp_path}/none/whisper-large-v2", f"{tmp_path}/none/Qwen-7B",
                   "qwen.tiktoken", "python -m trainer.convert_qwen_audio",
                   "python trainer/fit.py +experiment=multitask model=tiny trainer=cpu"):
        assert needed in err, needed


@pytest.mark.slow
def test_torchrun_ranks_share_one_run_directory_and_stage1_trains_new_rows(
    mixture: Path, tmp_path: Path
) -> None:
    """Two torchrun ranks (microsecond stamps would differ per rank) write one run
    directory; with +experiment=pretrain (and activation checkpointing under FSDP2) the
    LM's original vocabulary rows stay bit-identical while the added token rows and the
    encoder train; the checkpoint loads back into an unwrapped, unsharded model."""
    from hydra import compose, initialize_config_dir

    from trainer.checkpoint import init_weights
    from trainer.fit import build_module
    from trainer.model import first_added_token

    overrides = ["+experiment=pretrain", "model=tiny", "trainer=fsdp_cpu",
                 "model.module.activation_checkpointing=true",  # wrapped layers, sharded
                 f"data.mixture={mixture}", "optim.optimizer.lr=0.01", *COMMON]
    out = _run([*_torchrun(2), *overrides, f"paths.output_dir={tmp_path}/runs",
                "hydra.run.dir=${paths.output_dir}/${task_name}/${run_stamp:%H-%M-%S-%f}"])
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = (tmp_path / "runs" / "pretrain").iterdir()
    assert sorted(p.name for p in run.iterdir()) == [
        ".hydra", "checkpoints", "fit.log", "fit_rank1.log", "metrics.csv"]
    last = run / "checkpoints" / "last.ckpt"
    assert sorted(p.name for p in last.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    assert sorted(_losses(run)) == [0, 1, 2]

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*overrides, f"paths.run_dir={run}"])
    _, start = build_module(cfg)
    before = {n: p.detach().clone() for n, p in start.net.state_dict().items()}
    _, trained = build_module(cfg, materialize=False)
    init_weights(trained.net, "cpu", cfg.seed, str(last))
    after = trained.net.state_dict()
    first = first_added_token(start.tokenizer)
    emb = "lm.model.embed_tokens.weight"
    assert torch.equal(after[emb][:first], before[emb][:first])
    assert not torch.equal(after[emb][first:], before[emb][first:])
    assert all(torch.equal(after[n], before[n]) for n in before
               if n.startswith("lm.model.layers."))
    assert not torch.equal(after["encoder.whisper.conv1.weight"],
                           before["encoder.whisper.conv1.weight"])


@pytest.mark.slow
def test_hybrid_sharding_on_a_2x2_mesh_matches_one_process(mixture: Path, tmp_path: Path) -> None:
    base = [f"data.mixture={mixture}", "+experiment=multitask", "model=tiny", *COMMON]
    one = _run([sys.executable, str(ROOT / "trainer/fit.py"), *base, "trainer=cpu",
                f"hydra.run.dir={tmp_path}/one"])
    assert one.returncode == 0, one.stderr[-3000:]
    hsdp = _run([*_torchrun(4), *base, "trainer=fsdp_cpu", "trainer.devices=4",
                 "trainer.strategy.hybrid_shard=true", "trainer.strategy.shard_size=2",
                 f"hydra.run.dir={tmp_path}/hsdp"])
    assert hsdp.returncode == 0, hsdp.stderr[-3000:]
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "hsdp")
    assert sorted(a) == sorted(b) == [0, 1, 2]
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-6)
    # a 2 x 2 mesh indeed: every parameter is cut in 2 shards (4 with plain FSDP2), held
    # twice; the checkpoint stores each shard once
    from torch.distributed.checkpoint import FileSystemReader

    meta = FileSystemReader(str(tmp_path / "hsdp/checkpoints/last.ckpt")).read_metadata()
    chunks = {k: len(v.chunks) for k, v in meta.state_dict_metadata.items()
              if k.startswith("state_dict.net.") and k.endswith("embed_tokens.weight")}
    assert chunks and set(chunks.values()) == {2}, chunks


# ------------------------------------------------------------- memory of a 0.5 B build

HALF_B = dict(
    encoder=dict(num_mel_bins=80, d_model=1024, encoder_layers=12, encoder_attention_heads=16,
                 encoder_ffn_dim=4096, decoder_layers=1, decoder_attention_heads=16,
                 decoder_ffn_dim=4096, max_source_positions=1500),
    lm=dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=16,
            num_attention_heads=16, num_key_value_heads=2, tie_word_embeddings=True),
)


def _rss_worker(rank: int, world: int, tmp: Path) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from transformers import Qwen2Config, WhisperConfig

    from trainer.checkpoint import init_weights
    from trainer.model import build_model, parallelize

    tok = tokenizer()
    before = peak_rss_bytes()
    net = build_model(tok, WhisperConfig(**HALF_B["encoder"]), Qwen2Config(**HALF_B["lm"]),
                      empty=True)
    full = sum(p.numel() for p in net.parameters()) * 4
    parallelize(net, init_device_mesh("cpu", (world,)), activation_checkpointing=True)
    init_weights(net, "cpu", seed=1)
    local = sum(p.to_local().numel() for p in net.parameters()) * 4
    report(tmp, rank, growth=peak_rss_bytes() - before, full=full, local=local)


@pytest.mark.slow
def test_building_a_half_billion_model_keeps_each_rank_under_60_percent(tmp_path: Path) -> None:
    for r in spawn(_rss_worker, 2, tmp_path):
        print(f"full {r['full'] / 1e9:.2f} GB, local {r['local'] / 1e9:.2f} GB, "
              f"peak RSS growth {r['growth'] / 1e9:.2f} GB ({r['growth'] / r['full']:.0%})")
        assert 0.4e9 * 4 < r["full"] < 0.6e9 * 4
        assert r["local"] < 0.51 * r["full"]
        assert r["growth"] < 0.6 * r["full"], (r["growth"] / r["full"])


@pytest.mark.slow
def test_memory_bench_runs_on_cpu(mixture: Path) -> None:
    """bench/train_memory.py's smoke mode: the same build, clock and report as on a GPU."""
    import json

    out = _run([sys.executable, str(ROOT / "bench/train_memory.py"), "--cpu", "--model", "tiny",
                "--batch-size", "4", "--accumulate", "2", "--steps", "3", "--warmup", "1",
                "--mixture", str(mixture), "--extra", "torch_threads=1", "data.num_workers=0"])
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert (result["global_batch"], result["micro_batch"], result["steps"]) == (8, 4, 3)
    assert len(result["step_s"]) == 3 and result["peak_rss_gib"] > 0
