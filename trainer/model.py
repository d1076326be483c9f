"""Qwen-Audio as plain modules: Whisper encoder -> 2x average pooling -> layer norm ->
projector -> causal LM (the order of the released ``audio.py``).

The audio embeddings of each clip replace its ``[[[AUDIO:modality]]]`` pads in the token
sequence (one pad per pooled frame, 25 per second) and ``<audio>``/``</audio>`` become the
learned begin/end vectors, as in the release; :func:`masked_lm_loss` is the loss.
``build_model`` makes the paper's sizes from local checkpoints or a tiny model from
configs alone; ``parallelize`` applies FSDP2 (``fully_shard``) and activation checkpointing.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from pipeline.tags import AUDIO_SPECIAL_TOKENS
from trainer.features import HOP, IGNORE, MIN_SAMPLES, conv_frames
from trainer.tokenizer import QwenAudioTokenizer

PARTS = ("encoder", "projector", "lm")


def scored_index(labels: torch.Tensor) -> torch.Tensor:
    """Flat indices into ``labels[:, 1:]`` of the scored positions (row-major order).

    Compute it where the labels are still on the host (``QwenAudioModule`` does it in
    ``on_before_batch_transfer``) and pass it in the batch as ``"scored"``: ``nonzero`` on a
    GPU tensor waits for the GPU (a host sync), on a CPU tensor it costs microseconds.
    """
    return (labels[:, 1:] != IGNORE).flatten().nonzero()[:, 0]


def masked_lm_loss(
    hidden: torch.Tensor, labels: torch.Tensor, lm_head: nn.Module,
    scored: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token cross-entropy of the labelled positions, and the row of each token.

    Position ``t`` predicts label ``t + 1``; labels are ``-100`` on the prompt, the audio
    and padding, so only the target text and ``<|endoftext|>`` are scored.  The LM head is
    applied to the scored positions only (the vocabulary is 155k wide), gathered with
    ``scored`` (:func:`scored_index`, computed here when not given: a host sync on GPUs),
    so the rest is shape-static tensor code.
    """
    if scored is None:
        scored = scored_index(labels)
    width = labels.shape[1] - 1
    rows = torch.div(scored, width, rounding_mode="floor")
    # (row, t) of labels[:, 1:] is row * (width + 1) + t of the (B * T, dim) hidden states
    states = hidden.reshape(-1, hidden.shape[-1]).index_select(0, scored + rows)
    targets = labels[:, 1:].reshape(-1).index_select(0, scored)
    logits = lm_head(states).float()
    return F.cross_entropy(logits, targets, reduction="none"), rows


class AudioEncoder(nn.Module):
    """Whisper encoder on mel features of any length <= 30 s, padded frames masked out.

    Order of the released ``audio.py``: convolutions, positions, layers, 2x average
    pooling, then the final layer norm (``ln_post``, here ``whisper.layer_norm``); the
    projection follows in :class:`QwenAudioModel`.
    """

    def __init__(self, whisper: WhisperEncoder) -> None:
        super().__init__()
        self.whisper = whisper
        self.pool = nn.AvgPool1d(2, stride=2)

    @property
    def dim(self) -> int:
        """Width of the encoder output."""
        return int(self.whisper.config.d_model)

    def forward(self, features: torch.Tensor, feature_lens: torch.Tensor) -> torch.Tensor:
        """Pooled frames ``(batch, conv_frames(T) // 2, dim)`` of ``features (batch, bins, T)``."""
        w = self.whisper
        x = F.gelu(w.conv1(features.to(w.conv1.weight.dtype)))
        # Zero conv1's output past each clip's end, as if the clip were alone (unpadded):
        # then a clip's embeddings do not depend on the longest clip of its batch.
        mel_valid = torch.arange(x.shape[-1], device=x.device)[None] < feature_lens[:, None]
        x = F.gelu(w.conv2(x * mel_valid[:, None].to(x.dtype))).permute(0, 2, 1)
        frames = x.shape[1]
        if frames > w.embed_positions.num_embeddings:
            raise ValueError(f"audio of {features.shape[-1]} mel frames is longer than 30 s")
        # Slicing the positions lets batches be cut to their longest clip, not 30 s.
        x = x + w.embed_positions.weight[:frames]
        valid = torch.arange(frames, device=x.device)[None] < conv_frames(feature_lens)[:, None]
        mask = _key_padding_mask(valid, w.config._attn_implementation)
        for layer in w.layers:
            x = layer(x, mask, layer_head_mask=None)[0]
        x = self.pool(x.transpose(1, 2)).transpose(1, 2)
        return w.layer_norm(x)


def _key_padding_mask(valid: torch.Tensor, implementation: str | None) -> torch.Tensor:
    """The encoder's padding mask in the form its attention implementation takes.

    A key-padding mask ``(B, 1, 1, T)`` (boolean for SDPA, so that it picks the
    memory-efficient kernel; additive for eager), never a dense ``(B, 1, T, T)`` one;
    ``flash_attention_2`` takes the 2-D mask (its variable-length path).
    """
    if implementation == "flash_attention_2":
        return valid.long()
    if implementation == "eager":
        mask = torch.zeros(valid.shape, device=valid.device)
        return mask.masked_fill(~valid, torch.finfo(mask.dtype).min)[:, None, None, :]
    return valid[:, None, None, :]


class AudioProjector(nn.Linear):
    """Encoder width -> LM width, and the two learned vectors that replace ``<audio>`` and
    ``</audio>`` (the release's ``audio_bos_eos_token``; audio side, frozen with the projector).
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features)
        self.bos_eos = nn.Parameter(torch.empty(2, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Linear's default init; the begin/end vectors as the release inits embeddings."""
        super().reset_parameters()
        if hasattr(self, "bos_eos"):
            nn.init.normal_(self.bos_eos, std=0.02)


class QwenAudioModel(nn.Module):
    """Audio encoder + projector + causal LM; ``forward`` returns per-token losses."""

    def __init__(
        self, encoder: AudioEncoder, lm: PreTrainedModel, audio_pad_id: int,
        audio_start_id: int, audio_end_id: int,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = AudioProjector(encoder.dim, lm.config.hidden_size)
        self.lm = lm
        self.audio_pad_id = audio_pad_id
        self.audio_start_id, self.audio_end_id = audio_start_id, audio_end_id
        # exact checks with clear errors where they cost no GPU wait (CPU tensors); False
        # runs the accelerators' asynchronous checks everywhere
        self.host_checks = True
        # the LM's attention: "auto" (flash_attention_2 where it runs, else sdpa), or a
        # transformers attn_implementation ("sdpa", "flash_attention_2", "eager")
        self.lm_attention = "auto"

    def embed(
        self, input_ids: torch.Tensor, features: torch.Tensor, feature_lens: torch.Tensor
    ) -> torch.Tensor:
        """Token embeddings with the audio spliced in, as the release does.

        Contract: ``features (n_clips, bins, T)`` and ``feature_lens (n_clips,)`` (mel
        frames) hold any number of clips per row, in the order their pad runs appear in
        ``input_ids`` read row-major (row 0's clips first, left to right); ``n_clips = 0``
        is a text-only batch.  Clip ``c`` owns ``pooled(feature_lens[c])`` consecutive
        ``[[[AUDIO:modality]]]`` pads (:func:`trainer.features.audio_token_count`), between
        an ``<audio>`` and an ``</audio>``.  The k-th pad of the batch becomes the k-th
        pooled frame (projected, clip after clip); every ``<audio>``/``</audio>`` becomes the
        learned begin/end vector.  Shape-static: the total count of pads against pooled
        frames is checked exactly on CPU (``ValueError``) and with ``torch._assert_async``
        on accelerators or with ``host_checks=False`` (no host sync; a mismatch fails the
        step asynchronously).
        """
        embeds = self.lm.get_input_embeddings()(input_ids)
        n_clips = features.shape[0]
        if n_clips == 0:  # one silent clip: every rank uses every parameter (FSDP, DDP)
            features = features.new_zeros(1, features.shape[1], MIN_SAMPLES // HOP)
            feature_lens = feature_lens.new_full((1,), MIN_SAMPLES // HOP)
        audio = self.projector(self.encoder(features, feature_lens))
        counts = (conv_frames(feature_lens) - 2) // 2 + 1
        ends = counts.cumsum(0)
        pads = input_ids == self.audio_pad_id
        self._check_pads(pads.sum(), ends[-1] if n_clips else ends[-1] * 0, n_clips,
                         self.host_checks and pads.device.type == "cpu")
        ordinal = pads.flatten().cumsum(0).view_as(input_ids) - 1  # which pad of the batch
        clip = torch.searchsorted(ends, ordinal, right=True).clamp(max=audio.shape[0] - 1)
        frame = (ordinal - (ends - counts)[clip]).clamp(0, audio.shape[1] - 1)
        embeds = torch.where(pads[..., None], audio[clip, frame].to(embeds.dtype), embeds)
        bos, eos = self.projector.bos_eos.to(embeds.dtype)
        embeds = torch.where((input_ids == self.audio_start_id)[..., None], bos, embeds)
        return torch.where((input_ids == self.audio_end_id)[..., None], eos, embeds)

    @staticmethod
    def _check_pads(pads: torch.Tensor, frames: torch.Tensor, n_clips: int, host: bool) -> None:
        if not host:
            torch._assert_async(pads == frames, "audio pads in the batch != pooled frames")
        elif int(pads) != int(frames):
            raise ValueError(
                f"{int(pads)} audio pads in the batch, but its {n_clips} clips have "
                f"{int(frames)} pooled frames: clips must be listed in the order of their "
                "pad runs, each with audio_token_count(samples) pads"
            )

    def hidden(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Last hidden states of the LM over the spliced sequence.

        Training rows are right-padded, so under causal attention no real token sees a
        pad: the LM runs without a padding mask (SDPA's or flash's causal kernel, no
        ``(B, 1, T, T)`` mask and no host sync) and without a key/value cache (which
        activation checkpointing would grow again on recompute).
        """
        embeds = self.embed(batch["input_ids"], batch["input_features"], batch["feature_lens"])
        impl = self.lm_attention
        if impl == "auto":
            impl = lm_attention_for(embeds)
        if self.lm.config._attn_implementation != impl:  # the layers share this config
            self.lm.config._attn_implementation = impl
        return self.lm.get_decoder()(inputs_embeds=embeds, use_cache=False).last_hidden_state

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token losses of the targets and the batch row of each token.

        ``batch["scored"]`` (:func:`scored_index` of the labels, optional) avoids a host sync.
        """
        return masked_lm_loss(
            self.hidden(batch), batch["labels"], self.lm.get_output_embeddings(),
            batch.get("scored"),
        )


@functools.cache
def _flash_attn_installed() -> bool:
    from transformers.utils import is_flash_attn_2_available

    return bool(is_flash_attn_2_available())


def lm_attention_for(embeds: torch.Tensor) -> str:
    """``flash_attention_2`` where it runs (a CUDA tensor computed in bf16/fp16, the
    ``flash-attn`` package installed), else ``sdpa`` (PyTorch picks its flash or
    memory-efficient kernel: training runs the LM without a padding mask)."""
    half = embeds.dtype in (torch.bfloat16, torch.float16) or (
        embeds.is_cuda and torch.is_autocast_enabled("cuda"))
    if embeds.is_cuda and half and _flash_attn_installed():
        return "flash_attention_2"
    return "sdpa"


def param_groups(
    model: nn.Module, weight_decay: float | None = None
) -> list[dict[str, object]]:
    """Trainable parameters in two optimizer groups: decayed, and not decayed.

    No weight decay on norms and biases (every parameter of fewer than 2 dimensions), on
    embeddings (``nn.Embedding`` weights, so also an LM head tied to them, and Whisper's
    positions) and on the audio begin/end vectors.  ``weight_decay=None`` leaves the
    decayed group at the optimizer's own ``weight_decay``.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            flat = p.ndim < 2 or isinstance(module, nn.Embedding) or name == "bos_eos"
            (no_decay if flat else decay).append(p)
    first: dict[str, object] = {"params": decay}
    if weight_decay is not None:
        first["weight_decay"] = weight_decay
    return [first, {"params": no_decay, "weight_decay": 0.0}]


def adamw(params: Iterable[Any], fused: bool | None = None, **kwargs: Any) -> torch.optim.AdamW:
    """``torch.optim.AdamW``; ``fused=None`` uses the fused kernel when every parameter
    is on a CUDA device (one kernel per step instead of a loop over tensors)."""
    params = list(params)
    if fused is None:
        tensors = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
        fused = bool(tensors) and all(p.device.type == "cuda" for p in tensors)
    return torch.optim.AdamW(params, fused=fused, **kwargs)


def compile_blocks(model: QwenAudioModel) -> QwenAudioModel:
    """``torch.compile`` each encoder and LM layer in place (``nn.Module.compile``, so the
    parameter names stay); call after activation checkpointing and before sharding."""
    for stack in (model.encoder.whisper.layers, model.lm.get_decoder().layers):
        for layer in stack:
            layer.compile()
    return model


def _load_encoder(
    config: WhisperConfig | None, path: str | None, empty: bool = False
) -> WhisperEncoder:
    """Whisper encoder from a local folder or a config; ``empty``: on the meta device
    (only the folder's config.json is read; :mod:`trainer.checkpoint` loads the weights)."""
    if path:
        from transformers import WhisperForConditionalGeneration

        if not Path(path).exists():
            raise FileNotFoundError(f"Whisper checkpoint not found: {path} (a local folder)")
        if not empty:
            return WhisperForConditionalGeneration.from_pretrained(path).get_encoder()
        config = WhisperConfig.from_pretrained(path)
    if config is None:
        raise ValueError("model needs encoder (a WhisperConfig) or encoder_path")
    with torch.device("meta") if empty else nullcontext():
        return WhisperEncoder(config)


def _load_lm(
    config: PretrainedConfig | None, path: str | None, vocab: int, empty: bool = False
) -> PreTrainedModel:
    """Causal LM from a local folder or a config, with at least ``vocab`` embedding rows
    (a pretrained vocabulary is padded to a multiple of 128); ``empty``: on meta."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if path:
        if not Path(path).exists():
            raise FileNotFoundError(f"LM checkpoint not found: {path} (a local folder)")
        if not empty:
            lm = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
            if lm.get_input_embeddings().num_embeddings < vocab:
                lm.resize_token_embeddings(vocab, pad_to_multiple_of=128)
            return lm
        config = AutoConfig.from_pretrained(path)
        config.vocab_size = max(config.vocab_size, -(-vocab // 128) * 128)
    elif config is not None:
        config.vocab_size = -(-vocab // 64) * 64
    else:
        raise ValueError("model needs lm (a transformers config) or lm_path")
    with torch.device("meta") if empty else nullcontext():
        return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def first_added_token(tokenizer: QwenAudioTokenizer) -> int:
    """First id beyond the original Qwen vocabulary (the audio and time tokens follow)."""
    return min(tokenizer.special[t] for t in AUDIO_SPECIAL_TOKENS)


def build_model(
    tokenizer: QwenAudioTokenizer,
    encoder: WhisperConfig | None = None,
    lm: PretrainedConfig | None = None,
    encoder_path: str | None = None,
    lm_path: str | None = None,
    freeze: Sequence[str] = (),
    train_new_token_rows: bool = False,
    empty: bool = False,
) -> QwenAudioModel:
    """Build the model; ``freeze`` lists parts (encoder, projector, lm) left untrained.

    ``train_new_token_rows``: with the LM frozen, its embedding and output rows of the
    added audio/time tokens still train (the original rows are kept by a gradient hook,
    see ``model.trainable_rows``).  ``empty``: parameters on the meta device, materialised
    later per shard (:func:`trainer.materialize.materialize`); ``model.pretrained`` says
    which local folders hold the encoder's and the LM's weights.
    """
    bad = sorted(set(freeze) - set(PARTS))
    if bad:
        raise ValueError(f"cannot freeze {bad}; choose from {PARTS}")
    with torch.device("meta") if empty else nullcontext():
        model = QwenAudioModel(
            AudioEncoder(_load_encoder(encoder, encoder_path, empty)),
            _load_lm(lm, lm_path, tokenizer.vocab_size, empty),
            tokenizer.audio_pad_id, tokenizer.audio_start_id, tokenizer.audio_end_id,
        )
    model.pretrained = {"encoder": encoder_path, "lm": lm_path} if empty else {}
    for part in freeze:
        getattr(model, part).requires_grad_(False)
    model.trainable_rows = {}
    if "lm" in freeze and train_new_token_rows:
        names = {id(p): n for n, p in model.named_parameters()}
        first = first_added_token(tokenizer)
        for emb in (model.lm.get_input_embeddings(), model.lm.get_output_embeddings()):
            emb.weight.requires_grad_(True)
            model.trainable_rows[names[id(emb.weight)]] = first
    return model


def parallelize(
    model: QwenAudioModel,
    mesh: object | None,
    param_dtype: str | None = None,
    activation_checkpointing: bool = False,
    compile: bool = False,
) -> QwenAudioModel:
    """Activation checkpointing per layer, ``torch.compile`` per layer (``compile``, see
    :func:`compile_blocks`), then FSDP2 per layer and at the root.

    ``mesh`` is the data-parallel device mesh (``None``: no sharding, e.g. DDP or one
    process): 1-D shards over all its ranks, 2-D ``("replicate", "shard")`` is hybrid
    sharding (HSDP: shard within a node, replicate across nodes).  ``param_dtype=
    "bfloat16"`` computes in bf16 with fp32 master weights and fp32 gradient reduction.
    Works on a meta-device model (shard first, then :func:`trainer.materialize.materialize`).
    """
    layers = [model.encoder.whisper.layers, model.lm.get_decoder().layers]
    if activation_checkpointing:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
            checkpoint_wrapper,
        )

        for stack in layers:
            for i, layer in enumerate(stack):
                stack[i] = checkpoint_wrapper(layer)
    if compile:
        compile_blocks(model)
    if mesh is None:
        return model
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(
        param_dtype=getattr(torch, param_dtype) if param_dtype else None,
        reduce_dtype=torch.float32,
    )
    for stack in layers:
        for layer in stack:
            fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model
