"""SOURCE=hf: datasets written by `datasets` in the test (save_to_disk, parquet, a hub cache
copy) give the raw recipes' records, and the real build gives exact prompts, targets, keys
and the source audio.  Nothing touches the network."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import soundfile as sf
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features, Value

from dataset_recipes import clotho, esc50, gtzan, librispeech, nsynth
from dataset_recipes.hf_sources import HF_AUDIO_DIR, hf_recipe
from pipeline import audio as audio_mod
from pipeline import tags
from pipeline.build import run_build
from pipeline.format import decode_flac
from pipeline.hf import HFSourceError
from pipeline.record import Record, Reject
from pipeline.stages import BuildOptions

ROOT = Path(__file__).parents[1]
AUDIO_STRUCT = {"bytes": Value("binary"), "path": Value("string")}


def _dataset(columns: dict[str, list], features: dict | None = None) -> Dataset:
    """A Dataset with an Audio column, made without torchcodec (cast from a struct)."""
    feats = Features({**{k: Value("string") for k in columns}, **(features or {}),
                      "audio": AUDIO_STRUCT})
    return Dataset.from_dict(columns, features=feats).cast_column("audio", Audio())


def _cell(path: Path) -> dict:
    return {"bytes": path.read_bytes(), "path": path.name}


def _raw(recipe, raw: Path) -> list[Record]:
    return [r for r in recipe.prepare(recipe.locate(raw)) if isinstance(r, Record)]


def _same(rec: Record) -> tuple:
    """What HF records share with raw ones (source and audio path differ by design)."""
    return (rec.recipe, rec.split, rec.key, rec.language, rec.labels, rec.align, rec.meta)


def _build(recipe, out: Path) -> dict:
    return run_build(recipe, out / HF_AUDIO_DIR, out, BuildOptions(shard_size=8), runner="local",
                     progress=False)


def _samples(out: Path) -> dict[str, tuple[dict, bytes]]:
    got: dict[str, tuple[dict, bytes]] = {}
    for shard in sorted(out.glob("*.tar")):
        with tarfile.open(shard) as tf:
            members = {m.name: tf.extractfile(m).read() for m in tf.getmembers()}
        for name, data in members.items():
            key, ext = name.split(".", 1)
            if ext == "json":
                got[key] = (json.loads(data), members[f"{key}.flac"])
    return got


# ------------------------------------------------------------------ LibriSpeech, save_to_disk
@pytest.fixture(scope="module")
def libri(tmp_path_factory) -> tuple[Path, list[Record]]:
    """The LibriSpeech sample as openslr/librispeech_asr rows, saved with save_to_disk."""
    tmp = tmp_path_factory.mktemp("libri")
    raw = _raw(librispeech.RECIPE, librispeech.make_sample(tmp / "raw"))
    hf_split = {"dev-clean": "validation.clean", "train-clean-100": "train.clean.100"}
    splits = {}
    for split, name in hf_split.items():
        recs = [r for r in raw if r.split == split]
        spk, chap = zip(*[r.key.split("-")[:2] for r in recs], strict=True)
        splits[name] = _dataset({
            "file": [Path(r.audio).name for r in recs],
            "audio": [_cell(Path(r.audio)) for r in recs],
            "text": [r.labels[0].target for r in recs], "speaker_id": [int(s) for s in spk],
            "chapter_id": [int(c) for c in chap], "id": [r.key for r in recs]},
            {"speaker_id": Value("int64"), "chapter_id": Value("int64")})
    DatasetDict(splits).save_to_disk(str(tmp / "disk"))
    return tmp / "disk", raw


def test_librispeech_rows_become_the_raw_records(libri):
    disk, raw = libri
    items = list(hf_recipe("librispeech", str(disk)).prepare(disk.parent / "audio"))
    assert sorted(map(_same, items)) == sorted(map(_same, raw))
    first = next(r for r in items if r.key == "1272-128104-0000")
    assert first.source == f"{disk}:validation.clean[0]"
    assert first.audio == str((disk.parent / "audio/dev-clean/1272-128104-0000.flac").resolve())


def test_librispeech_hf_build_exact_samples(libri, tmp_path):
    disk, raw = libri
    report = _build(hf_recipe("librispeech", str(disk)), tmp_path)
    assert report["samples"] == len(raw) == 24
    assert report["splits"]["dev-clean"]["role"] == "valid"
    got = _samples(tmp_path)
    assert sorted(got) == sorted(r.key for r in raw)
    for rec in raw:
        meta, flac = got[rec.key]
        assert meta["tasks"] == [{"task": "asr", "prompt": tags.asr_prompt("en"),
                                  "target": rec.labels[0].target}]
        pcm = decode_flac(flac, dtype="int16")  # refuses anything but 16 kHz mono FLAC
        src, src_sr = sf.read(rec.audio, dtype="int16")
        assert src_sr == 16000 and len(pcm) == len(src)
        # the build's float round trip scales by 32767/32768: at most 1 LSB off the source
        assert abs(pcm.astype(int) - src).max() <= 1
        same_as_raw = audio_mod.encode_flac(audio_mod.load(rec.audio).samples)
        assert (pcm == decode_flac(same_as_raw, dtype="int16")).all()


def test_librispeech_config_folders_name_the_splits(libri, tmp_path):
    disk, _ = libri
    ds = Dataset.load_from_disk(str(disk / "validation.clean"))
    ds.to_parquet(str(tmp_path / "ls" / "clean" / "validation" / "0000.parquet"))
    ds.to_parquet(str(tmp_path / "ls" / "other" / "validation" / "0000.parquet"))
    with pytest.raises(HFSourceError, match=r"several configs \(clean, other\); pick one"):
        list(hf_recipe("librispeech", str(tmp_path / "ls")).prepare(tmp_path / "a"))
    for spec, split in ((tmp_path / "ls" / "clean", "dev-clean"),
                        (tmp_path / "ls" / "other", "dev-other")):
        got = list(hf_recipe("librispeech", str(spec)).prepare(tmp_path / "a"))
        assert [(r.split, r.key) for r in got] == [
            (split, "1272-128104-0000"), (split, "2412-153948-0000")]


# ------------------------------------------------------------------ Clotho, hub cache parquet
def _clotho_hub(tmp: Path) -> tuple[Path, list[Record]]:
    raw = _raw(clotho.RECIPE, clotho.make_sample(tmp / "raw"))
    snap = tmp / "hub" / "datasets--someone--clotho"
    sha = "0123456789abcdef0123456789abcdef01234567"
    (snap / "refs").mkdir(parents=True)
    (snap / "refs" / "main").write_text(sha)
    for split, name in (("development", "train"), ("validation", "validation"),
                        ("evaluation", "test")):
        recs = [r for r in raw if r.split == split]
        cols = {"file_name": [Path(r.audio).name for r in recs],
                "audio": [_cell(Path(r.audio)) for r in recs]}
        for i, col in enumerate(clotho.CAPTIONS):
            cols[col] = [r.labels[i].target for r in recs]
        path = snap / "snapshots" / sha / "data" / f"{name}-00000-of-00001.parquet"
        _dataset(cols).to_parquet(str(path))
    return tmp / "hub", raw


def test_clotho_from_hub_cache_parquet_build(tmp_path, monkeypatch):
    hub, raw = _clotho_hub(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    recipe = hf_recipe("clotho", "someone/clotho")
    items = list(recipe.prepare(tmp_path / "audio"))
    assert sorted(map(_same, items)) == sorted(map(_same, raw))
    out = tmp_path / "out"
    assert _build(recipe, out)["samples"] == 14
    got = _samples(out)
    rec = next(r for r in raw if r.key == "radio_static_02-b4fe6d12")  # radio.static.02.wav
    meta, flac = got["radio_static_02-b4fe6d12"]
    assert [t["prompt"] for t in meta["tasks"]] == [tags.aac_prompt()] * 5
    assert [t["target"] for t in meta["tasks"]] == [lb.target for lb in rec.labels]
    expected = audio_mod.encode_flac(audio_mod.load(rec.audio).samples)  # 44.1 kHz -> 16 kHz
    assert (decode_flac(flac, dtype="int16") == decode_flac(expected, dtype="int16")).all()


def test_missing_hub_dataset_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HFSourceError) as err:
        list(hf_recipe("clotho", "nobody/clotho").prepare(tmp_path / "a"))
    msg = str(err.value)
    assert "'nobody/clotho' is not in the Hugging Face hub cache" in msg
    assert str(tmp_path) in msg and "hf download nobody/clotho --repo-type dataset" in msg


def test_unknown_column_layout_lists_found_and_expected(tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, [0.0] * 1600, 16000)
    _dataset({"audio": [_cell(wav)], "transcription": ["HELLO"]}).save_to_disk(str(tmp_path / "d"))
    with pytest.raises(HFSourceError) as err:
        list(hf_recipe("librispeech", str(tmp_path / "d")).prepare(tmp_path / "a"))
    assert str(err.value).startswith(
        f"hf={tmp_path / 'd'}: split 'train' has columns ['audio', 'transcription']; recipe "
        "librispeech expects ['id', 'text', 'audio'] (the layout of openslr/librispeech_asr); "
        "missing ['id', 'text']")


# ------------------------------------------------------------------ other layouts
def test_esc50_gtzan_nsynth_rows_match_raw_recipes(tmp_path):
    import csv

    root = esc50.locate(esc50.make_sample(tmp_path / "esc"))
    rows = list(csv.DictReader(open(root / "meta" / "esc50.csv", encoding="utf-8")))
    cols = {c: [r[c] for r in rows] for c in ("filename", "fold", "category")}
    cols["audio"] = [_cell(root / "audio" / r["filename"]) for r in rows]
    _dataset(cols).to_parquet(str(tmp_path / "esc_hf" / "train.parquet"))
    got = list(hf_recipe("esc50", str(tmp_path / "esc_hf")).prepare(tmp_path / "a"))
    assert sorted(map(_same, got)) == sorted(map(_same, _raw(esc50.RECIPE, root)))

    groot = gtzan.locate(gtzan.make_sample(tmp_path / "gtzan"))
    clips = sorted(groot.rglob("*.au"))
    files = [str(c) for c in clips] + ["genres/classical/classical.00042.au"]  # not in split
    _dataset({"file": files, "genre": [gtzan.GENRES.index(Path(f).parent.name) for f in files],
              "audio": [_cell(c) for c in [*clips, clips[0]]]},
             {"genre": ClassLabel(names=list(gtzan.GENRES))}).save_to_disk(str(tmp_path / "g"))
    got = list(hf_recipe("gtzan", str(tmp_path / "g")).prepare(tmp_path / "a"))
    assert sorted(map(_same, (r for r in got if isinstance(r, Record)))) == sorted(
        map(_same, _raw(gtzan.RECIPE, groot))) and len(got) == 15
    assert [(r.split, r.source) for r in got if isinstance(r, Reject)] == [
        ("excluded", f"{tmp_path / 'g'}:train[14]")]

    nroot = nsynth.make_sample(tmp_path / "nsynth")
    for split in ("nsynth-valid", "nsynth-test"):
        table = json.loads((nroot / split / "examples.json").read_text())
        cols = {k: [e[k] for e in table.values()] for k in (
            "note_str", "pitch", "velocity", "instrument_family_str", "qualities_str")}
        cols["audio"] = [_cell(nroot / split / "audio" / f"{k}.wav") for k in table]
        _dataset(cols, {"pitch": Value("int64"), "velocity": Value("int64"),
                        "qualities_str": [Value("string")]}).to_parquet(
            str(tmp_path / "ns_hf" / f"{split.split('-')[1]}.parquet"))
    got = list(hf_recipe("nsynth", str(tmp_path / "ns_hf")).prepare(tmp_path / "a"))
    want = [r for r in _raw(nsynth.RECIPE, nroot) if r.split != "nsynth-train"]
    assert sorted(map(_same, got)) == sorted(map(_same, want)) and len(got) > 0


def test_covost2_pair_from_config_folder(tmp_path):
    mp3 = ROOT / "tests" / "fixtures" / "speech_common_voice.mp3"
    ds = _dataset({"file": ["common_voice_fr_17299.mp3"], "sentence": ["Bonjour  à tous."],
                   "translation": ["Hello everyone."], "audio": [_cell(mp3)]})
    ds.to_parquet(str(tmp_path / "fr_en" / "validation-00000-of-00001.parquet"))
    (rec,) = hf_recipe("covost2", str(tmp_path / "fr_en")).prepare(tmp_path / "a")
    assert (rec.split, rec.key, rec.language) == ("dev", "common_voice_fr_17299", "fr")
    assert [(lb.task, lb.target, lb.kwargs) for lb in rec.labels] == [
        ("asr", "bonjour à tous", {"lang": "fr"}),  # <|wo_itn|> spoken form, as the raw recipe
        ("s2tt", "Hello everyone.", {"src_lang": "fr", "tgt_lang": "en"})]
    assert Path(rec.audio).suffix == ".mp3"
    assert Path(rec.audio).read_bytes() == mp3.read_bytes()


# ------------------------------------------------------------------ command line, Ray runner
def test_make_build_dataset_source_hf_on_ray(libri, tmp_path):
    disk, _ = libri
    cmd = [sys.executable, "-m", "dataset_recipes.build", "recipe=librispeech", "source=hf",
           f"hf={disk}", f"out={tmp_path / 'out'}", "align.enabled=false", "shard_size=8",
           "progress=false", "workers=1"]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "RAY_ADDRESS": ""},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "librispeech: 24 samples" in proc.stdout
    assert len(list((tmp_path / "out" / HF_AUDIO_DIR).rglob("*.flac"))) == 24
    bad = subprocess.run([*cmd[:5], "hf=", f"out={tmp_path / 'x'}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "source=hf needs one recipe and hf=" in bad.stderr


def test_write_audio_extension_from_header(tmp_path):
    from pipeline.hf import audio_ext

    buf = io.BytesIO()
    sf.write(buf, [0.0] * 160, 16000, format="FLAC")
    assert audio_ext(buf.getvalue(), None) == "flac"
    assert audio_ext(b"RIFF....WAVE", "x.unknown") == "wav"
    assert audio_ext(b"ID3\x04", None) == "mp3"
    assert audio_ext(b"\x00\x01", "clip.ogg") == "ogg"
