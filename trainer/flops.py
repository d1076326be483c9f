"""Model FLOPs of a training step, counted from the batch (the basis of ``train/mfu``).

Counted: every matrix product of the forward pass, 2 FLOPs per multiply-add, on the
*real* (unpadded) lengths, and 3x that for forward + backward (the backward pass costs
two forward passes: gradients of inputs and of weights), as in PaLM's model-FLOPs
utilisation. Not counted: element-wise work (norms, activations, softmax, rotary,
pooling), padding, and the recomputation of activation checkpointing. Frozen parts are
counted like trained ones.

Per clip of ``M`` real mel frames (``F = conv_frames(M)`` encoder frames, ``P = F // 2``
pooled frames), Whisper encoder of width ``d``, ``N_e`` layers, feed-forward ``f_e``,
``b`` mel bins, LM width ``H``::

    conv1 2*M*b*3*d + conv2 2*F*3*d*d
    + N_e * (8*F*d^2  [q, k, v, out]  + 4*F^2*d  [scores, values]  + 4*F*d*f_e  [MLP])
    + projector 2*P*d*H

Per row of ``T`` real tokens (audio pads included), LM with ``N`` layers, ``n_q`` query and
``n_kv`` key/value heads of size ``h``, feed-forward ``f``::

    N * (4*T*H*n_q*h  [q, o]  + 4*T*H*n_kv*h  [k, v]  + 2*n_q*h*T*(T+1)  [causal attention]
         + 6*T*H*f  [gate, up, down])

plus the LM head on the scored tokens only (``S`` of them, vocabulary ``V``): ``2*S*H*V``.
Causal attention counts the products a causal kernel computes, ``T*(T+1)/2`` query-key
pairs (torchtitan counts the full ``T^2``, which gives a higher figure for the same run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trainer.features import IGNORE, conv_frames

#: bf16 dense peak TFLOP/s of one accelerator, by the name torch.cuda reports (substring).
PEAK_TFLOPS_BF16 = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0}


@dataclass(frozen=True)
class Dims:
    """The sizes that the FLOP count needs."""

    mel_bins: int
    enc_width: int
    enc_layers: int
    enc_ffn: int
    width: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int


def dims_of(net: Any) -> Dims:
    """The :class:`Dims` of a :class:`trainer.model.QwenAudioModel`."""
    w, c = net.encoder.whisper.config, net.lm.config
    heads = c.num_attention_heads
    return Dims(
        mel_bins=w.num_mel_bins, enc_width=w.d_model, enc_layers=w.encoder_layers,
        enc_ffn=w.encoder_ffn_dim, width=c.hidden_size, layers=c.num_hidden_layers,
        heads=heads, kv_heads=getattr(c, "num_key_value_heads", None) or heads,
        head_dim=getattr(c, "head_dim", None) or c.hidden_size // heads,
        ffn=c.intermediate_size, vocab=c.vocab_size,
    )


def forward_flops(
    d: Dims, mel_frames: torch.Tensor, tokens: torch.Tensor, scored: torch.Tensor | int
) -> torch.Tensor:
    """Forward FLOPs (float64 on CPU, float32 elsewhere) of clips of ``mel_frames`` real mel
    frames, rows of ``tokens`` real tokens and ``scored`` scored tokens; tensor code only,
    so a GPU batch is counted without a host sync."""
    dtype = torch.float64 if tokens.device.type == "cpu" else torch.float32
    m = mel_frames.to(dtype)
    f = conv_frames(mel_frames).to(dtype)
    p = torch.div(conv_frames(mel_frames), 2, rounding_mode="floor").to(dtype)
    e, h = d.enc_width, d.width
    enc = (2 * m * d.mel_bins * 3 * e + 2 * f * 3 * e * e
           + d.enc_layers * (8 * f * e * e + 4 * f * f * e + 4 * f * e * d.enc_ffn)
           + 2 * p * e * h).sum()
    t = tokens.to(dtype)
    q, kv = d.heads * d.head_dim, d.kv_heads * d.head_dim
    lm = d.layers * (4 * t * h * q + 4 * t * h * kv + 2 * q * t * (t + 1) + 6 * t * h * d.ffn)
    head = 2 * h * d.vocab * (scored.to(dtype) if isinstance(scored, torch.Tensor) else
                              float(scored))
    return enc + lm.sum() + head


def batch_train_flops(d: Dims, batch: dict[str, Any]) -> torch.Tensor:
    """Model FLOPs of one training step (forward + backward) on ``batch``."""
    scored = batch.get("scored")
    n = scored.numel() if scored is not None else (batch["labels"][:, 1:] != IGNORE).sum()
    tokens = batch["attention_mask"].sum(1)
    return 3 * forward_flops(d, batch["feature_lens"], tokens, n)


def peak_tflops_of(device_name: str) -> float | None:
    """The bf16 dense peak of a card named ``device_name`` (``torch.cuda.get_device_name``)."""
    return next((v for k, v in PEAK_TFLOPS_BF16.items() if k in device_name), None)
