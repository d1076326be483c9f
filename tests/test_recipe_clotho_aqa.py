"""Clotho-AQA recipe: question prompts, one entry per answer, confidence, rejects, build."""

import json
import tarfile
from pathlib import Path

import pytest
from recipe_helpers import download, parse_corpus, record_downloads

from dataset_recipes import RECIPES
from dataset_recipes.clotho_aqa import RECIPE
from pipeline.build import run_build
from pipeline.recipe import CorpusNotFound
from pipeline.stages import BuildOptions
from pipeline.tags import make_entry

FIXTURE = Path(__file__).parent / "fixtures" / "clotho_aqa"


def test_registered() -> None:
    assert RECIPES["clotho_aqa"] is RECIPE


def test_fixture_one_entry_per_answer_with_exact_prompts() -> None:
    records, _ = parse_corpus(RECIPE, FIXTURE)
    assert [(r.split, r.key, r.source) for r in records] == [
        ("train", "river_mouth3", "audio_files/river_mouth3.wav"),
        ("train", "Train_horn-c11fc20c", "audio_files/Train horn.wav"),
        ("val", "Train_horn_2-e223194d", "audio_files/Train horn 2.wav"),
    ]
    entries = [make_entry(lb.task, lb.target, **lb.kwargs) for lb in records[0].labels]
    waves = "<|startofanalysis|><|en|><|question|>Are there waves?<|answer|>"
    assert [(e["prompt"], e["target"]) for e in entries] == [
        (waves, "yes"), (waves, "yes"), (waves, "no"),
        ("<|startofanalysis|><|en|><|question|>What is making noise?<|answer|>",
         "running water"),
    ]
    assert dict(records[0].meta) == {"aqa_confidence": ["yes", "maybe", "no", "yes"]}


def test_bad_inputs_are_rejects_naming_file_and_line() -> None:
    _, rejects = parse_corpus(RECIPE, FIXTURE)
    assert [(r.source, r.line, r.reason) for r in rejects] == [
        ("clotho_aqa_train.csv", 6, "unknown confidence 'perhaps'; expected one of yes, maybe, no"),
        ("clotho_aqa_train.csv", 8, "malformed row: expected 4 fields"),
        ("clotho_aqa_train.csv", 10, "empty field(s) ['file_name']"),
        ("audio_files/missing_clip.wav", 7,
         "listed in clotho_aqa_train.csv line 7 but the audio file is missing"),
        ("audio_files/orphan.wav", None, "audio file has no row in any clotho_aqa_<split>.csv"),
    ]


def test_wrong_csv_raises_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "clotho_aqa_train.csv").write_text("file_name,question,answer\na.wav,q?,yes\n")
    with pytest.raises(ValueError, match=r"clotho_aqa_train\.csv: missing column\(s\) "
                       r"\['QuestionText'\]"):
        list(RECIPE.prepare(RECIPE.locate(tmp_path)))
    with pytest.raises(CorpusNotFound, match="RECIPE=clotho_aqa SOURCE=sample"):
        RECIPE.locate(tmp_path / "nothing")


def test_download_fetches_csvs_and_audio_zip(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls = record_downloads(monkeypatch)
    assert download(RECIPE, tmp_path) == tmp_path
    base = "https://zenodo.org/records/6473207/files/"
    assert calls == [[(base + "clotho_aqa_train.csv", {}), (base + "clotho_aqa_val.csv", {}),
                      (base + "clotho_aqa_test.csv", {}), (base + "audio_files.zip", {})]]


def test_sample_parses_clean_and_builds(tmp_path: Path) -> None:
    root = RECIPE.locate(RECIPE.make_sample(tmp_path / "raw"))
    records, rejects = parse_corpus(RECIPE, tmp_path / "raw")
    assert rejects == []
    assert [(r.split, len(r.labels)) for r in records] == [
        ("train", 6), ("train", 6), ("train", 3), ("val", 3), ("test", 3)]
    report = run_build(RECIPE, root, tmp_path / "out", BuildOptions(shard_size=4),
                       runner="local", progress=False)
    assert (report["rejects"], report["samples"]) == (0, 5)
    shard = next((tmp_path / "out").glob("clotho_aqa-train-*.tar"))
    with tarfile.open(shard) as tar:
        meta = json.load(tar.extractfile("beeping_alarm-5bb23d59.json"))  # type: ignore[arg-type]
    assert [t["target"] for t in meta["tasks"]] == ["yes", "yes", "yes", "no", "no", "no"]
    assert meta["meta"]["aqa_confidence"] == ["yes", "yes", "maybe", "yes", "yes", "yes"]
