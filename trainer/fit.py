"""Train Qwen-Audio on built shards: ``python trainer/fit.py +experiment=multitask``.

Hydra main -> check local weights -> instantiate data, model, trainer -> fit.  See
``conf/config.yaml``.  The model is built on the meta device and materialised per shard
in ``QwenAudioModule.configure_model`` (no rank ever holds the whole fp32 model).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from trainer.rundir import rank_overrides, run_stamp

OmegaConf.register_new_resolver("run_stamp", run_stamp, replace=True)

TINY = "python trainer/fit.py +experiment=multitask model=tiny trainer=cpu torch_threads=1"


def check_local_weights(cfg: DictConfig, model_name: str = "this model") -> None:
    """Fail before any heavy work, naming every local folder or file that is missing."""
    net, problems = cfg.model.module.net, []
    for key, what in (("encoder_path", "a Hugging Face Whisper folder"),
                      ("lm_path", "a transformers-native causal LM folder (Qwen2 layout)")):
        path = net.get(key)
        if path and not Path(path).is_dir():
            problems.append(f"model.module.net.{key}={path}: {what}, not found")
        elif path and not any(Path(path).glob("*.safetensors")):
            problems.append(f"model.module.net.{key}={path}: holds no *.safetensors")
    tok = cfg.model.tokenizer
    if tok.get("source") == "path" and not Path(str(tok.get("path"))).is_file():
        problems.append(f"model.tokenizer.path={tok.get('path')}: Qwen's qwen.tiktoken, not found")
    if cfg.get("init_from") and not Path(cfg.init_from).exists():
        problems.append(f"init_from={cfg.init_from}: not found")
    if problems:
        raise FileNotFoundError(
            f"{model_name} needs local weights that are not here:\n  - "
            + "\n  - ".join(problems)
            + "\nPut them there or point paths.checkpoints=<dir> at a folder holding "
            "whisper-large-v2/ and Qwen-7B/ (config.json + *.safetensors; a Hugging Face "
            "model saves them with save_pretrained(<dir>, safe_serialization=True)). "
            "To start from the released Qwen-Audio weights, convert them with "
            "`python -m trainer.convert_qwen_audio` and pass init_from=<its output>.\n"
            f"To try the trainer without any download: {TINY}"
        )


def build_module(
    cfg: DictConfig, materialize: bool = True
) -> tuple[L.LightningDataModule, L.LightningModule]:
    """Instantiate the data module and the LightningModule of ``cfg``.

    ``materialize=True`` fills the whole model on CPU at once (evaluation, one process);
    ``False`` leaves it on the meta device for ``configure_model`` to shard and fill.
    """
    check_local_weights(cfg)
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    L.seed_everything(cfg.seed, workers=True)
    data = instantiate(cfg.data, tokenizer=instantiate(cfg.model.tokenizer))
    scheduler = cfg.optim.get("scheduler")
    module = instantiate(
        cfg.model.module,
        _convert_="all",
        tokenizer=data.tokenizer,
        optimizer=instantiate(cfg.optim.optimizer, _convert_="all"),
        scheduler=instantiate(scheduler, _convert_="all") if scheduler else None,
        init_from=cfg.get("init_from"),
        init_seed=cfg.seed,  # the same initial weights on every rank, however sharded
    )
    if materialize:
        module.configure_model()
    return data, module


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Instantiate the data module, the (meta-device) LightningModule and the Trainer."""
    data, module = build_module(cfg, materialize=False)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    return data, module, trainer


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Train; ``ckpt_path=<checkpoint>`` resumes exactly where that run stopped."""
    from hydra.core.hydra_config import HydraConfig

    try:  # a missing folder is a usage error: its message, not a traceback
        check_local_weights(cfg, f"model={HydraConfig.get().runtime.choices.get('model')}")
    except FileNotFoundError as err:
        raise SystemExit(f"error: {err}") from None
    data, module, trainer = build(cfg)
    trainer.fit(module, datamodule=data, ckpt_path=cfg.get("ckpt_path"))


if __name__ == "__main__":
    sys.argv += rank_overrides(sys.argv[1:])
    main()
