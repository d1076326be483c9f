"""VocalSound recipe: released vsc prompt, display-name targets, datafile lines in rejects."""

import json
from pathlib import Path

import pytest
from recipe_helpers import parse_corpus

from dataset_recipes import RECIPES
from dataset_recipes.vocalsound import RECIPE
from pipeline.build import run_build
from pipeline.stages import BuildOptions
from pipeline.tags import make_entry

FIXTURE = Path(__file__).parent / "fixtures" / "vocalsound"
PROMPT = ("<|startofanalysis|><|en|><|keyword|><|en|><|notimestamps|>"
          "<|vocal_classification|>")


def test_registered():
    assert RECIPES["vocalsound"] is RECIPE


def test_parses_fixture_with_exact_targets_and_prompt():
    records, _ = parse_corpus(RECIPE, FIXTURE)
    assert [(r.split, r.key, r.source, r.labels[0].target) for r in records] == [
        ("tr", "f0003_0_cough", "audio_16k/f0003_0_cough.wav", "Cough"),
        ("tr", "f0003_0_laughter", "audio_16k/f0003_0_laughter.wav", "Laughter"),
        ("val", "m0083_0_throatclearing", "audio_16k/m0083_0_throatclearing.wav",
         "Throat clearing"),
        ("te", "f0101_0_sneeze", "audio_16k/f0101_0_sneeze.wav", "Sneeze"),
    ]
    assert {r.language for r in records} == {"en"}
    label = records[2].labels[0]
    assert make_entry(label.task, label.target, **label.kwargs) == {
        "task": "vsc", "prompt": PROMPT, "target": "Throat clearing"}


def test_bad_entries_are_rejects_with_datafile_line():
    _, rejects = parse_corpus(RECIPE, FIXTURE)
    tr = "datafiles/tr.json"
    assert [(r.split, r.source, r.line, r.reason) for r in rejects] == [
        ("tr", "audio_16k/f0003_0_sigh.wav", 11,
         "listed in tr.json line 11 but the audio file is missing"),
        ("tr", tr, 15, "labels '/m/01hsr_' disagree with the file name 'm0001_0_cough.wav'"),
        ("tr", tr, 19, "unknown label 'yawn' in 'm0002_0_yawn.wav'; known: laughter, sigh, "
         "cough, throatclearing, sneeze, sniff"),
        ("tr", tr, 23, "entry has no 'wav' string"),
        ("unknown", "audio_16k/f9999_0_sniff.wav", None,
         "audio file is listed in no datafiles/{tr,val,te}.json"),
    ]


def test_broken_datafile_raises_naming_it(tmp_path):
    (tmp_path / "audio_16k").mkdir()
    (tmp_path / "datafiles").mkdir()
    (tmp_path / "datafiles" / "tr.json").write_text('{"data": [')
    with pytest.raises(ValueError, match=r"tr\.json: not valid JSON"):
        list(RECIPE.prepare(tmp_path))
    (tmp_path / "datafiles" / "tr.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match=r"tr\.json: expected \{\"data\""):
        list(RECIPE.prepare(tmp_path))


def test_sample_is_audible_and_builds_with_zero_rejects(tmp_path):
    import soundfile as sf

    root = RECIPE.locate(RECIPE.make_sample(tmp_path / "raw"))
    records, rejects = parse_corpus(RECIPE, tmp_path / "raw")
    assert rejects == [] and len(records) == 24
    assert sorted({r.labels[0].target for r in records}) == [
        "Cough", "Laughter", "Sigh", "Sneeze", "Sniff", "Throat clearing"]
    for rec in records:  # never silence: every clip has a loud part
        x, _ = sf.read(rec.audio)
        assert abs(x).max() > 0.5
    report = run_build(RECIPE, root, tmp_path / "out",
                       BuildOptions(shard_size=4, long_audio=RECIPE.info.long_audio),
                       runner="local", progress=False)
    assert report["rejects"] == 0 and report["samples"] == 24
    assert {n: s["samples"] for n, s in report["splits"].items()} == {"te": 6, "tr": 12,
                                                                      "val": 6}
    assert report["splits"]["tr"]["tasks"]["vsc"]["prompts"] == [PROMPT]
