"""CoVoST 2 recipe: S2TT per pair + ASR from Common Voice v4, language rejects, mp3, build.

The fixture holds a real Common Voice clip (common_voice_en_651325.mp3, CC0, Mozilla
Common Voice)."""

from pathlib import Path

import pytest
from recipe_helpers import parse_corpus

from dataset_recipes import RECIPES
from dataset_recipes.covost2 import RECIPE
from pipeline import audio
from pipeline.build import run_build
from pipeline.recipe import CorpusNotFound
from pipeline.stages import BuildOptions
from pipeline.tags import make_entry

FIXTURE = Path(__file__).parent / "fixtures" / "covost2"


def test_registered() -> None:
    assert RECIPES["covost2"] is RECIPE and RECIPE.download is None
    assert "commonvoice.mozilla.org" in RECIPE.info.download_hint


def test_fixture_prompts_and_targets() -> None:
    records, _ = parse_corpus(RECIPE, FIXTURE)
    assert [(r.split, r.key, r.source, r.language) for r in records] == [
        ("train", "common_voice_en_651325", "en/clips/common_voice_en_651325.mp3", "en"),
        ("test", "common_voice_fr_17299384", "fr/clips/common_voice_fr_17299384.mp3", "fr"),
    ]
    entries = [make_entry(lb.task, lb.target, **lb.kwargs) for lb in records[0].labels]
    assert entries == [
        {"task": "asr", "target": "the museum is closed today",  # <|wo_itn|>: spoken form
         "prompt": "<|startoftranscript|><|en|><|transcribe|><|en|><|notimestamps|><|wo_itn|>"},
        {"task": "s2tt", "target": "Das Museum ist heute geschlossen.",
         "prompt": "<|startoftranscript|><|en|><|translate|><|de|><|notimestamps|><|itn|>"},
        {"task": "s2tt", "target": "博物馆今天关门。",
         "prompt": "<|startoftranscript|><|en|><|translate|><|zh|><|notimestamps|><|itn|>"},
    ]
    fr = [make_entry(lb.task, lb.target, **lb.kwargs) for lb in records[1].labels]
    assert [(e["prompt"], e["target"]) for e in fr] == [
        ("<|startoftranscript|><|fr|><|transcribe|><|fr|><|notimestamps|><|wo_itn|>",
         "il fait beau aujourd'hui"),
        ("<|startoftranscript|><|fr|><|translate|><|en|><|notimestamps|><|itn|>",
         "The weather is nice today."),
    ]
    clip = audio.load(records[0].audio)  # the real 48 kHz Common Voice mp3
    assert abs(clip.duration - 2.38) < 0.06


def test_bad_inputs_are_rejects_naming_file_line_and_language() -> None:
    _, rejects = parse_corpus(RECIPE, FIXTURE)
    assert [(r.source, r.line, r.reason) for r in rejects] == [
        ("en/validated.tsv", 5, "malformed row: expected 8 tab-separated fields"),
        ("en/covost_v2.en_ca.tsv", None, "language ca has no Qwen-Audio token; 1 row(s) "
         "skipped (tokens exist for en, de, es, fr, it, ja, zh-CN)"),
        ("en/covost_v2.en_de.tsv", 3,
         "common_voice_en_999.mp3 is not in validated.tsv (CoVoST 2 needs Common Voice v4)"),
        ("en/covost_v2.en_de.tsv", 5, "malformed row: expected 4 tab-separated fields"),
        ("en/covost_v2.en_de.tsv", 6,
         "unknown split 'validation'; expected one of train, train_covost, dev, test"),
        ("en/clips/common_voice_en_100.mp3", 4,
         "listed in covost_v2.en_de.tsv line 4 but the audio file is missing"),
    ]


def test_wrong_tsv_raises_and_locate_explains(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "validated.tsv").write_text("client_id\tpath\tsentence\n")
    (tmp_path / "en" / "covost_v2.en_de.tsv").write_text("path\ttarget\na.mp3\tx\n")
    with pytest.raises(ValueError, match=r"covost_v2\.en_de\.tsv: missing column\(s\)"):
        list(RECIPE.prepare(RECIPE.locate(tmp_path)))
    with pytest.raises(CorpusNotFound, match="RECIPE=covost2 SOURCE=sample"):
        RECIPE.locate(tmp_path / "en" / "clips")


def test_sample_parses_clean_and_builds(tmp_path: Path) -> None:
    root = RECIPE.locate(RECIPE.make_sample(tmp_path / "raw"))
    records, rejects = parse_corpus(RECIPE, tmp_path / "raw")
    assert rejects == []
    assert [sum(r.split == s for r in records) for s in ("train", "dev", "test")] == [4, 1, 1]
    assert [lb.task for lb in records[0].labels] == ["asr", "s2tt", "s2tt"]
    assert records[0].labels[0].target == "the quick brown fox jumps over the lazy dog"
    report = run_build(RECIPE, root, tmp_path / "out", BuildOptions(shard_size=4),
                       runner="local", progress=False)
    assert (report["rejects"], report["samples"]) == (0, 6)
