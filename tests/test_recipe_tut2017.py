"""TUT Acoustic Scenes 2017 recipe: meta.txt + fold 1 + error.txt, rejects, sample, build."""

from pathlib import Path

import pytest
from recipe_helpers import download, parse_corpus, record_downloads

from dataset_recipes import RECIPES
from dataset_recipes.tut2017 import ARCHIVES, RECIPE
from pipeline.build import run_build
from pipeline.recipe import CorpusNotFound
from pipeline.stages import BuildOptions
from pipeline.tags import make_entry

FIXTURE = Path(__file__).parent / "fixtures" / "tut2017"
DEV = "TUT-acoustic-scenes-2017-development"
ASC = "<|startofanalysis|><|unknown|><|keyword|><|en|><|notimestamps|><|scene|>"


def test_registered() -> None:
    assert RECIPES["tut2017"] is RECIPE
    assert RECIPE.info.splits == {"fold1_train": "train", "fold1_evaluate": "valid",
                                  "evaluation": "test"}


def test_fixture_records_with_exact_targets() -> None:
    records, _ = parse_corpus(RECIPE, FIXTURE)
    assert [(r.split, r.key, r.source, r.labels[0].target) for r in records] == [
        ("fold1_train", "a001_0_10", f"{DEV}/audio/a001_0_10.wav", "beach"),
        ("fold1_train", "b002_0_10", f"{DEV}/audio/b002_0_10.wav", "city center"),
        ("fold1_evaluate", "a001_10_20", f"{DEV}/audio/a001_10_20.wav", "beach"),
        ("evaluation", "1", "TUT-acoustic-scenes-2017-evaluation/audio/1.wav",
         "residential area"),
        ("evaluation", "2", "TUT-acoustic-scenes-2017-evaluation/audio/2.wav", "cafe/restaurant"),
    ]
    label = records[1].labels[0]
    assert make_entry(label.task, label.target, **label.kwargs) == {
        "task": "asc", "prompt": ASC, "target": "city center"}


def test_bad_inputs_are_rejects_naming_file_and_line() -> None:
    _, rejects = parse_corpus(RECIPE, FIXTURE)
    got = [(r.source, r.line, r.reason) for r in rejects]
    assert got[0] == (f"{DEV}/meta.txt", 4, "unknown scene 'desert'; known: beach, bus, "
                      "cafe/restaurant, car, city_center, forest_path, grocery_store, home, "
                      "library, metro_station, office, park, residential_area, train, tram")
    assert got[1:] == [
        (f"{DEV}/meta.txt", 8, "malformed line (want 2 or 3 tab-separated fields, the first "
         "'audio/<file>.wav')"),
        (f"{DEV}/error.txt", 1, "audio/d004_0_10.wav is listed as a bad segment "
         "(microphone failure)"),
        (f"{DEV}/audio/f006_0_10.wav", 4,
         "listed in fold1_train.txt line 4 but the audio file is missing"),
        (f"{DEV}/evaluation_setup/fold1_train.txt", 5, "audio/g007_0_10.wav is not in meta.txt"),
        (f"{DEV}/meta.txt", 6,
         "audio/e005_0_10.wav is in neither fold1_train.txt nor fold1_evaluate.txt"),
        (f"{DEV}/audio/z999_0_10.wav", None, "audio file has no line in meta.txt"),
    ]


def test_missing_fold_file_is_a_clear_error(tmp_path: Path) -> None:
    raw = RECIPE.make_sample(tmp_path / "raw")
    (raw / DEV / "evaluation_setup" / "fold1_evaluate.txt").unlink()
    with pytest.raises(ValueError, match=r"fold1_evaluate\.txt: missing"):
        list(RECIPE.prepare(RECIPE.locate(raw)))


def test_locate(tmp_path: Path) -> None:
    assert RECIPE.locate(FIXTURE / DEV) == FIXTURE
    with pytest.raises(CorpusNotFound, match="RECIPE=tut2017 SOURCE=sample"):
        RECIPE.locate(tmp_path)


def test_download_fetches_the_official_archives(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls = record_downloads(monkeypatch)
    assert download(RECIPE, tmp_path) == tmp_path
    urls = [u for u, _ in calls[0]]
    assert urls == list(ARCHIVES) and len(urls) == 19
    assert urls[0] == ("https://zenodo.org/records/400515/files/"
                       "TUT-acoustic-scenes-2017-development.audio.1.zip")
    assert urls[-1] == ("https://zenodo.org/records/1040168/files/"
                        "TUT-acoustic-scenes-2017-evaluation.doc.zip")
    kws = [kw for _, kw in calls[0]]
    assert all(set(kw) == {"md5", "size"} for kw in kws)
    assert kws[0] == {"md5": "251325a9afaaad0326ad1c57f57d514a", "size": 1071445248}
    assert kws[-1] == {"md5": "47bbdc0614b468d2bfadbc49e561a320", "size": 53687}


def test_sample_parses_clean_and_builds(tmp_path: Path) -> None:
    root = RECIPE.locate(RECIPE.make_sample(tmp_path / "raw"))
    records, rejects = parse_corpus(RECIPE, tmp_path / "raw")
    assert rejects == []
    counts = {s: sum(r.split == s for r in records) for s in RECIPE.info.splits}
    assert counts == {"fold1_train": 8, "fold1_evaluate": 4, "evaluation": 3}
    report = run_build(RECIPE, root, tmp_path / "out", BuildOptions(shard_size=4),
                       runner="local", progress=False)
    assert (report["rejects"], report["samples"]) == (0, 15)
