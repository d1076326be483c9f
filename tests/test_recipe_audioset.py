"""AudioSet recipe: <|event|>, names in index order, comment lines, missing clips counted."""

from pathlib import Path

import pytest
from recipe_helpers import parse_corpus

from dataset_recipes import RECIPES
from dataset_recipes.audioset import RECIPE
from pipeline.build import run_build
from pipeline.stages import BuildOptions
from pipeline.tags import make_entry

FIXTURE = Path(__file__).parent / "fixtures" / "audioset"
PROMPT = "<|startofanalysis|><|unknown|><|keyword|><|en|><|notimestamps|><|event|>"


def test_registered():
    assert RECIPES["audioset"] is RECIPE
    assert RECIPE.info.splits == {"balanced_train": "train", "unbalanced_train": "train",
                                  "eval": "test"}


def test_parses_fixture_names_in_index_order():
    records, _ = parse_corpus(RECIPE, FIXTURE)
    assert [(r.split, r.key, r.source, r.labels[0].target) for r in records] == [
        ("eval", "--4gqARaEJE", "audio/eval/--4gqARaEJE.wav", "Speech, Dog, Music"),
        ("eval", "--BfvyPmVMo", "audio/eval/Y--BfvyPmVMo.flac", "Male speech, man speaking"),
    ]
    label = records[0].labels[0]
    assert make_entry(label.task, label.target, **label.kwargs) == {
        "task": "sec", "prompt": PROMPT, "target": "Speech, Dog, Music"}


def test_bad_lines_and_missing_clips_are_rejects_with_lines():
    _, rejects = parse_corpus(RECIPE, FIXTURE)
    seg = "balanced_train_segments.csv"
    assert [(r.split, r.source, r.line, r.reason) for r in rejects] == [
        ("balanced_train", "audio/balanced_train/-0DdlOuIFUI.wav", 4,
         "clip missing (line 4 of balanced_train_segments.csv): cut 50.000-60.000 s of "
         "https://youtu.be/-0DdlOuIFUI"),
        ("balanced_train", seg, 5,
         "unknown label MID(s) ['/m/0000000'] (not in class_labels_indices.csv)"),
        ("balanced_train", seg, 6,
         'malformed line: expected 4 fields (YTID, start, end, "MIDs"), found 2'),
        ("balanced_train", "audio/balanced_train/zzzzzzzzzzz.wav", None,
         "clip has no row in balanced_train_segments.csv"),
    ]  # unbalanced_train has no audio/ folder: not built, nothing reported


def test_broken_label_file_raises_naming_it(tmp_path):
    (tmp_path / "class_labels_indices.csv").write_text("index,mid,display_name\nx,/m/1,A\n")
    (tmp_path / "eval_segments.csv").write_text("# a\n# b\n# c\n")
    with pytest.raises(ValueError, match=r"class_labels_indices\.csv line 2"):
        list(RECIPE.prepare(tmp_path))


def test_sample_builds_with_zero_rejects(tmp_path):
    root = RECIPE.locate(RECIPE.make_sample(tmp_path / "raw"))
    records, rejects = parse_corpus(RECIPE, tmp_path / "raw")
    assert rejects == []
    assert [r.labels[0].target for r in records] == [
        "Speech", "Speech, Music", "Music", "Beep, bleep, Sine wave", "White noise",
        "Beep, bleep"]
    report = run_build(RECIPE, root, tmp_path / "out",
                       BuildOptions(shard_size=4, long_audio=RECIPE.info.long_audio),
                       runner="local", progress=False)
    assert report["rejects"] == 0 and report["samples"] == 6
    assert report["splits"]["eval"]["role"] == "test"
    assert report["splits"]["eval"]["tasks"]["sec"]["prompts"] == [PROMPT]
