"""Turn (clip, task entry) pairs into model batches: log-mel features, token ids, labels.

Sequence of one example (as in the released Qwen-Audio)::

    <audio> [[[AUDIO:modality]]] x n </audio> prompt target <|endoftext|>

``n`` is the number of pooled encoder frames of the clip (25 per second, see
:func:`audio_token_count`); the model puts the audio embeddings in place of the pads.
Labels are ``-100`` everywhere except the target and the end-of-text token.  Mel features
are cut to the longest clip of the batch instead of being padded to 30 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import WhisperFeatureExtractor

from pipeline.format import SAMPLE_RATE
from pipeline.tags import TASKS
from trainer.reader import Pair
from trainer.tokenizer import QwenAudioTokenizer

IGNORE = -100
HOP = 160  # samples per mel frame (100 frames/s)
MIN_SAMPLES = 4 * HOP  # shorter clips are zero-padded so that they keep one audio token
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def conv_frames(mel_frames: int) -> int:
    """Frames after Whisper's second convolution (kernel 3, stride 2, padding 1)."""
    return (mel_frames - 1) // 2 + 1


def audio_token_count(num_samples: int) -> int:
    """Audio tokens of a clip: mel frames -> conv stride 2 -> 2x average pooling.

    Same arithmetic as Qwen-Audio's ``audio.py`` (25 tokens per second of audio).
    """
    mel = max(num_samples, MIN_SAMPLES) // HOP
    return (conv_frames(mel) - 2) // 2 + 1


def encode_pair(
    tok: QwenAudioTokenizer, prompt: str, target: str | None, n_audio: int
) -> tuple[list[int], list[int]]:
    """Token ids and labels of one example; ``target=None`` gives the prompt only."""
    head = [tok.audio_start_id, *([tok.audio_pad_id] * n_audio), tok.audio_end_id]
    head += tok.encode(prompt)
    if target is None:
        return head, [IGNORE] * len(head)
    tail = [*tok.encode(target), tok.eot_id]
    return head + tail, [IGNORE] * len(head) + tail


def pad_mels(mels: Sequence[np.ndarray]) -> torch.Tensor:
    """``(clips, bins, longest)`` features, each clip zero-padded at its end."""
    feats = np.zeros((len(mels), mels[0].shape[0], max(m.shape[1] for m in mels)),
                     dtype=np.float32)
    for i, m in enumerate(mels):
        feats[i, :, : m.shape[1]] = m
    return torch.from_numpy(feats)


def pad_tokens(
    seqs: Sequence[tuple[list[int], list[int]]], pad_id: int, prompt_only: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``input_ids``, ``attention_mask`` and ``labels`` of ``(ids, labels)`` rows.

    Training rows are right-padded (the model relies on it: no real token sees a pad under
    causal attention); prompt-only rows are left-padded, so that generation continues every
    row, and carry no labels.
    """
    width = max(len(ids) for ids, _ in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, lab) in enumerate(seqs):
        if prompt_only:
            ids[i, width - len(s) :], mask[i, width - len(s) :] = torch.tensor(s), 1
        else:
            ids[i, : len(s)], labels[i, : len(s)], mask[i, : len(s)] = (
                torch.tensor(s), torch.tensor(lab), 1,
            )
    return ids, mask, labels


class Collator:
    """Decode the audio of a list of pairs and build one padded batch (a dict of tensors)."""

    def __init__(
        self, tokenizer: QwenAudioTokenizer, num_mel_bins: int = 80, pad_to_30s: bool = False
    ) -> None:
        """``pad_to_30s=True`` pads every clip's features to Whisper's fixed 30 s (3000
        frames) instead of the longest clip of the batch; the audio tokens still follow each
        clip's own length (the baseline of ``bench/batching_throughput.py``)."""
        self.tokenizer = tokenizer
        self.extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)
        self.pad_to_30s = pad_to_30s

    def mel(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel features ``(bins, len(audio) // 160)`` of one clip."""
        if len(audio) < MIN_SAMPLES:
            audio = np.pad(audio, (0, MIN_SAMPLES - len(audio)))
        padding = "max_length" if self.pad_to_30s else "longest"
        out = self.extractor(audio, sampling_rate=SAMPLE_RATE, padding=padding, return_tensors="np")
        return out.input_features[0]

    def __call__(
        self, pairs: Sequence[Pair], weight: float = 1.0, prompt_only: bool = False
    ) -> dict[str, Any]:
        """Batch of ``pairs``; ``weight=0`` marks a padding batch that must not count."""
        audios = [p.audio.read() for p in pairs]
        mels = [self.mel(a) for a in audios]
        lens = [m.shape[1] for m in mels]
        if self.pad_to_30s:  # the features are 3000 frames; the clip is what it is
            lens = [min(max(len(a), MIN_SAMPLES) // HOP, n) for a, n in zip(audios, lens,
                                                                              strict=True)]
        n_audio = [audio_token_count(n * HOP) for n in lens]
        seqs = [
            encode_pair(self.tokenizer, p.prompt, None if prompt_only else p.target, n)
            for p, n in zip(pairs, n_audio, strict=True)
        ]
        ids, mask, labels = pad_tokens(seqs, self.tokenizer.eot_id, prompt_only)
        return {
            "input_features": pad_mels(mels),
            "feature_lens": torch.tensor(lens),
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
            "task_ids": torch.tensor([TASK_NAMES.index(p.task) for p in pairs]),
            "durations": torch.tensor([p.duration for p in pairs], dtype=torch.float32),
            "weight": torch.full((len(pairs),), float(weight)),
            "keys": [p.key for p in pairs],
            "targets": [p.target for p in pairs],
            "prompts": [p.prompt for p in pairs],  # scoring reads their language tags
        }
