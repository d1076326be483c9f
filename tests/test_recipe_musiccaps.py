"""MusicCaps recipe: <|music_description|>, user-cut clip naming, missing clips counted."""

from pathlib import Path

import pytest
from recipe_helpers import parse_corpus

from dataset_recipes import RECIPES
from dataset_recipes.musiccaps import RECIPE
from pipeline.build import run_build
from pipeline.stages import BuildOptions
from pipeline.tags import make_entry

FIXTURE = Path(__file__).parent / "fixtures" / "musiccaps"
PROMPT = ("<|startofanalysis|><|unknown|><|caption|><|en|><|notimestamps|>"
          "<|music_description|>")


def test_registered():
    assert RECIPES["musiccaps"] is RECIPE
    assert RECIPE.info.splits == {"train": "train", "eval": "test"}


def test_parses_fixture_with_exact_captions_and_clip_names():
    records, _ = parse_corpus(RECIPE, FIXTURE)
    assert [(r.split, r.key, r.source, r.labels[0].target) for r in records] == [
        ("eval", "-0Gj8-vB1q4", "audio/-0Gj8-vB1q4.wav",
         "A slow ballad with sustained strings. The recording is noisy."),
        ("train", "-0vPFx-wRRI", "audio/Y-0vPFx-wRRI.flac",
         "A solo acoustic guitar strums chords."),
    ]
    label = records[1].labels[0]
    assert make_entry(label.task, label.target, **label.kwargs) == {
        "task": "mc", "prompt": PROMPT, "target": "A solo acoustic guitar strums chords."}


def test_missing_and_bad_rows_are_rejects_with_lines():
    _, rejects = parse_corpus(RECIPE, FIXTURE)
    assert [(r.split, r.source, r.line, r.reason) for r in rejects] == [
        ("train", "audio/0bRUkLsttto.wav", 5, "clip missing (line 5 of musiccaps-public.csv): "
         "cut 10-20 s of https://youtu.be/0bRUkLsttto"),
        ("unknown", "musiccaps-public.csv", 6, "malformed row: expected 9 fields"),
        ("unknown", "musiccaps-public.csv", 7, "is_audioset_eval is 'maybe', not True or False"),
        ("unknown", "audio/zzzzzzzzzzz.wav", None, "clip has no row in musiccaps-public.csv"),
    ]


def test_build_counts_missing_clips_and_goes_on(tmp_path):
    report = run_build(RECIPE, RECIPE.locate(FIXTURE), tmp_path, BuildOptions(shard_size=4),
                       runner="local", progress=False)
    assert report["samples"] == 2 and report["rejects"] == 4


def test_wrong_csv_raises_naming_it(tmp_path):
    (tmp_path / "musiccaps-public.csv").write_text("ytid,caption\nabc,hello\n")
    with pytest.raises(ValueError, match=r"musiccaps-public\.csv: missing column"):
        list(RECIPE.prepare(tmp_path))


def test_sample_builds_with_zero_rejects(tmp_path):
    root = RECIPE.locate(RECIPE.make_sample(tmp_path / "raw"))
    records, rejects = parse_corpus(RECIPE, tmp_path / "raw")
    assert rejects == [] and [r.split for r in records].count("eval") == 2
    report = run_build(RECIPE, root, tmp_path / "out",
                       BuildOptions(shard_size=4, long_audio=RECIPE.info.long_audio),
                       runner="local", progress=False)
    assert report["rejects"] == 0 and report["samples"] == 5
    assert report["splits"]["train"]["tasks"]["mc"]["prompts"] == [PROMPT]
