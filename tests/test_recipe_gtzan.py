"""GTZAN recipe: both layouts, fault-filtered split, <|song_meta|>, corrupt file a reject."""

from pathlib import Path

import pytest
from recipe_helpers import parse_corpus

from dataset_recipes import RECIPES
from dataset_recipes.gtzan import FILTERED, RECIPE, _numbers
from pipeline.build import run_build
from pipeline.recipe import CorpusNotFound
from pipeline.stages import BuildOptions
from pipeline.tags import make_entry

FIXTURE = Path(__file__).parent / "fixtures" / "gtzan"
PROMPT = "<|startofanalysis|><|unknown|><|keyword|><|en|><|notimestamps|><|song_meta|>"
CORRUPT = ("unreadable audio (a known corrupt file of the re-upload): "
           "Error in WAV file. No 'data' chunk marker.")


def test_registered_with_truncate_policy():
    assert RECIPES["gtzan"] is RECIPE
    assert RECIPE.info.long_audio == "truncate"
    assert RECIPE.info.splits == {"train": "train", "valid": "valid", "test": "test"}


def test_filtered_split_sizes_and_no_overlap():
    sizes = {s: sum(len(_numbers(v)) for v in g.values()) for s, g in FILTERED.items()}
    assert sizes == {"train": 443, "valid": 197, "test": 290}
    for genre in FILTERED["train"]:
        sets = [_numbers(FILTERED[s][genre]) for s in FILTERED]
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])


def test_original_layout_exact_records_and_prompt():
    records, rejects = parse_corpus(RECIPE, FIXTURE / "original")
    assert rejects == []
    assert [(r.split, r.key, r.source, r.labels[0].target) for r in records] == [
        ("valid", "blues_00000", "genres/blues/blues.00000.au", "blues"),
        ("train", "classical_00030", "genres/classical/classical.00030.au", "classical"),
        ("test", "hiphop_00000", "genres/hiphop/hiphop.00000.au", "hip hop"),
    ]
    label = records[2].labels[0]
    assert make_entry(label.task, label.target, **label.kwargs) == {
        "task": "mgr", "prompt": PROMPT, "target": "hip hop"}


def test_reupload_layout_and_its_rejects():
    records, rejects = parse_corpus(RECIPE, FIXTURE / "reupload")
    assert [(r.split, r.key, r.source) for r in records] == [
        ("valid", "blues_00000", "genres_original/blues/blues.00000.wav"),
        ("train", "blues_00029", "genres_original/blues/blues.00029.wav"),
        ("test", "jazz_00073", "genres_original/jazz/jazz.00073.wav"),
    ]
    assert [(r.split, r.source, r.reason) for r in rejects] == [
        ("excluded", "genres_original/hiphop/hiphop.00039.wav",
         "left out by the fault-filtered split (Kereliuk et al. 2015: repetition, "
         "mislabeling or distortion)"),
        ("train", "genres_original/jazz/jazz.00054.wav", CORRUPT),
        ("unknown", "genres_original/polka/polka.00001.wav",
         "unknown genre folder 'polka'; GTZAN genres are blues, classical, country, disco, "
         "hiphop, jazz, metal, pop, reggae, rock"),
        ("unknown", "genres_original/rock/jazz.00001.wav",
         "file name is not 'rock.000NN' inside the rock/ folder"),
    ]


def test_build_of_reupload_continues_past_the_corrupt_file(tmp_path):
    report = run_build(RECIPE, RECIPE.locate(FIXTURE / "reupload"), tmp_path,
                       BuildOptions(shard_size=4, long_audio="truncate"),
                       runner="local", progress=False)
    assert report["samples"] == 3 and report["rejects"] == 4
    assert CORRUPT in (tmp_path / "rejects.jsonl").read_text()


def test_not_found_names_layout(tmp_path):
    with pytest.raises(CorpusNotFound, match="genres_original"):
        RECIPE.locate(tmp_path)


def test_sample_builds_truncating_to_30_s_with_zero_rejects(tmp_path):
    root = RECIPE.locate(RECIPE.make_sample(tmp_path / "raw"))
    records, rejects = parse_corpus(RECIPE, tmp_path / "raw")
    assert rejects == [] and len(records) == 14
    assert sorted({r.labels[0].target for r in records}) == [
        "blues", "classical", "country", "disco", "hip hop", "jazz", "metal", "pop",
        "reggae", "rock"]
    report = run_build(RECIPE, root, tmp_path / "out",
                       BuildOptions(shard_size=4, long_audio=RECIPE.info.long_audio),
                       runner="local", progress=False)
    assert report["rejects"] == 0 and report["samples"] == 14
    assert sum(s["truncated"] for s in report["splits"].values()) == 14
    assert report["splits"]["train"]["tasks"]["mgr"]["prompts"] == [PROMPT]


def test_clip_listing_and_header_check_match_glob_and_sf_info(tmp_path):
    """The parse lists clips without pathlib and opens headers without sf.info's
    formatting: the same names, in the same order, and the same failures."""
    import io

    import numpy as np
    import soundfile as sf

    from dataset_recipes.gtzan import _clip_names, _read_header

    buf = io.BytesIO()
    sf.write(buf, np.zeros(64, np.int16), 22050, format="AU", subtype="PCM_16")
    clip = buf.getvalue()
    names = {"blues.00002.au": clip, "blues.00001.au": clip, ".blues.00003.au": clip,
             "blues.00004.AU": clip, "blues.00005.au.txt": clip, "B.au": clip,
             "blues.00006.au": b"not audio", "blues.00007.au": b""}
    for name, data in names.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "blues.00008.au").mkdir()
    assert _clip_names(tmp_path, ".au") == [p.name for p in sorted(tmp_path.glob("*.au"))] == [
        ".blues.00003.au", "B.au", "blues.00001.au", "blues.00002.au", "blues.00006.au",
        "blues.00007.au", "blues.00008.au"]

    def outcome(check, path):
        try:
            check(str(path))
            return "read"
        except (sf.LibsndfileError, RuntimeError) as err:
            return getattr(err, "error_string", str(err))

    (tmp_path / "jazz.00054.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    (tmp_path / "jazz.00055.wav").write_bytes(b"")
    names = _clip_names(tmp_path, ".au") + _clip_names(tmp_path, ".wav")
    outcomes = {n: outcome(_read_header, tmp_path / n) for n in names}
    assert outcomes == {n: outcome(sf.info, tmp_path / n) for n in names}
    assert outcomes["blues.00001.au"] == "read"
    assert outcomes["jazz.00055.wav"] == "Format not recognised."


def _reupload_with_bad_clips(raw):
    """The re-upload fixture plus three clips no decoder reads, named as GTZAN names them
    (not the known corrupt one): garbage, empty, a bare RIFF header."""
    import shutil

    shutil.copytree(FIXTURE / "reupload", raw)
    blues = raw / "Data" / "genres_original" / "blues"
    (blues / "blues.00030.wav").write_bytes(b"not audio at all" * 8)
    (blues / "blues.00031.wav").write_bytes(b"")
    (blues / "blues.00032.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    return raw


def test_parse_opens_only_the_known_corrupt_clip(tmp_path, monkeypatch):
    """Clips are decoded by the build; the parse reads the header of jazz.00054.wav only,
    so that its reject names the known problem."""
    from dataset_recipes import gtzan

    opened = []
    read_header = gtzan._read_header
    monkeypatch.setattr(gtzan, "_read_header", lambda path: opened.append(path) or
                        read_header(path))
    records, rejects = parse_corpus(RECIPE, _reupload_with_bad_clips(tmp_path / "raw"))
    assert [Path(p).name for p in opened] == ["jazz.00054.wav"]
    assert [(r.split, r.key) for r in records] == [
        ("valid", "blues_00000"), ("train", "blues_00029"), ("train", "blues_00030"),
        ("train", "blues_00031"), ("train", "blues_00032"), ("test", "jazz_00073")]
    assert [(r.source, r.reason) for r in rejects if "unreadable" in r.reason] == [
        ("genres_original/jazz/jazz.00054.wav", CORRUPT)]


def test_build_rejects_every_unreadable_clip_naming_it(tmp_path):
    """End to end: the known corrupt clip is a parse reject with its hint, the other
    unreadable clips rejects of the build's decode, each naming its file; the build goes
    on with the readable clips."""
    import json

    raw = _reupload_with_bad_clips(tmp_path / "raw")
    out = tmp_path / "out"
    report = run_build(RECIPE, RECIPE.locate(raw), out,
                       BuildOptions(shard_size=4, long_audio="truncate"),
                       runner="local", progress=False)
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    unreadable = sorted((r["source"], r["stage"], r["reason"].split(" (")[0])
                        for r in rejects if "unreadable" in r["reason"])
    assert unreadable == [
        ("genres_original/blues/blues.00030.wav", "audio", "unreadable audio"),
        ("genres_original/blues/blues.00031.wav", "audio", "unreadable audio"),
        ("genres_original/blues/blues.00032.wav", "audio", "unreadable audio"),
        ("genres_original/jazz/jazz.00054.wav", "parse", "unreadable audio")]
    known = next(r for r in rejects if r["source"].endswith("jazz.00054.wav"))
    assert known["reason"] == CORRUPT and known["split"] == "train"
    assert report["samples"] == 3 and report["rejects"] == 7
