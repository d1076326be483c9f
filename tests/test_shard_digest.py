"""A shard's digest (what decides that a finished shard is stale) is the hash of its
records as ``dataclasses.asdict`` writes them: built without asdict now (planning hashes
every record of a corpus), it must give the same hashes, so finished shards of an
earlier build stay finished."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from dataset_recipes import RECIPES
from pipeline.record import Label, Record
from pipeline.shards import ShardSpec, plan_shards
from pipeline.stages import BuildOptions


def _asdict_digest(spec: ShardSpec, options: dict) -> str:
    payload = json.dumps({"records": [asdict(r) for r in spec.records], "options": options},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class _Span:
    start: float
    end: float


RECORDS = [
    Record("r", "train", "a", "/x/a.wav", "a.wav", "en",
           (Label("asr", "hello world", (("lang", "en"),)),), align=True),
    Record("r", "train", "b", "/x/b.flac", "sub/b.flac", "unknown",
           (Label("aac", "a dog barks"), Label("aqa", "yes", (("question", "Is it a dog?"),))),
           meta=(("start_s", 1.5), ("end_s", 11.5)), listing="meta.csv", line=7),
    Record("r", "dev", "c-9f3a", "/x/ç.wav", "ç.wav", "zh",
           (Label("asr", "你好", (("lang", "zh"),)),),
           meta=(("aqa_confidence", ("yes", "maybe")), ("nested", {"k": [1, None, True]}))),
    Record("r", "dev", "d", "/x/d.wav", "d.wav", "unknown", (Label("sec", "dog"),),
           meta=(("span", _Span(0.0, 2.5)),)),  # a dataclass in meta: asdict's own form
]


def test_digest_equals_the_asdict_digest_and_is_pinned():
    options = {**BuildOptions().to_json(), "stages_version": 1}
    spec = ShardSpec("r-train-000000.tar", "r", "train", tuple(RECORDS))
    assert spec.digest(options) == _asdict_digest(spec, options)
    one = ShardSpec("r-train-000000.tar", "r", "train", tuple(RECORDS[:1]))
    # pinned: a change here makes every finished shard of every earlier build stale
    assert one.digest({"shard_size": 256}) == (
        "3d08d4dd72db6b0da7ae549d3a50ebdfdc8deee5b2a08dcc515bc48ce564692b")


@pytest.mark.parametrize("name", ["esc50", "clotho_aqa", "musiccaps", "librispeech"])
def test_digests_of_sample_corpora_equal_the_asdict_digests(tmp_path: Path, name: str):
    recipe = RECIPES[name]
    root = recipe.locate(recipe.make_sample(tmp_path / name))
    records = [r for r in recipe.prepare(root) if isinstance(r, Record)]
    specs = plan_shards(records, name, 4)
    options = BuildOptions(shard_size=4).to_json()
    assert len(specs) >= 2
    for spec in specs:
        assert spec.digest(options) == _asdict_digest(spec, options)
