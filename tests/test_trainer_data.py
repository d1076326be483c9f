"""Tokenizer ids, shard reading, training streams and once-through evaluation."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from trainer_shards import sample_members, write_mixture, write_set, write_tar

import trainer.data
from pipeline.format import SAMPLE_RATE
from pipeline.tags import AUDIO_SPECIAL_TOKENS, QWEN_SPECIAL_TOKENS
from trainer.data import EvalSet, StreamConfig, eval_batches, eval_plan, train_batches
from trainer.datamodule import ShardDataModule
from trainer.reader import FormatError, pairs_of, read_index, read_mixture, read_shard
from trainer.tokenizer import QwenAudioTokenizer, build_tokenizer


@pytest.fixture(scope="module")
def qwen() -> QwenAudioTokenizer:
    return QwenAudioTokenizer.from_tiktoken()


def test_special_token_ids_match_the_release(qwen: QwenAudioTokenizer) -> None:
    assert qwen.num_base == 151643
    assert qwen.eot_id == 151643
    assert qwen.audio_pad_id == 151851
    assert qwen.token_to_id("<|startoftranscript|>") == 151852
    assert qwen.token_to_id("<|0.00|>") == 151871
    assert qwen.token_to_id("<|30.00|>") == 151871 + 3000
    assert qwen.vocab_size == 151643 + len(QWEN_SPECIAL_TOKENS) + len(AUDIO_SPECIAL_TOKENS)
    ids = qwen.encode("<|startoftranscript|><|en|>MISTER QUILTER<|1.25|>")
    assert ids[:2] == [151852, qwen.token_to_id("<|en|>")]
    assert ids[-1] == qwen.token_to_id("<|1.25|>")
    assert qwen.decode(ids) == "<|startoftranscript|><|en|>MISTER QUILTER<|1.25|>"


def test_fallback_vocabulary_keeps_the_special_token_strings() -> None:
    tok = build_tokenizer("shards", texts=["a dog barks", "rain on a roof"] * 5)
    assert tok.num_base < 1000
    assert tok.audio_pad_id == tok.num_base + len(QWEN_SPECIAL_TOKENS)
    text = "<|startofanalysis|><|unknown|>a dog barks at night"
    assert tok.decode(tok.encode(text)) == text
    with pytest.raises(ValueError, match=r"tokenizer\.path"):
        build_tokenizer("path")


def test_reader_yields_samples_and_pairs(tmp_path: Path) -> None:
    index = write_set(tmp_path, "speechy", {"train": [2]})
    shard = read_index(index)[0]
    samples = list(read_shard(shard.path, shard.nsamples))
    assert [k for k, _, _ in samples] == ["speechy_train_0000", "speechy_train_0001"]
    audio = samples[0][2].read()
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) / SAMPLE_RATE - samples[0][1]["duration"]) < 0.01
    assert [p.task for p in pairs_of(shard)] == ["asr", "srwt", "asr", "srwt"]
    with pytest.raises(RuntimeError, match="not loaded"):
        pairs_of(shard, audio=False)[0].audio.read()  # metadata-only pairs hold no FLAC


@pytest.mark.parametrize(
    ("members", "error"),
    [
        (sample_members("a.b"),
         r"member 'a\.b\.flac': unknown extension 'b\.flac'.*keys must not contain dots"),
        (sample_members("a")[:1] + sample_members("b"), r"key 'a' has no json member"),
        (sample_members("a")[:1] + sample_members("b") + sample_members("a")[1:],
         r"key 'a' has no json member"),  # not adjacent
        (sample_members("a")[:1] + sample_members("a"), r"key 'a' has two 'flac' members"),
        (sample_members("a") + sample_members("b") + sample_members("a"),
         r"key 'a' appears twice"),
        ([("dir/a" + n[1:], d) for n, d in sample_members("a")],
         r"member 'dir/a\.flac': directories are not part of the format"),
    ],
)
def test_reader_refuses_samples_that_are_not_flac_plus_json(
    tmp_path: Path, members: list, error: str
) -> None:
    tar = write_tar(tmp_path / "bad-train-000000.tar", members)
    with pytest.raises(FormatError, match=error) as exc:
        list(read_shard(str(tar)))
    assert str(exc.value).startswith(f"{tar}: ")  # the error names the shard


def test_bad_paths_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make demo"):
        read_mixture(tmp_path / "mixture.json")
    (tmp_path / "index.json").write_text(json.dumps({"__kind__": "other"}))
    with pytest.raises(FormatError, match="not a shard index"):
        read_index(tmp_path / "index.json")


def _stream(tmp_path: Path, train: tuple[int, ...], steps: int = 5) -> StreamConfig:
    mix = read_mixture(write_mixture(tmp_path, train=train))
    by_task: dict = {}
    for s in mix["shards"]["train"]:
        for t in s.tasks:
            by_task.setdefault(t, []).append(s)
    return StreamConfig(by_task, mix["task_weights"], 8, steps, seed=3, shuffle_buffer=4,
                        pool_batches=2)


def test_equal_steps_per_rank_with_unequal_shards(tmp_path: Path) -> None:
    cfg = _stream(tmp_path, train=(9, 1, 2), steps=5)
    per_rank = [list(train_batches(cfg, 0, r, 2)) for r in range(2)]
    assert [len(b) for b in per_rank] == [5, 5]
    assert all(len(batch) == 4 for batches in per_rank for batch in batches)
    one = list(train_batches(cfg, 0, 0, 1))
    # ranks split each global batch: together they hold exactly the 1-process batch
    for step in range(5):
        merged = Counter((p.key, p.task, p.target) for r in range(2) for p in per_rank[r][step])
        assert merged == Counter((p.key, p.task, p.target) for p in one[step])
    assert list(train_batches(cfg, 1, 0, 1)) != one  # a new epoch reshuffles
    assert [p.key for b in list(train_batches(cfg, 0, 0, 1)) for p in b] == [
        p.key for b in one for p in b
    ]  # deterministic


def test_batches_group_similar_durations(tmp_path: Path) -> None:
    cfg = _stream(tmp_path, train=(12, 12), steps=6)
    spread = [max(p.duration for p in b) - min(p.duration for p in b)
              for b in train_batches(cfg, 0, 0, 1)]
    assert sum(spread) / len(spread) < 1.6  # durations span 0.5-3.0 s overall


def test_world_size_must_divide_the_global_batch(tmp_path: Path) -> None:
    cfg = _stream(tmp_path, train=(4,))
    with pytest.raises(ValueError, match="multiple of 3"):
        next(train_batches(cfg, 0, 0, 3))


@pytest.mark.parametrize("pool", [16, 1])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_validation_reads_every_entry_exactly_once(tmp_path: Path, world: int, pool: int) -> None:
    mix = read_mixture(write_mixture(tmp_path, valid=(3, 2)))
    shards = mix["shards"]["valid"]
    expected = Counter((p.key, p.task, p.target) for s in shards for p in pairs_of(s))
    ranks = [eval_batches(shards, 3, r, world, pool_batches=pool) for r in range(world)]
    assert len({len(b) for b in ranks}) == 1  # same number of forward passes everywhere
    seen = Counter(
        (p.key, p.task, p.target) for b in ranks for pairs, w in b if w > 0 for p in pairs
    )
    assert seen == expected


def test_eval_set_reads_audio_one_group_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mix = read_mixture(write_mixture(tmp_path, valid=(3, 2)))
    shards = mix["shards"]["valid"]
    expected = Counter((p.key, p.task, p.target) for s in shards for p in pairs_of(s))
    plan = eval_plan(shards, 2, 1, pool_batches=1)
    groups = {g for _, _, g in plan}
    assert len(groups) > 1 and all(p.audio.data is None for b, _, _ in plan for p in b)
    loads: list[int] = []
    load_audio = trainer.data.load_audio

    def spy(wanted: set) -> dict:
        loads.append(len(wanted))
        return load_audio(wanted)

    monkeypatch.setattr(trainer.data, "load_audio", spy)

    def collate(pairs: list, weight: float, prompt_only: bool = False) -> list:
        return [(p.key, p.task, p.target, len(p.audio.read()), weight) for p in pairs]

    data = EvalSet(shards, 2, collate, 0, 1, pool_batches=1)  # type: ignore[arg-type]
    rows = [row for batch in data for row in batch]
    assert Counter(r[:3] for r in rows if r[4] > 0) == expected
    assert all(r[3] > 0 for r in rows)  # decoded audio
    clips = {(p.audio.path, p.key) for s in shards for p in pairs_of(s, audio=False)}
    assert len(loads) == len(groups) and sum(loads) == len(clips)  # each clip read once


def test_datamodule_loader_resumes_mid_epoch_and_splits_workers(tmp_path: Path) -> None:
    mixture = write_mixture(tmp_path)
    tok = QwenAudioTokenizer.from_texts(["a dog barks MISTER QUILTER"], 20)
    dm = ShardDataModule(lambda texts: tok, mixture=str(mixture), global_batch_size=4,
                         steps_per_epoch=4, seed=1, shuffle_buffer=4, pool_batches=2)
    assert dm.steps_per_epoch == 4 and set(dm.shards_by_task()) == {"asr", "srwt", "aac"}
    loader = dm.train_dataloader()
    full = [b["keys"] for b in loader]
    assert len(full) == 4
    loader.position = lambda: (0, 3)
    assert [b["keys"] for b in loader] == full[3:]
    dm.num_workers = 2
    workers = dm.train_dataloader()
    assert [b["keys"] for b in workers] == full  # in-order round robin over 2 workers
    batch = next(iter(dm.eval_loader("valid")))
    assert batch["input_features"].shape[1] == 80
    assert int(batch["feature_lens"].max()) == batch["input_features"].shape[2]
