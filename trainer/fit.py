"""Train Qwen-Audio on built shards: ``python trainer/fit.py +experiment=multitask``.

Hydra main -> instantiate data, model, trainer -> fit.  See ``conf/config.yaml``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from trainer.checkpoint import load_weights


def build_module(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    """Instantiate the data module and the LightningModule of ``cfg``."""
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    L.seed_everything(cfg.seed, workers=True)  # same initial weights on every rank
    data = instantiate(cfg.data, tokenizer=instantiate(cfg.model.tokenizer))
    scheduler = cfg.optim.get("scheduler")
    module = instantiate(
        cfg.model.module,
        _convert_="all",
        tokenizer=data.tokenizer,
        optimizer=instantiate(cfg.optim.optimizer, _convert_="all"),
        scheduler=instantiate(scheduler, _convert_="all") if scheduler else None,
    )
    if cfg.get("init_from"):
        load_weights(module, cfg.init_from)
    return data, module


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Instantiate the data module, the LightningModule and the Trainer of ``cfg``."""
    data, module = build_module(cfg)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    return data, module, trainer


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Train; ``ckpt_path=<checkpoint>`` resumes exactly where that run stopped."""
    data, module, trainer = build(cfg)
    trainer.fit(module, datamodule=data, ckpt_path=cfg.get("ckpt_path"))


if __name__ == "__main__":
    main()
