"""Read weights into a (possibly sharded) model, each rank only the rows it keeps.

Sources of weights (all weights only: optimizer states are never read):

* a safetensors file, or a folder of ``*.safetensors`` (with or without
  ``model.safetensors.index.json``): pretrained Whisper / Qwen2 folders in the Hugging Face
  layout, or the state dict of :class:`~trainer.model.QwenAudioModel` itself (what
  ``python -m trainer.convert_qwen_audio`` writes);
* a distributed checkpoint folder written by this trainer (FSDP2, ``torch.distributed
  .checkpoint``): read with DCP into the local shards;
* a Lightning ``.ckpt`` file (or a ``torch.save``d state dict): memory-mapped, each rank
  copies only its rows.

Names are the model's own (``encoder.whisper.layers.0.fc1.weight``,
``lm.model.embed_tokens.weight``, ``projector.weight``); a source's names are mapped to
them by prefix.  A checkpoint row count smaller than the model's (a pretrained LM whose
vocabulary lacks the audio tokens) fills the first rows and leaves the rest initialised.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.materialize import aliases, local_rows, named_params

# Hugging Face names -> model names (first matching prefix wins; unmatched names are skipped)
WHISPER_PREFIXES = {"model.encoder.": "encoder.whisper.", "encoder.": "encoder.whisper."}
LM_PREFIXES = {"model.": "lm.model.", "lm_head.": "lm.lm_head."}


def load_state(path: str | Path) -> dict[str, Any]:
    """The full (unsharded) checkpoint dict, read on CPU (for tools, not for training).

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


def safetensors_files(path: str | Path) -> list[Path]:
    """The safetensors files of a file or folder (the index's files when it has one)."""
    path = Path(path)
    if path.is_file():
        return [path]
    index = path / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [path / f for f in files]
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(
            f"no *.safetensors in {path}: convert the checkpoint to safetensors (for a Hugging "
            "Face folder: from_pretrained(...).save_pretrained(out, safe_serialization=True))"
        )
    return files


def _rename(name: str, prefixes: dict[str, str] | None) -> str | None:
    if prefixes is None:
        return name
    for old, new in prefixes.items():
        if name.startswith(old):
            return new + name[len(old) :]
    return None


class RowReader:
    """Tensors by model name, each readable by row range without reading the rest."""

    def __init__(self, shapes: dict[str, tuple[int, ...]],
                 read: Callable[[str, int, int], torch.Tensor], origin: str) -> None:
        self.shapes, self._read, self.origin = shapes, read, origin

    def read(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of tensor ``name``."""
        return self._read(name, start, stop)


def safetensors_reader(path: str | Path, prefixes: dict[str, str] | None = None) -> RowReader:
    """Row reader over safetensors; ``prefixes`` maps the file's names to the model's."""
    from safetensors import safe_open

    where: dict[str, tuple[Any, str]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for file in safetensors_files(path):
        handle = safe_open(str(file), framework="pt")
        for key in handle.keys():
            name = _rename(key, prefixes)
            if name is not None:
                where[name] = (handle, key)
                shapes[name] = tuple(handle.get_slice(key).get_shape())

    def read(name: str, start: int, stop: int) -> torch.Tensor:
        handle, key = where[name]
        part = handle.get_slice(key)
        return part[start:stop] if len(shapes[name]) else part[:]

    return RowReader(shapes, read, str(path))


def lightning_reader(path: str | Path) -> RowReader:
    """Row reader over a Lightning ``.ckpt`` file, memory-mapped (only read rows load)."""
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    weights = state.get("state_dict", state)
    prefix = "net." if any(k.startswith("net.") for k in weights) else ""  # Lightning's
    tensors = {
        name[len(prefix):].replace("._checkpoint_wrapped_module", ""): t
        for name, t in weights.items() if name.startswith(prefix)
    }
    shapes = {k: tuple(t.shape) for k, t in tensors.items()}
    return RowReader(shapes, lambda n, a, b: tensors[n][a:b] if tensors[n].dim() else tensors[n],
                     str(path))


@torch.no_grad()
def fill_from(net: nn.Module, reader: RowReader) -> set[str]:
    """Copy this rank's rows of every model parameter found in ``reader``; returns the
    names filled.  Shapes must match except for a shorter dim 0 (fewer rows)."""
    filled = set()
    alias = aliases(net)
    for name, param in named_params(net).items():
        source = next((a for a in alias[name] if a in reader.shapes), None)
        if source is None:
            continue
        shape = reader.shapes[source]
        if tuple(shape[1:]) != tuple(param.shape[1:]) or shape[:1] > tuple(param.shape[:1]):
            raise ValueError(
                f"{reader.origin}: {name} has shape {list(shape)}, the model "
                f"{list(param.shape)}: was it written for the same model config?"
            )
        local, row0 = local_rows(param)
        if local.dim() == 0:
            local.copy_(reader.read(source, 0, 0))
        else:
            stop = min(row0 + local.shape[0], shape[0])
            if stop > row0:
                local[: stop - row0].copy_(reader.read(source, row0, stop))
        filled.add(name)
    return filled


def dcp_keys(path: Path) -> dict[str, str]:
    """Model name -> key of every module weight in a distributed checkpoint folder."""
    from torch.distributed.checkpoint import FileSystemReader

    meta = FileSystemReader(str(path)).read_metadata()
    prefix = "state_dict.net."
    return {
        key[len(prefix):].replace("._checkpoint_wrapped_module", ""): key[len("state_dict."):]
        for key in meta.state_dict_metadata if key.startswith(prefix)
    }


@torch.no_grad()
def fill_from_dcp(net: nn.Module, path: Path) -> set[str]:
    """Read the module weights of a distributed checkpoint into ``net``'s (local) parameters.

    Only the ``state_dict`` entries are requested, so DCP reads no optimizer state; with
    DTensor parameters each rank reads the chunks that overlap its shard.
    """
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.tensor import DTensor

    keys = dcp_keys(path)
    alias = aliases(net)
    targets = {}
    for name, param in named_params(net).items():
        source = next((a for a in alias[name] if a in keys), None)
        if source is not None:
            targets[keys[source]] = param
    sharded = any(isinstance(p, DTensor) for p in targets.values())
    no_dist = not sharded or not (dist.is_available() and dist.is_initialized())
    dcp.load({"state_dict": targets}, checkpoint_id=str(path), no_dist=no_dist)
    return {n for n, names in alias.items() if any(a in keys for a in names)}


def load_init_from(net: nn.Module, path: str | Path) -> None:
    """Weights of ``init_from`` into ``net`` (strict: every parameter must be there)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"init_from checkpoint not found: {path}")
    if path.is_dir() and (path / ".metadata").is_file():
        filled, available = fill_from_dcp(net, path), set(dcp_keys(path))
    else:
        if path.suffix in (".ckpt", ".pt", ".pth", ".bin"):
            reader = lightning_reader(path)
        else:
            reader = safetensors_reader(path)
        filled, available = fill_from(net, reader), set(reader.shapes)
    missing = sorted(set(named_params(net)) - filled)
    unexpected = sorted(available - {a for names in aliases(net).values() for a in names})
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {path} does not fit the model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}; was it written with the same model config?"
        )


def load_weights(module: nn.Module, path: str | Path) -> None:
    """Weights of checkpoint ``path`` into the ``net`` of LightningModule ``module``."""
    load_init_from(module.net, path)


def init_weights(
    net: nn.Module, device: torch.device | str, seed: int = 0, init_from: str | None = None
) -> None:
    """Materialise a meta-device ``net`` (sharded or not) with all its weights, each rank
    only its rows: deterministic init, then the pretrained folders of ``net.pretrained``
    (Hugging Face Whisper / causal-LM safetensors), then ``init_from`` (any source of
    the module docstring).  A model already materialised is left as it is."""
    from trainer.materialize import materialize

    if not any(p.is_meta for p in net.parameters()):
        if init_from:
            load_init_from(net, init_from)
        return
    params = named_params(net)
    if init_from:  # a whole model: nothing else to read or draw
        materialize(net, device, seed, skip=frozenset(params))
        load_init_from(net, init_from)
        return
    readers = {}
    for part, prefixes in (("encoder", WHISPER_PREFIXES), ("lm", LM_PREFIXES)):
        folder = getattr(net, "pretrained", {}).get(part)
        if folder:
            readers[part] = safetensors_reader(folder, prefixes)
    whole = {
        name for r in readers.values() for name, shape in r.shapes.items()
        if name in params and tuple(shape) == tuple(params[name].shape)
    }
    materialize(net, device, seed, skip=frozenset(whole))
    for part, reader in readers.items():
        filled = fill_from(net, reader)
        prefix = "encoder.whisper." if part == "encoder" else "lm."
        missing = sorted(n for n in params if n.startswith(prefix) and n not in filled)
        if missing:
            raise ValueError(
                f"pretrained {part} folder {reader.origin} lacks {len(missing)} weights of "
                f"the model, e.g. {missing[:3]}: is it the model its config describes?"
            )
