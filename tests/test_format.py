"""Issue 13: one module of the shard format (``pipeline.format``), used by every writer and
reader; its index writing and reading, its checks, and no second copy of its constants."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline import audio, record, tags
from pipeline import format as fmt
from pipeline.align import SAMPLE_RATE as ALIGN_RATE
from pipeline.card import write_index
from pipeline.format import (
    FormatError,
    ShardRef,
    check_version,
    decode_flac,
    index_text,
    load_index,
)

ROOT = Path(__file__).resolve().parents[1]
PARTS = [{"name": "c-dev-000000.tar", "nsamples": 4, "filesize": 10240, "md5sum": "ab12",
          "split": "dev", "stats": {"ignored": 1}},
         {"name": "c-test-000000.tar", "nsamples": 1, "filesize": 3072, "md5sum": "cd34",
          "split": "test"}]


def test_index_text_is_the_wids_index_byte_for_byte(tmp_path: Path) -> None:
    assert index_text("c", PARTS) == (
        '{\n "__kind__": "wids-shard-index-v1",\n "wids_version": 1,\n "name": "c",\n'
        ' "format_version": 1,\n "shardlist": [\n  {\n   "url": "c-dev-000000.tar",\n'
        '   "nsamples": 4,\n   "filesize": 10240,\n   "md5sum": "ab12",\n   "split": "dev"\n'
        '  },\n  {\n   "url": "c-test-000000.tar",\n   "nsamples": 1,\n   "filesize": 3072,\n'
        '   "md5sum": "cd34",\n   "split": "test"\n  }\n ]\n}\n')
    write_index(tmp_path, "c", PARTS)  # the build's writer
    assert (tmp_path / "index.json").read_text() == index_text("c", PARTS)
    index = load_index(tmp_path / "index.json")
    assert index.name == "c" and index.path == tmp_path / "index.json"
    assert index.shards == (ShardRef(tmp_path / "c-dev-000000.tar", "dev", 4, 10240, "ab12"),
                            ShardRef(tmp_path / "c-test-000000.tar", "test", 1, 3072, "cd34"))


def _index(tmp_path: Path, **change: object) -> Path:
    obj = json.loads(index_text("c", PARTS))
    obj.update(change)
    (tmp_path / "index.json").write_text(json.dumps(obj))
    return tmp_path / "index.json"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"split": 3}, r"shard 'c-dev-000000\.tar': split 3 is not a string"),
        ({"filesize": -1}, r"shard 'c-dev-000000\.tar': filesize -1 is not a non-negative int"),
        ({"nsamples": True}, r"shard 'c-dev-000000\.tar': nsamples True is not a non-negative"),
        ({"md5sum": 5}, r"shard 'c-dev-000000\.tar': md5sum 5 is not a string"),
        ({"url": None}, r"shard url None must be a plain \.tar file name"),
        ({"url": "c\\..\\x.tar"}, r"shard url 'c\\\\\.\.\\\\x\.tar' must be a plain \.tar file "
                                  r"name in the index's folder"),
    ],
)
def test_index_entries_are_checked(tmp_path: Path, entry: dict, message: str) -> None:
    shardlist = json.loads(index_text("c", PARTS))["shardlist"]
    shardlist[0].update(entry)
    with pytest.raises(FormatError, match=rf"^{re.escape(str(tmp_path))}/index\.json: {message}"):
        load_index(_index(tmp_path, shardlist=shardlist))


def test_index_shape_is_checked(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"index\.json: shardlist must be a list"):
        load_index(_index(tmp_path, shardlist={"a": 1}))
    with pytest.raises(FormatError, match=r"index\.json: shardlist entries must be objects, "
                                          r"got 'x\.tar'"):
        load_index(_index(tmp_path, shardlist=["x.tar"]))
    (tmp_path / "index.json").write_bytes(b'{"__kind__": "\xff"}')
    with pytest.raises(FormatError, match=r"index\.json: not valid JSON"):
        load_index(tmp_path / "index.json")
    (tmp_path / "index.json").write_text("[]")
    with pytest.raises(FormatError, match=r"index\.json: not a shard index"):
        load_index(tmp_path / "index.json")
    with pytest.raises(FileNotFoundError, match=r"shard index not found: .*nope\.json; build"):
        load_index(tmp_path / "nope.json")


@pytest.mark.parametrize("version", [None, 0, -1, "1", 1.0, True])
def test_format_version_must_be_a_positive_integer(version: object) -> None:
    with pytest.raises(FormatError, match=rf"^here: format_version {re.escape(repr(version))} "
                                          r"is not a positive integer$"):
        check_version(version, "here")
    check_version(1, "here")


def _encode(pcm: np.ndarray, rate: int, fmt: str = "FLAC") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, pcm, rate, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def test_decode_flac_gives_the_stored_pcm_and_refuses_anything_else() -> None:
    pcm = (np.arange(1600) % 200 - 100).astype(np.int16)
    flac = _encode(pcm, 16000)
    assert np.array_equal(decode_flac(flac, dtype="int16"), pcm)
    assert np.array_equal(decode_flac(flac), pcm.astype(np.float32) / 32768)
    with pytest.raises(FormatError, match=r"^s\.tar: k\.flac is WAV 1 ch 16000 Hz, expected "
                                          r"FLAC 1 ch 16000 Hz$"):
        decode_flac(_encode(pcm, 16000, "WAV"), "k", "s.tar")
    with pytest.raises(FormatError, match=r"^FLAC bytes is FLAC 1 ch 44100 Hz, expected"):
        decode_flac(_encode(pcm, 44100))
    with pytest.raises(FormatError, match=r"^s\.tar: k\.flac does not decode"):
        decode_flac(b"fLaC" + b"\0" * 40, "k", "s.tar")


def test_every_module_takes_the_format_constants_from_pipeline_format() -> None:
    assert record.FORMAT_VERSION is fmt.FORMAT_VERSION and record.KEY_RE is fmt.KEY_RE
    assert (record.AUDIO_EXT, record.META_EXT) == fmt.MEMBER_EXTS == ("flac", "json")
    assert audio.SAMPLE_RATE == ALIGN_RATE == fmt.SAMPLE_RATE == 16000
    assert audio.MAX_SECONDS == tags.MAX_AUDIO_SECONDS == fmt.MAX_SECONDS == 30.0
    assert record.SampleMeta("k", [], 1.0, "en", {}).sample_rate == fmt.SAMPLE_RATE


def test_no_second_copy_of_the_rate_or_the_index_kind() -> None:
    """The library and the trainer spell 16000 and the index kind only in pipeline.format."""
    copies = []
    for path in sorted([*(ROOT / "pipeline").rglob("*.py"), *(ROOT / "trainer").rglob("*.py")]):
        if path.name == "format.py" and path.parent.name == "pipeline":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\b16_?000\b|wids-shard-index-v1|def decode_flac", line):
                copies.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert copies == []


@pytest.mark.parametrize("meta", [
    record.SampleMeta("k1", [{"task": "asr", "prompt": "p", "target": "hi"}], 1.25, "en",
                      {"recipe": "r", "split": "s", "file": "a.flac"}),
    record.SampleMeta("k2", [{"task": "srwt", "prompt": "p", "target": "t"}], 2.0, "zh",
                      {"recipe": "r", "split": "s", "file": "b.wav"},
                      words=[{"word": "你", "start": 0.1, "end": 0.4}], truncated_from=31.5,
                      meta={"aqa_confidence": ("yes", "maybe"), "span": {"start_s": [1, 2.5]}}),
    record.SampleMeta("k3", [], 0.5, "unknown", {}, words=[], meta={}),
])
def test_sample_json_is_the_dataclass_as_a_dict_without_empty_options(meta) -> None:
    """SampleMeta.to_json builds ``dataclasses.asdict``'s dict by hand (one per clip): the
    same keys, values and JSON bytes, no None options or empty meta, and no aliasing."""
    from dataclasses import asdict

    want = {k: v for k, v in asdict(meta).items()
            if not (k in ("words", "truncated_from") and v is None) and not (k == "meta" and not v)}
    got = meta.to_json()
    assert got == want and fmt.json_bytes(got) == fmt.json_bytes(want)
    assert list(got) == list(want)  # (field order, as asdict gives it)
    got["tasks"].append({})
    got["source"].clear()
    if "meta" in got:
        got["meta"]["span"]["start_s"].append(9)
    assert meta.to_json() == want  # the record's own containers are untouched


@pytest.mark.parametrize("reject", [
    record.Reject("r", "train", "a.wav", "the audio file is missing"),
    record.Reject("r", "dev", "meta.csv", "duplicate", stage="parse", line=7, key="k", task="asr"),
    record.Reject("r", "dev", "b.flac", "aligner crashed", stage="align", key="b", task="srwt"),
])
def test_reject_json_is_the_dataclass_as_a_dict_without_none(reject) -> None:
    from dataclasses import asdict

    want = {k: v for k, v in asdict(reject).items() if v is not None}
    got = reject.to_json()
    assert got == want and list(got) == list(want)
