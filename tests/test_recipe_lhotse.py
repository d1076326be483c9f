"""Lhotse recipe: ASR from supervisions, SRWT from word alignments, whole recordings only."""

from pathlib import Path

from recipe_helpers import parse_corpus

from dataset_recipes import RECIPES
from dataset_recipes.lhotse_manifests import RECIPE, RoleByName, language_code
from pipeline.build import run_build
from pipeline.stages import BuildOptions
from pipeline.tags import make_entry, parse_srwt

FIXTURE = Path(__file__).parent / "fixtures" / "lhotse"
ASR = "<|startoftranscript|><|en|><|transcribe|><|en|><|notimestamps|><|wo_itn|>"
SRWT = "<|startoftranscript|><|en|><|transcribe|><|en|><|timestamps|><|0.00|>"
SRWT_TARGET = ("the<|0.11|>quick<|0.45|>brown<|0.75|>fox<|1.14|>jumps<|1.56|>over"
               "<|1.79|>the<|1.89|>lazy<|2.19|>dog<|2.61|>")


def test_registered_as_lhotse():
    assert RECIPES["lhotse"] is RECIPE and RECIPE.info.name == "lhotse"


def test_roles_and_languages():
    roles = RoleByName()
    assert [roles.get(n) for n in ("train-clean-100", "dev-clean", "test-other", "eval2000",
                                   "validation", "all")] == [
        "train", "valid", "test", "test", "valid", "train"]
    assert [language_code(x) for x in ("English", "en", "Mandarin", "Polish", None)] == [
        "en", "en", "zh", None, None]


def test_records_with_asr_and_srwt_from_alignment():
    records, _ = parse_corpus(RECIPE, FIXTURE)
    assert [(r.split, r.key, r.source, r.align) for r in records] == [
        ("dev-clean", "espeak_00", "audio/espeak_00.wav", False),
        ("dev-clean", "tone", "audio/tone.wav", True),
        ("test", "test1", "audio/test1.wav", True),
    ]
    asr, srwt = records[0].labels
    assert make_entry(asr.task, asr.target, **asr.kwargs) == {
        "task": "asr", "prompt": ASR, "target": "the quick brown fox jumps over the lazy dog"}
    assert make_entry(srwt.task, srwt.target, **srwt.kwargs) == {
        "task": "srwt", "prompt": SRWT, "target": SRWT_TARGET}
    assert len(parse_srwt(srwt.target)) == 9
    assert [lb.task for lb in records[1].labels] == ["asr"]


def test_bad_items_are_rejects_naming_manifest_and_line():
    _, rejects = parse_corpus(RECIPE, FIXTURE)
    sup, rec = "fix_supervisions_dev-clean.jsonl.gz", "fix_recordings_dev-clean.jsonl.gz"
    assert [(r.split, r.source, r.line, r.reason) for r in rejects] == [
        ("dev-clean", sup, 3, "supervision long-seg1 covers 0.20-0.60 s of a 1.00 s recording; "
         "only whole-recording supervisions are supported: cut first with "
         "CutSet.from_manifests(...).trim_to_supervisions().save_audios(DIR) and export new "
         "manifests"),
        ("dev-clean", sup, 4, "language 'Polish' has no Qwen-Audio token (choose one of en, "
         "zh, de, es, ko, fr, ja, it)"),
        ("dev-clean", sup, 5, "audio file audio/gone.wav of recording gone is missing"),
        ("dev-clean", sup, 6,
         "supervision orphan names recording nowhere, absent from " + rec),
        ("dev-clean", rec, 5, "recording lonely has no supervision"),
        ("test", "fix_recordings_test.jsonl.gz", 2, "malformed JSON line: Expecting value"),
    ]


def test_fixture_build_keeps_srwt(tmp_path):
    import json
    import tarfile

    report = run_build(RECIPE, RECIPE.locate(FIXTURE), tmp_path, BuildOptions(shard_size=4),
                       runner="local", progress=False)
    assert report["samples"] == 3 and report["rejects"] == 6
    with tarfile.open(tmp_path / "lhotse-dev-clean-000000.tar") as tar:
        meta = json.load(tar.extractfile("espeak_00.json"))
    assert [(t["task"], t["prompt"]) for t in meta["tasks"]] == [("asr", ASR), ("srwt", SRWT)]
    assert report["splits"]["dev-clean"]["role"] == "valid"
    card = (tmp_path / "README.md").read_text()  # the style rule: general, then the corpus's
    assert ("## Targets\n\n- `<|wo_itn|>` targets: spoken form: lower case, no "
            "punctuation") in card
    assert "- This corpus: ASR target (`<|wo_itn|>`): the supervision text in spoken form" in card


def test_sample_built_with_lhotse_classes_has_zero_rejects(tmp_path):
    from lhotse import load_manifest

    raw = RECIPE.make_sample(tmp_path / "raw")
    sups = load_manifest(raw / "sample_supervisions_train.jsonl.gz")
    assert len(sups) == 16 and next(iter(sups)).language == "English"
    records, rejects = parse_corpus(RECIPE, raw)
    assert rejects == [] and len(records) == 22
    first = next(r for r in records if r.key == "espeak_00")
    assert (first.split, first.language, first.align) == ("train", "en", True)
    assert first.labels[0].target == "the quick brown fox jumps over the lazy dog"
    report = run_build(RECIPE, RECIPE.locate(raw), tmp_path / "out",
                       BuildOptions(shard_size=8, long_audio=RECIPE.info.long_audio),
                       runner="local", progress=False)
    assert report["rejects"] == 0 and report["samples"] == 22
    assert {n: s["role"] for n, s in report["splits"].items()} == {"dev": "valid",
                                                                   "train": "train"}
