"""Manifest recipe: JSONL/CSV rows -> samples with several tasks, bad rows -> rejects."""

from pathlib import Path

import pytest
from recipe_helpers import parse_corpus

from dataset_recipes import RECIPES
from dataset_recipes.manifest import RECIPE
from pipeline.build import run_build
from pipeline.recipe import CorpusNotFound
from pipeline.stages import BuildOptions
from pipeline.tags import make_entry

FIXTURE = Path(__file__).parent / "fixtures" / "manifest"


def test_registered():
    assert RECIPES["manifest"] is RECIPE


def test_jsonl_rows_merge_per_audio_with_exact_prompts():
    records, _ = parse_corpus(RECIPE, FIXTURE)
    assert [(r.split, r.key, r.source, r.language, r.align) for r in records] == [
        ("train", "clips_a-54d48476", "clips/a.wav", "en", True),
        ("test", "clips_b-6b880d35", "clips/b.wav", "unknown", False),
        ("train", "clips_c-ecf4b639", "clips/c.wav", "unknown", False),
    ]
    entries = [make_entry(lb.task, lb.target, **lb.kwargs) for lb in records[0].labels]
    assert entries == [
        {"task": "asr", "target": "hello world",
         "prompt": "<|startoftranscript|><|en|><|transcribe|><|en|><|notimestamps|><|wo_itn|>"},
        {"task": "s2tt", "target": "hallo Welt",
         "prompt": "<|startoftranscript|><|en|><|translate|><|de|><|notimestamps|><|itn|>"},
    ]
    aqa = records[1].labels[0]
    assert make_entry(aqa.task, aqa.target, **aqa.kwargs) == {
        "task": "aqa", "target": "yes",
        "prompt": "<|startofanalysis|><|en|><|question|>Is a dog barking?<|answer|>"}


def test_bad_rows_are_rejects_with_file_and_line():
    _, rejects = parse_corpus(RECIPE, FIXTURE)
    m = "manifest.jsonl"
    assert [(r.split, r.source, r.line, r.reason) for r in rejects] == [
        ("train", m, 4, "language 'pl' has no Qwen-Audio token; choose one of unknown, en, "
         "zh, de, es, ko, fr, ja, it, zh_tr"),
        ("train", "clips/none.wav", 5,
         "listed in manifest.jsonl line 5 but the audio file is missing"),
        ("unknown", m, 6, "malformed JSON line: Expecting value"),
        ("train", m, 7, "unknown task 'dance'; choose one of asr, srwt, s2tt, aac, asc, ser, "
         "vsc, mna, aqa, sec, mc, mgr"),
        ("train", m, 8, "SRWT target must end with a time token: 'hello world'"),
    ]


def test_csv_manifest_given_as_file(tmp_path):
    records, rejects = parse_corpus(RECIPE, FIXTURE / "csv" / "manifest.csv")
    assert [(r.split, r.source, r.labels) for r in records] == [
        ("valid", "../clips/c.wav", records[0].labels)]
    assert make_entry("mgr", records[0].labels[0].target)["prompt"] == (
        "<|startofanalysis|><|unknown|><|keyword|><|en|><|notimestamps|><|song_meta|>")
    assert [(r.line, r.reason) for r in rejects] == [
        (3, "malformed CSV row: wrong number of fields")]
    (tmp_path / "m.csv").write_text("audio,text\na.wav,x\n")
    with pytest.raises(ValueError, match=r"m\.csv: missing column\(s\) \['task'\]"):
        list(RECIPE.prepare(tmp_path / "m.csv"))
    with pytest.raises(CorpusNotFound, match="RECIPE=manifest SOURCE=sample"):
        RECIPE.locate(tmp_path / "nothing")


def test_sample_builds_with_zero_rejects(tmp_path):
    root = RECIPE.locate(RECIPE.make_sample(tmp_path / "raw"))
    records, rejects = parse_corpus(RECIPE, tmp_path / "raw")
    assert rejects == []
    assert [(r.key, [lb.task for lb in r.labels]) for r in records] == [
        ("clips_espeak_00-de5f43cd", ["asr", "s2tt"]), ("clips_espeak_11-ca731625", ["asr"]),
        ("clips_espeak_17-36fc5419", ["asr"]), ("clips_three_beeps-fa896c61", ["aqa", "aac"])]
    report = run_build(RECIPE, root, tmp_path / "out",
                       BuildOptions(shard_size=4, long_audio=RECIPE.info.long_audio),
                       runner="local", progress=False)
    assert report["rejects"] == 0 and report["samples"] == 4
    assert report["splits"]["test"]["role"] == "test"
