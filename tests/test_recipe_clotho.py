"""Clotho recipe: five captions per clip, keys without dots, rejects with lines."""

from pathlib import Path

from recipe_helpers import parse_corpus

from dataset_recipes import RECIPES
from dataset_recipes.clotho import RECIPE
from pipeline.build import run_build
from pipeline.stages import BuildOptions

FIXTURE = Path(__file__).parent / "fixtures" / "clotho"


def test_registered():
    assert RECIPES["clotho"] is RECIPE


def test_parses_fixture_with_exact_labels_and_rejects():
    records, rejects = parse_corpus(RECIPE, FIXTURE)
    assert [(r.split, r.key, r.source) for r in records] == [
        ("development", "Santa_Motor-d72de16b", "development/Santa Motor.wav"),
        ("development", "door_creak_01-0b801ac0", "development/door.creak.01.wav"),
        ("evaluation", "rain", "evaluation/rain.wav"),
    ]
    assert [lb.target for lb in records[0].labels] == [
        "A machine whines and squeals.", "A motor hums loudly.", "An engine revs up and down.",
        "Machinery whirs steadily.", "A loud mechanical whine.",
    ]
    assert len(records[1].labels) == 4  # the empty caption_2 is a task-level reject
    assert {(r.source, r.line, r.reason, r.task) for r in rejects} == {
        ("clotho_captions_development.csv", 3, "door.creak.01.wav: caption_2 is empty",
         "aac"),
        ("development/missing.wav", 4,
         "listed in clotho_captions_development.csv line 4 but the audio file is missing", None),
        ("clotho_captions_development.csv", 5, "malformed row: expected 6 fields", None),
    }


def test_build_stores_audio_once_with_one_entry_per_caption(tmp_path):
    import json
    import tarfile

    report = run_build(RECIPE, RECIPE.locate(FIXTURE), tmp_path, BuildOptions(shard_size=8),
                       runner="local", progress=False)
    assert report["samples"] == 3
    with tarfile.open(tmp_path / "clotho-development-000000.tar") as tar:
        names = tar.getnames()
        meta = json.load(tar.extractfile("Santa_Motor-d72de16b.json"))
    assert names == ["Santa_Motor-d72de16b.flac", "Santa_Motor-d72de16b.json",
                     "door_creak_01-0b801ac0.flac", "door_creak_01-0b801ac0.json"]
    prompt = "<|startofanalysis|><|unknown|><|caption|><|en|><|notimestamps|><|caption_clotho|>"
    assert [e["prompt"] for e in meta["tasks"]] == [prompt] * 5
    assert meta["tasks"][2]["target"] == "An engine revs up and down."
    assert meta["source"] == {"recipe": "clotho", "split": "development",
                              "file": "development/Santa Motor.wav"}
    assert meta["language"] == "unknown" and meta["duration"] == 0.5
    assert report["splits"]["development"]["tasks"]["aac"]["entries"] == 9
    lines = (tmp_path / "rejects.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all('"source": "' in ln for ln in lines)
