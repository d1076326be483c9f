"""Issue 13: the trainer's reader refuses every shard that ``pipeline.reader`` refuses.

Every hostile or future shard of ``hostile_shards.py`` (links, ``..``, devices, unknown
members, newer ``format_version``, bad JSON, ...), an oversized member, a sample count off
and a bad ``index.json`` are refused by ``trainer.reader`` with the same
:class:`pipeline.format.FormatError` (same class, same message, naming the shard and the
member or key) as by ``pipeline.reader``; and a refused shard stops a training stream
instead of being skipped.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hostile_shards import FLAC, HOSTILE, hostile_tar, meta_json, regular
from trainer_shards import write_mixture, write_set

from pipeline.format import MAX_MEMBER_BYTES, FormatError, UnsafeMemberError
from pipeline.reader import open_shards
from trainer.data import StreamConfig, TrainStream, train_batches
from trainer.reader import pairs_of, read_index, read_metadata, read_mixture, read_shard


@pytest.fixture
def jail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from an empty directory, to prove that reading writes nothing anywhere near."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def _refusals(shard: Path) -> tuple[pytest.ExceptionInfo, pytest.ExceptionInfo]:
    with pytest.raises(FormatError) as by_pipeline:
        list(open_shards(shard))
    with pytest.raises(FormatError) as by_trainer:
        list(read_shard(str(shard)))
    return by_pipeline, by_trainer


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_trainer_refuses_what_pipeline_reader_refuses(jail: Path, case: str) -> None:
    add, message = HOSTILE[case]
    shard = hostile_tar(jail / "evil.tar", add)
    before = sorted(p.relative_to(jail) for p in jail.rglob("*"))
    by_pipeline, by_trainer = _refusals(shard)
    assert type(by_trainer.value) is type(by_pipeline.value)
    assert str(by_trainer.value) == str(by_pipeline.value)
    assert by_trainer.match(message) and str(by_trainer.value).startswith(f"{shard}: ")
    # metadata-only reads (task discovery, evaluation plans) refuse it too
    with pytest.raises(type(by_pipeline.value), match=message):
        read_metadata(str(shard))
    assert sorted(p.relative_to(jail) for p in jail.rglob("*")) == before
    assert not (jail.parent / "outside").exists() and not Path("/tmp/evil.json").exists()


def test_unknown_member_is_refused_before_it_is_read(
    jail: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard = hostile_tar(jail / "s.tar", regular("evil.pyd", b"\x80\x04cos\nsystem\n."))
    extracted: list[str] = []
    extractfile = tarfile.TarFile.extractfile

    def spy(self: tarfile.TarFile, member: tarfile.TarInfo | str):
        extracted.append(member if isinstance(member, str) else member.name)
        return extractfile(self, member)

    monkeypatch.setattr(tarfile.TarFile, "extractfile", spy)
    with pytest.raises(UnsafeMemberError, match=rf"{shard}: member 'evil\.pyd': unknown "):
        list(read_shard(str(shard)))
    assert extracted == ["good.flac", "good.json"]


def test_oversized_member_is_refused(jail: Path) -> None:
    big = b"\0" * (MAX_MEMBER_BYTES + 1)
    shard = hostile_tar(jail / "big.tar", regular("big.flac", big))
    by_pipeline, by_trainer = _refusals(shard)
    assert str(by_trainer.value) == str(by_pipeline.value) == (
        f"{shard}: member 'big.flac': {MAX_MEMBER_BYTES + 1} bytes exceeds the "
        f"{MAX_MEMBER_BYTES}-byte limit")
    assert isinstance(by_trainer.value, UnsafeMemberError)


def test_damaged_tar_is_refused(jail: Path) -> None:
    shard = hostile_tar(jail / "s.tar", regular("b.flac", FLAC))
    data = bytearray(shard.read_bytes())
    with tarfile.open(shard) as tar:
        offset = tar.getmember("b.flac").offset
    data[offset + 10] ^= 0xFF  # the header's checksum no longer holds
    shard.write_bytes(bytes(data))
    by_pipeline, by_trainer = _refusals(shard)
    assert str(by_trainer.value) == str(by_pipeline.value)
    assert by_trainer.match(rf"s\.tar: tar stops at byte {offset} but data follows")


def _set(tmp_path: Path, sizes: list[int]) -> Path:
    return write_set(tmp_path, "speechy", {"train": sizes})


def _edit_index(index: Path, **entry: object) -> None:
    obj = json.loads(index.read_text())
    obj["shardlist"][0].update(entry)
    index.write_text(json.dumps(obj))


def test_sample_count_off_is_refused(tmp_path: Path) -> None:
    index = _set(tmp_path, [3])
    _edit_index(index, nsamples=4)
    (shard,) = read_index(index)
    message = (f"{shard.path}: holds 3 samples, index.json says 4; the shard is damaged or "
               "stale, rebuild it")
    with pytest.raises(FormatError) as by_pipeline:
        list(open_shards(index))
    assert str(by_pipeline.value) == message
    for read in (lambda: pairs_of(shard), lambda: pairs_of(shard, audio=False),
                 lambda: list(read_shard(shard.path, shard.nsamples))):
        with pytest.raises(FormatError) as by_trainer:
            read()
        assert str(by_trainer.value) == message
    assert len(list(read_shard(shard.path))) == 3  # without a count to hold it to


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": 2}, r"index\.json: written with format version 2, this reader "
                                r"knows versions up to 1; upgrade"),
        ({"format_version": None}, r"index\.json: format_version None is not a positive int"),
        ({"__kind__": "other"}, r"index\.json: not a shard index \(__kind__ must be "
                                r"'wids-shard-index-v1'\)"),
    ],
)
def test_index_is_checked_as_pipeline_checks_it(
    tmp_path: Path, change: dict, message: str
) -> None:
    index = _set(tmp_path, [2])
    index.write_text(json.dumps({**json.loads(index.read_text()), **change}))
    with pytest.raises(FormatError, match=message) as by_trainer:
        read_index(index)
    with pytest.raises(FormatError) as by_pipeline:
        list(open_shards(index))
    assert str(by_trainer.value) == str(by_pipeline.value)


@pytest.mark.parametrize("url", ["../speechy-train-000000.tar", "/etc/x.tar", "sub/x.tar",
                                 "..tar", "x.tar.gz"])
def test_index_url_must_stay_in_the_index_folder(tmp_path: Path, url: str) -> None:
    index = _set(tmp_path, [2])
    _edit_index(index, url=url)
    with pytest.raises(FormatError, match=rf"index\.json: shard url {url!r} must be a plain "
                                          r"\.tar file name in the index's folder"):
        read_index(index)


def test_index_that_is_not_json_or_lacks_counts(tmp_path: Path) -> None:
    index = _set(tmp_path, [2])
    text = index.read_text()
    index.write_text(text[:-5])
    with pytest.raises(FormatError, match=rf"{index}: not valid JSON"):
        read_index(index)
    index.write_text(text)
    _edit_index(index, nsamples="2")
    with pytest.raises(FormatError, match=r"shard 'speechy-train-000000\.tar': nsamples '2' "
                                          r"is not a non-negative integer"):
        read_index(index)
    _edit_index(index, nsamples=None)
    with pytest.raises(FormatError, match=r"speechy-train-000000\.tar' has no nsamples or no "
                                          r"split; the trainer needs both"):
        read_index(index)


def test_audio_that_is_not_16k_mono_flac_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    sf.write(buf, np.zeros((800, 2), np.int16), 8000, format="FLAC", subtype="PCM_16")
    shard = tmp_path / "s.tar"
    with tarfile.open(shard, "w") as tar:
        for name, data in (("st.flac", buf.getvalue()), ("st.json", meta_json("st"))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    ((_, _, audio),) = read_shard(str(shard))
    with pytest.raises(FormatError, match=rf"{shard}: st\.flac is FLAC 2 ch 8000 Hz, "
                                          r"expected FLAC 1 ch 16000 Hz"):
        audio.read()


def _stream_with_one_bad_shard(tmp_path: Path) -> StreamConfig:
    mix = read_mixture(write_mixture(tmp_path, train=(4, 4)))
    speech = [s for s in mix["shards"]["train"] if s.set_name == "speechy"]
    with tarfile.open(speech[1].path, "a") as tar:  # a pickle member after the samples
        regular("speechy_train_9999.pyd", b"cos\nsystem\n")(tar)
    return StreamConfig({"asr": speech}, {"asr": 1.0}, 4, 6, seed=0, shuffle_buffer=2,
                        pool_batches=1)


def test_a_refused_shard_stops_the_training_stream(tmp_path: Path) -> None:
    cfg = _stream_with_one_bad_shard(tmp_path)
    with pytest.raises(UnsafeMemberError, match=r"speechy-train-000001\.tar: member "
                                                r"'speechy_train_9999\.pyd'"):
        list(train_batches(cfg, 0, 0, 1))


def test_a_refused_shard_stops_a_loader_worker_too(tmp_path: Path) -> None:
    cfg = _stream_with_one_bad_shard(tmp_path)
    stream = TrainStream(cfg, lambda pairs: [p.key for p in pairs], 0, 1)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=1)
    with pytest.raises(UnsafeMemberError, match=r"speechy_train_9999\.pyd': unknown ext"):
        list(loader)
