"""Issue 6: pipeline.reader.open_shards yields decoded, filtered samples; it needs only
numpy + soundfile, and refuses data of a newer format version or a stale index."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from recipe_helpers import build_sample

from pipeline.reader import FormatError, check_meta, open_shards, resolve_shards
from pipeline.record import FORMAT_VERSION
from pipeline.shards import json_bytes, write_tar

ROOT = Path(__file__).resolve().parents[1]


def _build(name: str, tmp: Path) -> Path:
    build_sample(name, tmp / "out", tmp / "raw", shard_size=4)
    return tmp / "out"


@pytest.fixture(scope="module")
def clotho(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build("clotho", tmp_path_factory.mktemp("clotho"))


@pytest.fixture(scope="module")
def libri(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build("librispeech", tmp_path_factory.mktemp("libri"))


def _index(out: Path) -> dict:
    return json.loads((out / "index.json").read_text())


def test_reads_every_sample_decoded(clotho: Path) -> None:
    samples = list(open_shards(clotho))
    index = _index(clotho)
    assert len(samples) == sum(s["nsamples"] for s in index["shardlist"]) == 14
    assert [Path(s.shard).name for s in samples[:4]] == ["clotho-development-000000.tar"] * 4
    assert [s.key for s in samples[:4]] == sorted(s.key for s in samples[:4])
    for s in samples:
        assert s.sample_rate == 16000 and s.waveform is not None
        assert s.waveform.dtype == np.float32 and s.waveform.ndim == 1
        assert len(s.waveform) == round(s.duration * 16000)
        assert s.language == "unknown" and s.source["recipe"] == "clotho"
        assert [e["task"] for e in s.tasks] == ["aac"] * 5
        assert s.json["format_version"] == FORMAT_VERSION and s.words is None


def test_int16_is_the_stored_pcm(clotho: Path) -> None:
    f32 = next(open_shards(clotho))
    i16 = next(open_shards(clotho, dtype="int16"))
    assert i16.waveform.dtype == np.int16
    np.testing.assert_array_equal(i16.waveform.astype(np.float32) / 32768, f32.waveform)


def test_filters(clotho: Path, libri: Path) -> None:
    both = [clotho, libri]
    everything = list(open_shards(both, decode_audio=False))
    assert all(s.waveform is None for s in everything)
    asr = list(open_shards(both, tasks=["asr"], decode_audio=False))
    assert asr and {s.source["recipe"] for s in asr} == {"librispeech"}
    assert len(asr) == sum(1 for s in everything if s.source["recipe"] == "librispeech")
    sounds = list(open_shards(both, languages=["unknown"], decode_audio=False))
    assert [s.key for s in sounds] == [s.key for s in everything if s.language == "unknown"]
    assert len(sounds) == 14
    short = list(open_shards(both, max_duration=4.0, decode_audio=False))
    assert [s.key for s in short] == [s.key for s in everything if s.duration <= 4.0]
    assert 0 < len(short) < len(everything)
    dev = list(open_shards(libri, splits=["dev-clean"], decode_audio=False))
    assert dev and {s.source["split"] for s in dev} == {"dev-clean"}
    no_index = list(open_shards(sorted(libri.glob("*.tar")), splits=["dev-clean"],
                                decode_audio=False))
    assert [s.key for s in no_index] == [s.key for s in dev]
    assert list(open_shards(both, tasks=["asr"], languages=["unknown"])) == []


def test_task_filter_keeps_only_those_entries(tmp_path: Path, clotho: Path) -> None:
    meta = next(open_shards(clotho, decode_audio=False)).json
    meta = {**meta, "tasks": [*meta["tasks"][:1], {"task": "asr", "prompt": "p", "target": "t"}]}
    flac = (clotho / "clotho-development-000000.tar")
    import tarfile

    with tarfile.open(flac) as tar:
        audio = tar.extractfile(f"{meta['key']}.flac").read()  # type: ignore[union-attr]
    write_tar(tmp_path / "x.tar", [(meta["key"], {"flac": audio, "json": json_bytes(meta)})])
    (sample,) = open_shards(tmp_path / "x.tar", tasks=["asr"])
    assert sample.tasks == [{"task": "asr", "prompt": "p", "target": "t"}]


def test_sources_index_shard_and_list(clotho: Path) -> None:
    by_dir = [s.key for s in open_shards(clotho, decode_audio=False)]
    by_index = [s.key for s in open_shards(clotho / "index.json", decode_audio=False)]
    shards = sorted(clotho.glob("*.tar"))
    by_list = [s.key for s in open_shards(shards, decode_audio=False)]
    one = [s.key for s in open_shards(shards[0], decode_audio=False)]
    assert by_dir == by_index == by_list and one == by_dir[:4]
    refs = resolve_shards(clotho)
    assert refs[0].split == "development" and refs[0].nsamples == 4 and refs[0].md5sum


def test_missing_source_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such shard, index or directory"):
        list(open_shards(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match=r"holds no index\.json and no \.tar shards"):
        list(open_shards(tmp_path))


def test_newer_format_version_is_refused(tmp_path: Path, clotho: Path) -> None:
    index = _index(clotho)
    index["format_version"] = FORMAT_VERSION + 1
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(FormatError, match=f"format version {FORMAT_VERSION + 1}, this reader "
                                          f"knows versions up to {FORMAT_VERSION}; upgrade"):
        list(open_shards(tmp_path / "index.json"))
    meta = next(open_shards(clotho, decode_audio=False)).json
    newer = {**meta, "format_version": FORMAT_VERSION + 1, "new_field": 1}
    write_tar(tmp_path / "s.tar", [(meta["key"], {"flac": b"", "json": json_bytes(newer)})])
    with pytest.raises(FormatError, match=rf"s\.tar: {meta['key']}\.json: written with format "
                                          f"version {FORMAT_VERSION + 1}"):
        list(open_shards(tmp_path / "s.tar"))


def test_stale_index_count_is_refused(tmp_path: Path, clotho: Path) -> None:
    index = _index(clotho)
    index["shardlist"] = index["shardlist"][:1]
    index["shardlist"][0]["nsamples"] = 5
    (tmp_path / "index.json").write_text(json.dumps(index))
    (tmp_path / "clotho-development-000000.tar").write_bytes(
        (clotho / "clotho-development-000000.tar").read_bytes())
    with pytest.raises(FormatError, match=r"holds 4 samples, index\.json says 5"):
        list(open_shards(tmp_path))


def test_check_meta_names_each_problem() -> None:
    good = {"key": "a", "tasks": [{"task": "asr", "prompt": "p", "target": "t"}],
            "duration": 1.5, "language": "en", "sample_rate": 16000, "format_version": 1,
            "source": {"recipe": "r", "split": "s", "file": "f"}}
    assert check_meta(good, "a") == []
    assert check_meta({**good, "words": [{"word": "w", "start": 0.1, "end": 0.3}]}, "a") == []
    assert check_meta(good, "b") == ["JSON 'key' 'a' differs from the member key"]
    bad = {**good, "duration": "1.5", "tasks": [], "extra": 1}
    bad.pop("language")
    assert check_meta(bad) == [
        "field 'duration' has type str", "missing field 'language'", "unknown fields ['extra']",
        "'tasks' is empty"]
    assert check_meta({**good, "sample_rate": 8000}) == ["sample_rate 8000 is not 16000"]
    assert check_meta({**good, "words": [{"word": "w", "start": 2, "end": 1}]}) == [
        "words[0] must be {word, start <= end}"]
    assert check_meta([1]) == ["JSON must be an object, got list"]


def test_reader_needs_only_numpy_and_soundfile(clotho: Path) -> None:
    """Run the reader with Ray, Lightning, torch, webdataset and datasets made unimportable."""
    code = f"""
import sys
BLOCKED = ("ray", "lightning", "torch", "webdataset", "datasets", "pyarrow", "wids",
           "hydra", "matplotlib")
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Block())
from pipeline.reader import open_shards
n = sum(len(s.waveform) for s in open_shards({str(clotho)!r}))
print(n, sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    expected = sum(len(s.waveform) for s in open_shards(clotho))
    assert done.stdout.split() == [str(expected), "[]"]
