"""Models built on the meta device and materialised per shard, never whole on one rank.

``build_model(..., empty=True)`` creates every parameter and buffer on ``meta`` (no memory);
``parallelize`` shards it (FSDP2 makes each parameter a DTensor whose local tensor holds
this rank's rows); :func:`materialize` then allocates only the local rows, fills them with
a deterministic initialisation, and :mod:`trainer.checkpoint` overwrites them with the
rows of pretrained or ``init_from`` weights read slice by slice.

The initialisation is independent of the sharding: normal values are drawn in fixed blocks
of rows from a generator seeded by ``(seed, parameter name, block)``, so one process and
any number of FSDP2 ranks start from bit-identical weights (the same model as the one
built unsharded), while a rank only ever draws the blocks that overlap its own rows.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator

import torch
from torch import nn

WRAPPED = "._checkpoint_wrapped_module"  # activation checkpointing's wrapper in names
BLOCK_ELEMENTS = 1 << 20  # values drawn per generator seed (rows of a parameter per block)


def model_name(name: str) -> str:
    """A parameter name without activation checkpointing's wrapper (the model's own name)."""
    return name.replace(WRAPPED, "")


def local_rows(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """This rank's part of ``t`` (a plain tensor or a DTensor sharded on dim 0) and the
    global index of its first row.  Writing into the returned tensor writes ``t``."""
    from torch.distributed.tensor import DTensor

    if not isinstance(t, DTensor):
        return t.data if isinstance(t, nn.Parameter) else t, 0
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    _, offset = compute_local_shape_and_global_offset(t.shape, t.device_mesh, t.placements)
    if any(offset[1:]):
        raise ValueError(f"only dim-0 sharding is supported, got placements {t.placements}")
    return t.to_local(), int(offset[0])


def _seed(seed: int, name: str, block: int) -> int:
    return zlib.crc32(f"{seed}:{name}:{block}".encode())


def normal_rows(
    out: torch.Tensor, row0: int, full_rows: int, std: float, seed: int, name: str
) -> None:
    """Fill ``out`` (rows ``row0 ...`` of a ``full_rows``-row tensor) with N(0, std) values
    that do not depend on how the tensor is split into row ranges."""
    if out.numel() == 0:
        return
    per_row = max(1, math.prod(out.shape[1:]))
    rows = max(1, BLOCK_ELEMENTS // per_row)
    stop = row0 + out.shape[0]
    for block in range(row0 // rows, (stop - 1) // rows + 1):
        lo, hi = block * rows, min((block + 1) * rows, full_rows)
        gen = torch.Generator().manual_seed(_seed(seed, name, block))
        values = torch.randn((hi - lo, *out.shape[1:]), generator=gen) * std
        a, b = max(lo, row0), min(hi, stop)
        out[a - row0 : b - row0].copy_(values[a - lo : b - lo])


def sinusoid_rows(out: torch.Tensor, row0: int) -> None:
    """Whisper's sinusoidal position embeddings, rows ``row0 ...`` only."""
    channels = out.shape[1]
    increment = math.log(10000) / (channels // 2 - 1)
    inv = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float32))
    pos = torch.arange(row0, row0 + out.shape[0], dtype=torch.float32)[:, None] * inv[None]
    out.copy_(torch.cat([pos.sin(), pos.cos()], dim=1))


def _owned_params(net: nn.Module) -> Iterator[tuple[str, nn.Module, str, nn.Parameter]]:
    seen: set[int] = set()
    for mod_name, module in net.named_modules():
        for pname, param in module.named_parameters(recurse=False):
            if id(param) not in seen:
                seen.add(id(param))
                yield model_name(f"{mod_name}.{pname}".lstrip(".")), module, pname, param


def init_param(name: str, module: nn.Module, pname: str, param: torch.Tensor, std: float,
               seed: int) -> None:
    """Deterministic initial rows of one parameter, as Hugging Face initialises these
    modules: norms 1, biases 0, Whisper positions sinusoidal, other weights N(0, std)."""
    local, row0 = local_rows(param)
    if "norm" in type(module).__name__.lower():
        local.fill_(1.0 if pname == "weight" else 0.0)
    elif pname == "bias":
        local.zero_()
    elif name.endswith("embed_positions.weight"):
        sinusoid_rows(local, row0)
    else:
        normal_rows(local, row0, param.shape[0], std, seed, name)


def _std(name: str, net: nn.Module) -> float:
    if name.startswith("encoder."):
        return float(net.encoder.whisper.config.init_std)
    return float(getattr(net.lm.config, "initializer_range", 0.02))


def _rebuild_buffers(net: nn.Module, device: torch.device) -> None:
    """Buffers are computed, not learned: recompute them on ``device`` (they were meta)."""
    for name, module in net.named_modules():
        own = dict(module.named_buffers(recurse=False))
        if not own:
            continue
        if hasattr(module, "rope_init_fn") and set(own) <= {"inv_freq", "original_inv_freq"}:
            inv_freq, module.attention_scaling = module.rope_init_fn(module.config, device)
            module.inv_freq = inv_freq
            module.original_inv_freq = inv_freq
        else:
            raise TypeError(
                f"module {name or 'net'} ({type(module).__name__}) has buffers {sorted(own)} "
                "that trainer.materialize cannot recompute; teach _rebuild_buffers about it"
            )


def _tied(net: nn.Module) -> list[tuple[nn.Module, str, nn.Module, str]]:
    """(module, name, owner, owner's name) of every parameter shared with an earlier one
    (an LM head tied to the embeddings)."""
    first: dict[int, tuple[nn.Module, str]] = {}
    ties = []
    for module in net.modules():
        for pname, p in module._parameters.items():
            if p is not None and id(p) in first:
                ties.append((module, pname, *first[id(p)]))
            elif p is not None:
                first[id(p)] = (module, pname)
    return ties


@torch.no_grad()
def materialize(
    net: nn.Module, device: torch.device | str, seed: int = 0, skip: frozenset[str] = frozenset()
) -> None:
    """Allocate the local rows of every meta parameter of ``net`` on ``device`` and fill
    them with the deterministic initialisation (parameters named in ``skip`` are left
    empty: a checkpoint fills them whole).  A sharded parameter allocates only its shard."""
    device = torch.device(device)
    ties = _tied(net)
    net.to_empty(device=device)
    for module, pname, owner, oname in ties:  # to_empty made a copy per module: re-tie
        module._parameters[pname] = owner._parameters[oname]
    _rebuild_buffers(net, device)
    for name, module, pname, param in _owned_params(net):
        if name not in skip:
            init_param(name, module, pname, param, _std(name, net), seed)


def keep_rows_frozen(param: torch.Tensor, first_trainable: int) -> None:
    """Zero the gradient of rows ``< first_trainable`` of ``param`` after every backward.

    Registered on the parameter the optimizer sees (the sharded DTensor under FSDP2,
    whose hook runs on the reduced, sharded gradient), so the original vocabulary's rows
    never change while the rows of the added tokens train.
    """

    def hook(p: torch.Tensor) -> None:
        if p.grad is not None:
            local, row0 = local_rows(p.grad)
            local[: max(0, min(first_trainable - row0, local.shape[0]))].zero_()

    param.register_post_accumulate_grad_hook(hook)


def named_params(net: nn.Module) -> dict[str, nn.Parameter]:
    """Parameters by their model name (activation checkpointing wrappers removed)."""
    return {name: p for name, _, _, p in _owned_params(net)}


def aliases(net: nn.Module) -> dict[str, list[str]]:
    """Every name of each parameter, by its :func:`named_params` name (a tied LM head
    has two: ``lm.model.embed_tokens.weight`` and ``lm.lm_head.weight``)."""
    by_id: dict[int, list[str]] = {}
    for name, p in net.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(p), []).append(model_name(name))
    return {names[0]: names for names in by_id.values()}
