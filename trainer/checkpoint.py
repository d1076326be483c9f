"""Load model weights from a Lightning checkpoint file or a distributed checkpoint folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def load_state(path: str | Path) -> dict[str, Any]:
    """The full (unsharded) checkpoint dict, read on CPU.

    A folder is a distributed checkpoint written by FSDP2 (``ModelParallelStrategy``);
    a file is a plain Lightning ``.ckpt``.
    """
    path = Path(path)
    if path.is_dir():
        from lightning.fabric.utilities.load import _load_distributed_checkpoint

        return _load_distributed_checkpoint(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    # weights_only: a checkpoint is data, never code to run (Lightning's dicts load this way)
    return torch.load(path, map_location="cpu", weights_only=True)


def load_weights(module: torch.nn.Module, path: str | Path) -> None:
    """Copy the ``state_dict`` weights of checkpoint ``path`` into ``module`` (strict)."""
    state = load_state(path)
    weights = state.get("state_dict", state.get("model", state))
    # activation checkpointing wraps layers; the names without the wrapper are the model's
    weights = {k.replace("._checkpoint_wrapped_module", ""): v for k, v in weights.items()}
    missing, unexpected = module.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {path} does not fit the model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}; was it written with the same model config?"
        )
