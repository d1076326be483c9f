"""Every experiment composes and instantiates; the root leaves `experiment` out."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from trainer_shards import write_mixture

from trainer.fit import build
from trainer.model import QwenAudioModel
from trainer.strategy import FSDP2Strategy
from trainer.tokenizer import build_tokenizer

CONF = Path(__file__).resolve().parents[1] / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def test_root_defaults_leave_experiment_out() -> None:
    assert "experiment" not in (CONF / "config.yaml").read_text().split("defaults:")[1].split(
        "\n\n"
    )[0]
    assert {"multitask", "pretrain", "finetune"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_instantiates(name: str, tmp_path: Path) -> None:
    mixture = write_mixture(tmp_path / "shards")
    common = [f"+experiment={name}", f"data.mixture={mixture}", f"paths.run_dir={tmp_path}/run"]
    # the paper-size config: composes, and its parts instantiate without a download
    big = _compose(common)
    assert big.model.module.net.encoder_path.endswith("whisper-large-v2")
    assert big.model.module.param_dtype == "bfloat16"
    assert callable(instantiate(big.model.module.net))
    trainer = instantiate(big.trainer, accelerator="cpu", devices=1)
    assert isinstance(trainer.strategy, FSDP2Strategy)
    # the tiny CPU config builds everything
    cfg = _compose([*common, "model=tiny", "trainer=cpu"])
    data, module, trainer = build(cfg)
    assert isinstance(module.net, QwenAudioModel)
    assert isinstance(trainer, L.Trainer) and trainer.max_epochs == 10
    assert data.task_weights == {"asr": 0.4, "srwt": 0.3, "aac": 0.3}
    assert module.tokenizer.audio_pad_id == 151851
    # the model waits on the meta device for configure_model to shard and fill it
    assert all(p.is_meta for p in module.net.parameters())
    trainable = {n for n, p in module.net.named_parameters() if p.requires_grad}
    parts = {n.split(".")[0] for n in trainable}
    if name == "pretrain":  # stage 1: encoder learns; of the LLM only the added token rows
        assert parts == {"encoder", "projector", "lm"}
        assert {n for n in trainable if n.startswith("lm.")} == {"lm.model.embed_tokens.weight"}
        assert module.net.trainable_rows == {"lm.model.embed_tokens.weight": 151851}
    elif name in ("finetune", "chat"):  # stage 2: the LLM learns, encoder frozen
        assert parts == {"projector", "lm"} and module.net.trainable_rows == {}
    else:
        assert parts == {"encoder", "projector", "lm"} and module.net.trainable_rows == {}


def test_tensorboard_logger_option(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    mixture = write_mixture(tmp_path / "shards")
    cfg = _compose(["+experiment=multitask", f"data.mixture={mixture}", "model=tiny",
                    "trainer=cpu", "logger=tensorboard", f"paths.run_dir={tmp_path}/run"])
    _, _, trainer = build(cfg)
    assert {type(lg) for lg in trainer.loggers} == {CSVLogger, TensorBoardLogger}
    assert Path(trainer.loggers[0].log_dir).is_relative_to(tmp_path / "run")


def test_2b_config_is_the_issue_9_size(tmp_path: Path) -> None:
    cfg = _compose(["+experiment=multitask", "model=qwen_audio_2b",
                    f"paths.run_dir={tmp_path}/run"])
    assert cfg.model.module.activation_checkpointing and cfg.model.checkpoint_every == 1000
    net = instantiate(cfg.model.module.net)(tokenizer=build_tokenizer(), empty=True)
    enc, lm = net.encoder.whisper.config, net.lm.config
    assert (enc.d_model, enc.encoder_layers, enc.encoder_attention_heads, enc.encoder_ffn_dim) \
        == (1280, 32, 20, 5120)
    assert (lm.hidden_size, lm.num_hidden_layers, lm.num_attention_heads,
            lm.num_key_value_heads, lm.intermediate_size) == (1536, 28, 12, 2, 8960)
    assert 2.1e9 < sum(p.numel() for p in net.parameters()) < 2.3e9  # on meta: no memory


def test_run_directory_is_hydras_and_checkpoints_follow_it() -> None:
    text = (CONF / "paths" / "default.yaml").read_text()
    assert "run_dir: ${hydra:runtime.output_dir}" in text
    cfg = _compose(["+experiment=multitask", "model=tiny", "paths.run_dir=/x/run"])
    assert cfg.callbacks.checkpoint.dirpath == "/x/run/checkpoints"
    assert cfg.logger.csv.save_dir == "/x/run"
    assert cfg.callbacks.checkpoint.save_last == "link"
    assert cfg.callbacks.checkpoint.every_n_train_steps == 100
