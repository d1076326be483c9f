"""ESC-50 recipe: <|event|> prompt, readable class names, fold splits, rejects with lines."""

from pathlib import Path

import pytest
from recipe_helpers import parse_corpus

from dataset_recipes import RECIPES
from dataset_recipes.esc50 import RECIPE
from pipeline.build import run_build
from pipeline.recipe import CorpusNotFound
from pipeline.stages import BuildOptions
from pipeline.tags import make_entry

FIXTURE = Path(__file__).parent / "fixtures" / "esc50"
PROMPT = "<|startofanalysis|><|unknown|><|keyword|><|en|><|notimestamps|><|event|>"


def test_registered():
    assert RECIPES["esc50"] is RECIPE
    assert RECIPE.info.long_audio == "reject" and RECIPE.download is not None


def test_parses_fixture_with_exact_targets_and_prompts():
    records, _ = parse_corpus(RECIPE, FIXTURE)
    assert [(r.split, r.key, r.source, r.labels[0].target) for r in records] == [
        ("fold1", "1-100032-A-0", "audio/1-100032-A-0.wav", "dog"),
        ("fold1", "1-115545-A-48", "audio/1-115545-A-48.wav", "fireworks"),
        ("fold2", "2-50665-A-20", "audio/2-50665-A-20.wav", "crying baby"),
        ("fold5", "5-9032-A-38", "audio/5-9032-A-38.wav", "clock tick"),
    ]
    assert all(r.language == "unknown" and len(r.labels) == 1 for r in records)
    label = records[2].labels[0]
    assert make_entry(label.task, label.target, **label.kwargs) == {
        "task": "sec", "prompt": PROMPT, "target": "crying baby"}


def test_bad_rows_are_rejects_naming_file_and_line():
    _, rejects = parse_corpus(RECIPE, FIXTURE)
    csv = "meta/esc50.csv"
    assert [(r.split, r.source, r.line, r.reason) for r in rejects] == [
        ("fold5", csv, 5, "unknown category 'unicorn' (not one of the 50 ESC-50 classes)"),
        ("fold3", csv, 7, "target '13' does not match category 'crackling_fire'"),
        ("fold4", "audio/4-1234-A-41.wav", 8,
         "listed in esc50.csv line 8 but the audio file is missing"),
        ("unknown", csv, 9, "malformed row: expected 7 fields"),
        ("fold3", "audio/3-777-A-9.wav", None, "audio file has no row in esc50.csv"),
    ]


def test_locate_accepts_corpus_folder_and_explains_a_wrong_one(tmp_path):
    assert RECIPE.locate(FIXTURE / "ESC-50-master") == FIXTURE / "ESC-50-master"
    with pytest.raises(CorpusNotFound, match="make build-dataset RECIPE=esc50 SOURCE=sample"):
        RECIPE.locate(tmp_path)


def test_missing_column_names_the_file(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "esc50.csv").write_text("filename,fold\n1-1-A-0.wav,1\n")
    with pytest.raises(ValueError, match=r"esc50\.csv: missing column"):
        list(RECIPE.prepare(tmp_path))


def test_sample_builds_with_zero_rejects(tmp_path):
    root = RECIPE.locate(RECIPE.make_sample(tmp_path / "raw"))
    records, rejects = parse_corpus(RECIPE, tmp_path / "raw")
    assert rejects == [] and len(records) == 25
    assert {r.split for r in records} == {"fold1", "fold2", "fold3", "fold4", "fold5"}
    assert sorted({r.labels[0].target for r in records}) == [
        "church bells", "clock alarm", "clock tick", "rain", "siren"]
    report = run_build(RECIPE, root, tmp_path / "out",
                       BuildOptions(shard_size=8, long_audio=RECIPE.info.long_audio),
                       runner="local", progress=False)
    assert report["rejects"] == 0 and report["samples"] == 25
    assert report["splits"]["fold5"]["role"] == "test"
    assert report["splits"]["fold1"]["tasks"]["sec"]["prompts"] == [PROMPT]
