"""Qwen-Audio as plain modules: Whisper encoder -> 2x average pooling -> projector -> causal LM.

The audio embeddings of each clip replace its ``[[[AUDIO:modality]]]`` pads in the token
sequence (one pad per pooled frame, 25 per second); :func:`masked_lm_loss` is the loss.
``build_model`` makes the paper's sizes from local checkpoints or a tiny model from
configs alone; ``parallelize`` applies FSDP2 (``fully_shard``) and activation checkpointing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from trainer.features import IGNORE, conv_frames
from trainer.tokenizer import QwenAudioTokenizer

PARTS = ("encoder", "projector", "lm")


def masked_lm_loss(
    hidden: torch.Tensor, labels: torch.Tensor, lm_head: nn.Module
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token cross-entropy of the labelled positions, and the row of each token.

    Position ``t`` predicts label ``t + 1``; labels are ``-100`` on the prompt, the audio
    and padding, so only the target text and ``<|endoftext|>`` are scored.  The LM head is
    applied to the scored positions only (the vocabulary is 155k wide).
    """
    targets = labels[:, 1:]
    keep = targets != IGNORE
    logits = lm_head(hidden[:, :-1][keep]).float()
    losses = F.cross_entropy(logits, targets[keep], reduction="none")
    return losses, keep.nonzero()[:, 0]


class AudioEncoder(nn.Module):
    """Whisper encoder on mel features of any length <= 30 s, padded frames masked out."""

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
        x = F.gelu(w.conv2(x * mel_valid[:, None])).permute(0, 2, 1)
        frames = x.shape[1]
        if frames > w.embed_positions.num_embeddings:
            raise ValueError(f"audio of {features.shape[-1]} mel frames is longer than 30 s")
        # Slicing the positions lets batches be cut to their longest clip, not 30 s.
        x = x + w.embed_positions.weight[:frames]
        valid = torch.arange(frames, device=x.device)[None] < conv_frames(feature_lens)[:, None]
        mask = torch.zeros(valid.shape, dtype=x.dtype, device=x.device)
        mask = mask.masked_fill(~valid, torch.finfo(x.dtype).min)[:, None, None, :]
        mask = mask.expand(-1, 1, frames, frames)
        for layer in w.layers:
            x = layer(x, mask, layer_head_mask=None)[0]
        x = w.layer_norm(x)
        return self.pool(x.transpose(1, 2)).transpose(1, 2)


class QwenAudioModel(nn.Module):
    """Audio encoder + projector + causal LM; ``forward`` returns per-token losses."""

    def __init__(self, encoder: AudioEncoder, lm: PreTrainedModel, audio_pad_id: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = nn.Linear(encoder.dim, lm.config.hidden_size)
        self.lm = lm
        self.audio_pad_id = audio_pad_id

    def embed(
        self, input_ids: torch.Tensor, features: torch.Tensor, feature_lens: torch.Tensor
    ) -> torch.Tensor:
        """Token embeddings with each clip's audio embeddings in place of its pads."""
        audio = self.projector(self.encoder(features, feature_lens))
        counts = (conv_frames(feature_lens) - 2) // 2 + 1
        embeds = self.lm.get_input_embeddings()(input_ids)
        pads = input_ids == self.audio_pad_id
        if not torch.equal(pads.sum(1), counts):
            raise ValueError(
                f"audio pads per row {pads.sum(1).tolist()} != pooled frames {counts.tolist()}"
            )
        valid = torch.arange(audio.shape[1], device=audio.device)[None] < counts[:, None]
        return embeds.masked_scatter(pads[..., None], audio[valid].to(embeds.dtype))

    def hidden(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Last hidden states of the LM over the spliced sequence."""
        embeds = self.embed(batch["input_ids"], batch["input_features"], batch["feature_lens"])
        out = self.lm.get_decoder()(inputs_embeds=embeds, attention_mask=batch["attention_mask"])
        return out.last_hidden_state

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token losses of the targets and the batch row of each token."""
        return masked_lm_loss(self.hidden(batch), batch["labels"], self.lm.get_output_embeddings())


def _load_encoder(config: WhisperConfig | None, path: str | None) -> WhisperEncoder:
    if path:
        from transformers import WhisperForConditionalGeneration

        if not Path(path).exists():
            raise FileNotFoundError(f"Whisper checkpoint not found: {path} (a local folder)")
        return WhisperForConditionalGeneration.from_pretrained(path).get_encoder()
    if config is None:
        raise ValueError("model needs encoder (a WhisperConfig) or encoder_path")
    return WhisperEncoder(config)


def _load_lm(config: PretrainedConfig | None, path: str | None, vocab: int) -> PreTrainedModel:
    from transformers import AutoModelForCausalLM

    if path:
        if not Path(path).exists():
            raise FileNotFoundError(f"LM checkpoint not found: {path} (a local folder)")
        lm = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
    elif config is not None:
        config.vocab_size = -(-vocab // 64) * 64
        lm = AutoModelForCausalLM.from_config(config)
    else:
        raise ValueError("model needs lm (a transformers config) or lm_path")
    if lm.get_input_embeddings().num_embeddings < vocab:
        lm.resize_token_embeddings(vocab, pad_to_multiple_of=128)
    return lm


def build_model(
    tokenizer: QwenAudioTokenizer,
    encoder: WhisperConfig | None = None,
    lm: PretrainedConfig | None = None,
    encoder_path: str | None = None,
    lm_path: str | None = None,
    freeze: Sequence[str] = (),
) -> QwenAudioModel:
    """Build the model; ``freeze`` lists parts (encoder, projector, lm) left untrained."""
    bad = sorted(set(freeze) - set(PARTS))
    if bad:
        raise ValueError(f"cannot freeze {bad}; choose from {PARTS}")
    model = QwenAudioModel(
        AudioEncoder(_load_encoder(encoder, encoder_path)),
        _load_lm(lm, lm_path, tokenizer.vocab_size),
        tokenizer.audio_pad_id,
    )
    for part in freeze:
        getattr(model, part).requires_grad_(False)
    return model


def parallelize(
    model: QwenAudioModel,
    mesh: object | None,
    param_dtype: str | None = None,
    activation_checkpointing: bool = False,
) -> QwenAudioModel:
    """Activation checkpointing per layer, then FSDP2 per layer and at the root.

    ``mesh`` is the data-parallel device mesh (``None``: no sharding, e.g. DDP or one
    process); ``param_dtype="bfloat16"`` computes in bf16 with fp32 master weights and
    fp32 gradient reduction.
    """
    layers = [model.encoder.whisper.layers, model.lm.get_decoder().layers]
    if activation_checkpointing:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
            checkpoint_wrapper,
        )

        for stack in layers:
            for i, layer in enumerate(stack):
                stack[i] = checkpoint_wrapper(layer)
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
