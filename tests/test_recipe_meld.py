"""MELD recipe: emotion targets, audio decoded from mp4, rejects with lines, sample, build."""

import tarfile
from pathlib import Path

import pytest
from recipe_helpers import download, parse_corpus, record_downloads

from dataset_recipes import RECIPES
from dataset_recipes.meld import RECIPE
from pipeline import audio
from pipeline.build import run_build
from pipeline.recipe import CorpusNotFound
from pipeline.stages import BuildOptions
from pipeline.tags import make_entry

FIXTURE = Path(__file__).parent / "fixtures" / "meld"
SER = "<|startofanalysis|><|en|><|keyword|><|en|><|notimestamps|><|emotion_recognition|>"


def test_registered() -> None:
    assert RECIPES["meld"] is RECIPE


def test_fixture_targets_prompt_and_mp4_audio() -> None:
    records, _ = parse_corpus(RECIPE, FIXTURE)
    assert [(r.split, r.key, r.source, r.labels[0].target) for r in records] == [
        ("train", "dia0_utt0", "train_splits/dia0_utt0.mp4", "neutral"),
        ("train", "dia0_utt1", "train_splits/dia0_utt1.mp4", "joy"),
        ("dev", "dia0_utt0", "dev_splits_complete/dia0_utt0.mp4", "sadness"),
        ("test", "dia0_utt0", "output_repeated_splits_test/dia0_utt0.mp4", "surprise"),
    ]
    label = records[1].labels[0]
    assert make_entry(label.task, label.target, **label.kwargs) == {
        "task": "ser", "prompt": SER, "target": "joy"}
    clip = audio.load(records[0].audio)  # the mp4's AAC track, through PyAV
    assert 0.45 < clip.duration < 0.6 and float(abs(clip.samples).max()) > 0.05


def test_bad_inputs_are_rejects_naming_file_and_line() -> None:
    _, rejects = parse_corpus(RECIPE, FIXTURE)
    assert [(r.source, r.line, r.reason) for r in rejects] == [
        ("train_sent_emo.csv", 4, "unknown emotion 'boredom'; known: neutral, joy, sadness, "
         "anger, surprise, fear, disgust"),
        ("train_splits/dia1_utt1.mp4", 5,
         "listed in train_sent_emo.csv line 5 but the media file is missing"),
        ("train_sent_emo.csv", 6, "malformed row: expected 11 fields"),
        ("train_sent_emo.csv", 7, "Dialogue_ID 'x' / Utterance_ID '2' are not whole numbers"),
        ("train_splits/dia9_utt9.mp4", None, "media file has no row in train_sent_emo.csv"),
    ]


def test_locate_and_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert RECIPE.locate(FIXTURE) == FIXTURE / "MELD.Raw"
    with pytest.raises(CorpusNotFound, match="RECIPE=meld SOURCE=sample"):
        RECIPE.locate(tmp_path)
    def fill(target: Path) -> None:  # the archive's CSVs and one split archive inside
        (target / "MELD.Raw").mkdir()
        (target / "MELD.Raw" / "dev_sent_emo.csv").write_text("x\n")
        with tarfile.open(target / "MELD.Raw" / "dev.tar.gz", "w:gz") as tar:
            tar.add(FIXTURE / "MELD.Raw" / "dev_splits_complete", "dev_splits_complete")

    calls = record_downloads(monkeypatch, fill)
    assert download(RECIPE, tmp_path) == tmp_path
    assert calls == [[("http://web.eecs.umich.edu/~mihalcea/downloads/MELD.Raw.tar.gz", {})]]
    assert sorted(p.name for p in (tmp_path / "MELD.Raw" / "dev_splits_complete").iterdir()) == \
        sorted(p.name for p in (FIXTURE / "MELD.Raw" / "dev_splits_complete").iterdir())


def test_sample_parses_clean_and_builds(tmp_path: Path) -> None:
    root = RECIPE.locate(RECIPE.make_sample(tmp_path / "raw"))
    records, rejects = parse_corpus(RECIPE, tmp_path / "raw")
    assert rejects == []
    assert [sum(r.split == s for r in records) for s in ("train", "dev", "test")] == [6, 2, 2]
    report = run_build(RECIPE, root, tmp_path / "out", BuildOptions(shard_size=4),
                       runner="local", progress=False)
    assert (report["rejects"], report["samples"]) == (0, 10)
