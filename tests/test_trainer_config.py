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
    frozen = {part for part in ("encoder", "projector", "lm")
              if not any(p.requires_grad for p in getattr(module.net, part).parameters())}
    assert frozen == {"multitask": set(), "pretrain": {"lm"}, "finetune": {"encoder"},
                      "chat": {"encoder"}}[name]


def test_tensorboard_logger_option(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    mixture = write_mixture(tmp_path / "shards")
    cfg = _compose(["+experiment=multitask", f"data.mixture={mixture}", "model=tiny",
                    "trainer=cpu", "logger=tensorboard", f"paths.run_dir={tmp_path}/run"])
    _, _, trainer = build(cfg)
    assert {type(lg) for lg in trainer.loggers} == {CSVLogger, TensorBoardLogger}
    assert Path(trainer.loggers[0].log_dir).is_relative_to(tmp_path / "run")
