"""AISHELL-1 recipe: spaces removed, split from the audio folder, rejects, unpack, build."""

import shutil
from pathlib import Path

import pytest
from recipe_helpers import download, parse_corpus, record_downloads

from dataset_recipes import RECIPES
from dataset_recipes.aishell1 import RECIPE, unpack_speakers
from pipeline.build import run_build
from pipeline.recipe import CorpusNotFound
from pipeline.stages import BuildOptions
from pipeline.tags import make_entry

FIXTURE = Path(__file__).parent / "fixtures" / "aishell1"
TRANS = "transcript/aishell_transcript_v0.8.txt"


def test_registered() -> None:
    assert RECIPES["aishell1"] is RECIPE
    assert RECIPE.info.tasks == ("asr", "srwt")


def test_fixture_targets_without_spaces_and_asr_prompt() -> None:
    records, _ = parse_corpus(RECIPE, FIXTURE)
    assert [(r.split, r.key, r.source, r.labels[0].target) for r in records] == [
        ("train", "BAC009S0002W0122", "wav/train/S0002/BAC009S0002W0122.wav",
         "而对楼市成交抑制作用最大的限购"),
        ("dev", "BAC009S0724W0121", "wav/dev/S0724/BAC009S0724W0121.wav", "我们明天去北京"),
        ("test", "BAC009S0764W0122", "wav/test/S0764/BAC009S0764W0122.wav", "市场需求持续增长"),
    ]
    assert all(r.align and r.language == "zh" for r in records)
    label = records[0].labels[0]
    assert make_entry(label.task, label.target, **label.kwargs) == {
        "task": "asr",
        "prompt": "<|startoftranscript|><|zh|><|transcribe|><|zh|><|notimestamps|><|wo_itn|>",
        "target": "而对楼市成交抑制作用最大的限购"}


def test_bad_inputs_are_rejects_naming_file_and_line() -> None:
    _, rejects = parse_corpus(RECIPE, FIXTURE)
    assert [(r.source, r.line, r.reason) for r in rejects] == [
        (TRANS, 2, "BAC009S0002W0123: listed but wav/<split>/S0002/BAC009S0002W0123.wav is "
         "missing"),
        (TRANS, 4, "malformed transcript line (want 'BAC009S<spk>W<utt> <words>')"),
        (TRANS, 7, "BAC009S0002W0122 listed twice (first on line 1)"),
        (TRANS, 5, "speaker S0916: 2 transcript line(s) but no audio folder wav/<split>/S0916 "
         "(unpack wav/S0916.tar.gz inside wav/)"),
        ("wav/test/S0764/BAC009S0764W0130.wav", None,
         "audio file has no line in aishell_transcript_v0.8.txt"),
    ]


def test_unpack_speakers_makes_the_packed_speaker_usable(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "raw")
    root = RECIPE.locate(tmp_path / "raw")
    assert unpack_speakers(root) == 1
    assert unpack_speakers(root) == 0  # already unpacked: skipped
    records, rejects = parse_corpus(RECIPE, tmp_path / "raw")
    assert ("test", "BAC009S0916W0121", "市场需求") in [
        (r.split, r.key, r.labels[0].target) for r in records]
    assert [r.reason for r in rejects if r.line == 6] == [
        "BAC009S0916W0122: listed but wav/<split>/S0916/BAC009S0916W0122.wav is missing"]


def test_locate_and_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert RECIPE.locate(FIXTURE / "data_aishell") == FIXTURE / "data_aishell"
    with pytest.raises(CorpusNotFound, match="RECIPE=aishell1 SOURCE=sample"):
        RECIPE.locate(tmp_path)
    calls = record_downloads(monkeypatch, lambda target: shutil.copytree(
        FIXTURE / "data_aishell", target / "data_aishell"))
    assert download(RECIPE, tmp_path) == tmp_path
    assert calls == [[("https://www.openslr.org/resources/33/data_aishell.tgz",
                       {"md5": "2f494334227864a8a8fec932999db9d8"}),
                      ("https://www.openslr.org/resources/33/resource_aishell.tgz",
                       {"md5": "957d480a0fcac85fc18e550756f624e5"})]]
    assert (tmp_path / "data_aishell/wav/test/S0916/BAC009S0916W0121.wav").is_file()


def test_sample_parses_clean_and_builds(tmp_path: Path) -> None:
    root = RECIPE.locate(RECIPE.make_sample(tmp_path / "raw"))
    records, rejects = parse_corpus(RECIPE, tmp_path / "raw")
    assert rejects == []
    assert [sum(r.split == s for r in records) for s in ("train", "dev", "test")] == [4, 2, 2]
    report = run_build(RECIPE, root, tmp_path / "out", BuildOptions(shard_size=4),
                       runner="local", progress=False)
    assert (report["rejects"], report["samples"]) == (0, 8)
