"""Chat-stage data: conversations (:mod:`pipeline.chat`) drawn on the fly from shard sets.

Training: shards are resampled by size, their samples go through a shuffle buffer, and
each sample leads one conversation (with probability ``multi_share`` over it and samples
from a small window of recent ones).  Conversations are batched by total audio duration
exactly like the multitask stream (:func:`trainer.data.duration_batches`): the stream
depends only on ``(seed, epoch)``, every rank walks the same global batches and decodes
its slice, resuming skips whole batches.

A batch holds any number of audios per row: ``input_features (n_clips, bins, T)`` and
``feature_lens (n_clips,)`` list the clips in the order their pad runs appear in
``input_ids`` (row by row, left to right), the contract of ``QwenAudioModel.embed``.
Labels score the assistant turns only (:func:`pipeline.chat.encode`).  ``task_ids`` is the
task of each conversation's first question (the per-task loss logs).

Evaluation: every sample of the ``role`` shards leads one conversation, the same ones for
a seed (:func:`pipeline.chat.conversations_of`), each once over all ranks.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import webdataset as wds
from torch.utils.data import DataLoader

from pipeline.chat import (
    ChatSample,
    Clip,
    Conversation,
    Templates,
    conversations_of,
    converse,
    encode,
    token_length,
)
from trainer.data import (
    EVAL_POOL_BATCHES,
    PlannedEvalSet,
    PositionedLoader,
    TrainStream,
    _worker,
    rank_batches,
    resampled_shards,
)
from trainer.datamodule import ShardDataModule
from trainer.features import (
    HOP,
    TASK_NAMES,
    Collator,
    audio_token_count,
    pad_mels,
    pad_tokens,
)
from trainer.reader import AudioRef, Shard, read_metadata, read_shard
from trainer.scoring import accuracy_normalized, wer
from trainer.tokenizer import QwenAudioTokenizer


@dataclass(frozen=True)
class ChatExample:
    """A conversation and the FLAC of each of its clips (``audio[n]`` is clip ``n``)."""

    conv: Conversation
    audio: tuple[AudioRef, ...]
    duration: float  # audio seconds of all clips (duration-sorted batching)


@dataclass
class ChatStreamConfig:
    """What the chat training stream draws from and how it batches."""

    shards: list[Shard]
    templates: Templates
    tokenizer: QwenAudioTokenizer
    max_tokens: int
    global_batch_size: int
    steps_per_epoch: int
    seed: int = 0
    shuffle_buffer: int = 64
    pool_batches: int = 8
    window: int = 16  # recent samples that may join a conversation over several audios
    per_rank_streams: bool = False


def _example(conv: Conversation, refs: dict[Clip, AudioRef]) -> ChatExample:
    return ChatExample(conv, tuple(refs[c] for c in conv.clips),
                       sum(c.duration for c in conv.clips))


def chat_stream(cfg: ChatStreamConfig, rng: random.Random) -> Iterator[ChatExample]:
    """Endless conversations led by shuffled samples of the training shards."""
    if not cfg.shards:
        raise ValueError("no training shards for the chat stream")

    def samples() -> Iterator[tuple[ChatSample, AudioRef]]:
        for shard in resampled_shards(cfg.shards, rng):
            for key, meta, ref in read_shard(shard.path, shard.nsamples):
                clip = Clip(shard.set_name, shard.split, key, float(meta["duration"]))
                yield ChatSample(clip, meta), ref

    shuffled = wds.filters.shuffle(cfg.shuffle_buffer, initial=cfg.shuffle_buffer, rng=rng)
    window: collections.deque[tuple[ChatSample, AudioRef]] = collections.deque(maxlen=cfg.window)
    length = token_length(cfg.tokenizer)
    failed = 0
    for sample, ref in shuffled(samples()):
        conv = converse(sample, [s for s, _ in window], cfg.templates, rng, length,
                        cfg.max_tokens)
        if isinstance(conv, Conversation):
            failed = 0
            yield _example(conv, {s.clip: r for s, r in (*window, (sample, ref))})
        else:
            failed += 1
            if failed > 1000:
                raise ValueError(f"no conversation from 1000 samples in a row ({conv}); check "
                                 f"the templates ({cfg.templates.path}) against the tasks")
        window.append((sample, ref))


def chat_train_batches(
    cfg: ChatStreamConfig, epoch: int, rank: int, world_size: int
) -> Iterator[list[ChatExample]]:
    """This rank's ``steps_per_epoch`` batches of ``epoch`` (not yet decoded)."""
    return rank_batches(cfg, lambda rng: chat_stream(cfg, rng), epoch, rank, world_size,
                        name="chat:")


class ChatCollator:
    """Decode the clips of a list of conversations into one padded batch."""

    def __init__(self, tokenizer: QwenAudioTokenizer, num_mel_bins: int = 80) -> None:
        self.tokenizer = tokenizer
        self.features = Collator(tokenizer, num_mel_bins)  # its log-mel extractor

    def __call__(self, examples: Sequence[ChatExample], weight: float = 1.0,
                 prompt_only: bool = False) -> dict[str, Any]:
        """Batch of ``examples``; ``weight=0`` marks a padding batch that must not count."""
        mels = [self.features.mel(ref.read()) for ex in examples for ref in ex.audio]
        lens = [m.shape[1] for m in mels]
        pads = iter([audio_token_count(n * HOP) for n in lens])
        seqs = [encode(ex.conv, self.tokenizer, [next(pads) for _ in ex.audio], prompt_only)
                for ex in examples]
        ids, mask, labels = pad_tokens(seqs, self.tokenizer.eot_id, prompt_only)
        return {
            "input_features": pad_mels(mels),
            "feature_lens": torch.tensor(lens),
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
            "task_ids": torch.tensor([TASK_NAMES.index(ex.conv.task) for ex in examples]),
            "durations": torch.tensor([ex.duration for ex in examples], dtype=torch.float32),
            "weight": torch.full((len(seqs),), float(weight)),
            "keys": [ex.conv.id for ex in examples],
            "prompts": [ex.conv.pairs[-1][0] for ex in examples],  # the last question
            "targets": [ex.conv.pairs[-1][1] for ex in examples],  # its answer
        }


def score_chat(rows: Sequence[dict[str, str]]) -> dict[str, float]:
    """Scores of decoded last answers against the reference answers: exact match (after
    the scorer's normalization) and word error rate."""
    refs, hyps = [r["reference"] for r in rows], [r["prediction"] for r in rows]
    return {"exact": accuracy_normalized(refs, hyps), "wer": wer(refs, hyps)}


class ChatTrainStream(TrainStream):
    """Decoded chat training batches of one rank (position as :class:`TrainStream`)."""

    def __iter__(self) -> Iterator[dict]:
        worker, workers = _worker()
        batches = chat_train_batches(self.cfg, self.epoch, self.rank, self.world_size)
        for i, examples in enumerate(batches):
            if i >= self.skip and (i - self.skip) % workers == worker:
                yield self.collate(examples)


def chat_eval_plan(
    shards: Sequence[Shard], templates: Templates, tokenizer: QwenAudioTokenizer, seed: int,
    max_tokens: int, batch_size: int, world_size: int, pool_batches: int = EVAL_POOL_BATCHES,
) -> list[tuple[list[ChatExample], float, int]]:
    """Every sample's conversation once, as ``(examples, weight, group)`` batches.

    Like :func:`trainer.data.eval_plan`: consecutive shards form groups, a group is sorted
    by duration and cut into batches, the count is padded to a multiple of ``world_size``
    with weight-0 copies.  Examples hold no FLAC bytes (see :class:`ChatEvalSet`).
    """
    length = token_length(tokenizer)
    batches: list[tuple[list[ChatExample], float, int]] = []
    group: list[ChatExample] = []

    def flush() -> None:
        group.sort(key=lambda e: (e.duration, e.conv.id))
        n = batches[-1][2] + 1 if batches else 0
        batches.extend((group[i : i + batch_size], 1.0, n)
                       for i in range(0, len(group), batch_size))
        group.clear()

    for shard in shards:
        samples = [ChatSample(Clip(shard.set_name, shard.split, key, float(meta["duration"])),
                              meta) for key, meta in read_metadata(shard.path, shard.nsamples)]
        refs = {s.clip: AudioRef(shard.path, s.clip.key) for s in samples}
        for conv in conversations_of(samples, templates, seed, length, max_tokens):
            if isinstance(conv, Conversation):
                group.append(_example(conv, refs))
        if len(group) >= pool_batches * world_size * batch_size:
            flush()
    if group:
        flush()
    while batches and len(batches) % world_size:
        batches.append((batches[-1][0], 0.0, batches[-1][2]))
    return batches


class ChatEvalSet(PlannedEvalSet):
    """Decoded once-through chat batches of one rank, read one plan group at a time."""

    @staticmethod
    def clips(item: ChatExample) -> Iterable[tuple[str, str]]:
        return ((r.path, r.key) for r in item.audio)

    @staticmethod
    def with_audio(item: ChatExample, audio: dict[tuple[str, str], AudioRef]) -> ChatExample:
        return replace(item, audio=tuple(audio[r.path, r.key] for r in item.audio))


class ChatDataModule(ShardDataModule):
    """The shard sets of :class:`~trainer.datamodule.ShardDataModule`, as conversations.

    ``templates``: a templates file (default ``conf/chat/templates.yaml``); ``max_tokens``:
    the context every conversation must fit (audio pads included); ``window``: recent
    samples a conversation over several audios may draw from.  Other arguments as
    :class:`~trainer.datamodule.ShardDataModule` (``task_weights`` is not used: every
    training sample leads a conversation, shards drawn by size).
    """

    def __init__(self, tokenizer: Any, templates: str | None = None, max_tokens: int = 2048,
                 window: int = 16, **kwargs: Any) -> None:
        super().__init__(tokenizer, **kwargs)
        self.templates = Templates.load(templates)
        self.max_tokens, self.window = max_tokens, window
        self.collate = ChatCollator(self.tokenizer, kwargs.get("num_mel_bins", 80))

    def stream_config(self) -> ChatStreamConfig:  # type: ignore[override]
        """The chat training stream's settings."""
        return ChatStreamConfig(
            list(self.shards["train"]), self.templates, self.tokenizer, self.max_tokens,
            self.global_batch_size, self.steps_per_epoch, self.seed, self.shuffle_buffer,
            self.pool_batches, self.window, self.per_rank_streams,
        )

    def train_dataloader(self) -> PositionedLoader:
        """The parent's loader (its checks, its step-token counting) over the chat stream."""
        loader = super().train_dataloader()  # builds a stream that is never iterated
        stream = ChatTrainStream(self.stream_config(), self.collate, *self._rank())  # type: ignore[arg-type]
        extra = {"accumulate": loader.accumulate} if hasattr(loader, "accumulate") else {}
        return type(loader)(stream, self._position, num_workers=self.num_workers, **extra)

    def eval_loader(
        self, role: str = "valid", prompt_only: bool = False,
        rank: int | None = None, world: int | None = None, per_rank: int | None = None,
    ) -> DataLoader:
        """Once-through conversations of the ``role`` shards (valid or test); ``rank``,
        ``world`` and ``per_rank`` as :meth:`ShardDataModule.eval_loader`."""
        if rank is None or world is None:
            rank, world = self._rank()
        per_rank = per_rank or max(1, self.eval_batch_size // world)
        plan = chat_eval_plan(self.shards[role], self.templates, self.tokenizer, self.seed,
                              self.max_tokens, per_rank, world)
        data = ChatEvalSet(plan, self.collate, rank, world, prompt_only)
        return DataLoader(data, batch_size=None, num_workers=self.num_workers)
