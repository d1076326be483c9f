"""CochlScene recipe: folder-name labels, splits, bad folders, sample corpus, build."""

from pathlib import Path

from recipe_helpers import parse_corpus

from dataset_recipes import RECIPES
from dataset_recipes.cochlscene import RECIPE
from pipeline.build import run_build
from pipeline.stages import BuildOptions
from pipeline.tags import make_entry

FIXTURE = Path(__file__).parent / "fixtures" / "cochlscene"
ASC = "<|startofanalysis|><|unknown|><|keyword|><|en|><|notimestamps|><|scene|>"


def test_registered() -> None:
    assert RECIPES["cochlscene"] is RECIPE


def test_fixture_records_prompts_and_targets() -> None:
    records, _ = parse_corpus(RECIPE, FIXTURE)
    got = {(r.split, r.key): r.labels[0].target for r in records}
    assert got == {
        ("Train", "Bus_1"): "bus", ("Train", "CrowdedIndoor_2"): "crowded indoor",
        ("Train", "Park_3"): "park", ("Val", "Cafe_7"): "cafe",
        ("Test", "SubwayStation_4"): "subway station",
    }
    bus = next(r for r in records if r.key == "Bus_1")
    assert bus.source == "Train/Bus/Bus_1.wav"
    assert bus.language == "unknown"
    entry = make_entry(bus.labels[0].task, bus.labels[0].target, **bus.labels[0].kwargs)
    assert entry == {"task": "asc", "prompt": ASC, "target": "bus"}


def test_fixture_bad_inputs_are_rejects() -> None:
    _, rejects = parse_corpus(RECIPE, FIXTURE)
    assert [(r.split, r.source) for r in rejects] == [
        ("Train", "Train/Beach/Beach_1.wav"),
        ("Train", "Train/stray.wav"),
    ]
    assert "unknown class folder 'Beach'" in rejects[0].reason
    assert "outside a class folder" in rejects[1].reason


def test_locate_accepts_corpus_folder_and_explains_missing(tmp_path: Path) -> None:
    assert RECIPE.locate(FIXTURE / "CochlScene") == FIXTURE / "CochlScene"
    try:
        RECIPE.locate(tmp_path)
    except FileNotFoundError as err:
        assert "SOURCE=sample" in str(err) and "CochlScene/{Train,Val,Test}" in str(err)
    else:
        raise AssertionError("locate accepted an empty folder")


def test_sample_parses_clean_and_builds(tmp_path: Path) -> None:
    root = RECIPE.locate(RECIPE.make_sample(tmp_path / "raw"))
    records, rejects = parse_corpus(RECIPE, tmp_path / "raw")
    assert rejects == []
    counts = {s: sum(r.split == s for r in records) for s in ("Train", "Val", "Test")}
    assert counts == {"Train": 9, "Val": 3, "Test": 3}
    report = run_build(RECIPE, root, tmp_path / "out", BuildOptions(shard_size=4),
                       runner="local", progress=False)
    assert report["rejects"] == 0
    assert report["samples"] == 15
    assert (tmp_path / "out" / "rejects.jsonl").read_text() == ""
