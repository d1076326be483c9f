"""Issue 6: reading a hostile shard never writes to disk and is refused with a clear error
naming the shard and the member (absolute names, '..', links, non-regular members, huge
members, unknown extensions, keys with dots, damaged headers)."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pipeline.audio import encode_flac
from pipeline.reader import (
    MAX_MEMBER_BYTES,
    FormatError,
    UnsafeMemberError,
    check_member,
    open_shards,
)
from pipeline.record import SampleMeta
from pipeline.shards import json_bytes, write_tar
from pipeline.verify import verify

FLAC = encode_flac(np.zeros(1600, np.float32))


def _json(key: str) -> bytes:
    return json_bytes(SampleMeta(
        key=key, tasks=[{"task": "aac", "prompt": "p", "target": "t"}], duration=0.1,
        language="unknown", source={"recipe": "r", "split": "s", "file": "f.wav"}).to_json())


def _tar(path: Path, add: Callable[[tarfile.TarFile], None]) -> Path:
    """A shard with one good sample, then whatever ``add`` puts in."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (("good.flac", FLAC), ("good.json", _json("good"))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add(tar)
    return path


def _file(name: str, data: bytes = b"x") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return add


def _special(name: str, kind: bytes, link: str = "") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        tar.addfile(info)
    return add


@pytest.fixture
def jail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from an empty directory, to prove that reading writes nothing anywhere near."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


HOSTILE = {
    "absolute": (_file("/tmp/evil.json"), r"'/tmp/evil\.json': absolute path"),
    "dotdot": (_file("../evil.json"), r"'\.\./evil\.json': '\.\.' points outside the shard"),
    "nested dotdot": (_file("a/../../evil.json"), r"'\.\.' points outside the shard"),
    "subdir": (_file("sub/evil.json"), r"'sub/evil\.json': directories are not part"),
    "symlink": (_special("evil.flac", tarfile.SYMTYPE, "../../outside"),
                r"'evil\.flac': links are refused \(target '\.\./\.\./outside'\)"),
    "hardlink": (_special("evil.json", tarfile.LNKTYPE, "good.json"), r"links are refused"),
    "directory": (_special("evil", tarfile.DIRTYPE),
                  r"'evil': not a regular file \(tar type b'5'\)"),
    "fifo": (_special("evil.flac", tarfile.FIFOTYPE), r"not a regular file \(tar type b'6'\)"),
    "device": (_special("evil.flac", tarfile.CHRTYPE), r"not a regular file \(tar type b'3'\)"),
    "pickle": (_file("evil.pyd", b"cos\nsystem\n"), r"'evil\.pyd': unknown extension 'pyd'"),
    "dotted key": (_file("a.b.flac", FLAC),
                   r"'a\.b\.flac': unknown extension 'b\.flac'.*keys must not contain dots"),
    "bad key": (_file("a b.json"), r"'a b\.json': key must match"),
    "missing json": (_file("lonely.flac", FLAC), r"key 'lonely' has no json member"),
    "second json": (_file("good.json", b"{}"), r"key 'good' has two 'json' members"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_member_is_refused(jail: Path, case: str) -> None:
    add, message = HOSTILE[case]
    shard = _tar(jail / "evil.tar", add)
    before = sorted(p.relative_to(jail) for p in jail.rglob("*"))
    with pytest.raises(FormatError, match=message) as err:
        list(open_shards(shard))
    assert str(shard) in str(err.value)
    assert sorted(p.relative_to(jail) for p in jail.rglob("*")) == before
    assert not (jail.parent / "outside").exists() and not Path("/tmp/evil.json").exists()


def test_link_and_path_errors_are_unsafe_member_errors(jail: Path) -> None:
    for case in ("absolute", "dotdot", "symlink", "fifo", "pickle"):
        shard = _tar(jail / f"{case}.tar", HOSTILE[case][0])
        with pytest.raises(UnsafeMemberError):
            list(open_shards(shard))


def test_huge_member_is_refused_before_reading() -> None:
    info = tarfile.TarInfo("big.flac")
    info.size = MAX_MEMBER_BYTES + 1
    with pytest.raises(UnsafeMemberError, match=rf"big\.flac': {MAX_MEMBER_BYTES + 1} bytes "
                                                rf"exceeds the {MAX_MEMBER_BYTES}-byte limit"):
        check_member(info, "x.tar")


def test_member_limit_is_configurable(jail: Path) -> None:
    shard = _tar(jail / "s.tar", _file("other.json", _json("other")))
    size = len(_json("good"))  # the FLAC of 0.1 s of silence is under 100 bytes
    with pytest.raises(UnsafeMemberError, match=rf"'good\.json': {size} bytes exceeds the 100-"):
        list(open_shards(shard, max_member_bytes=100))


def test_repeated_key_is_refused(jail: Path) -> None:
    def add(tar: tarfile.TarFile) -> None:
        _file("other.json", _json("other"))(tar)
        _file("other.flac", FLAC)(tar)
        _file("good.flac", FLAC)(tar)
    with pytest.raises(FormatError, match="key 'good' appears twice"):
        list(open_shards(_tar(jail / "s.tar", add)))


def test_damaged_header_is_not_a_silent_end(jail: Path) -> None:
    shard = jail / "s.tar"
    write_tar(shard, [("a", {"flac": FLAC, "json": _json("a")}),
                      ("b", {"flac": FLAC, "json": _json("b")})])
    data = bytearray(shard.read_bytes())
    with tarfile.open(shard) as tar:
        offset = tar.getmember("b.flac").offset
    data[offset + 10] ^= 0xFF  # a name byte of a later header: its checksum no longer holds
    shard.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=rf"s\.tar: tar stops at byte {offset} but data "
                                          r"follows .*damaged tar header"):
        list(open_shards(shard))


def test_compressed_or_foreign_file_is_refused(jail: Path) -> None:
    (jail / "x.tar").write_bytes(b"\x1f\x8b" + os.urandom(600))
    with pytest.raises(FormatError, match=r"x\.tar: not a readable tar"):
        list(open_shards(jail / "x.tar"))


def test_index_cannot_point_outside_its_folder(jail: Path) -> None:
    for url in ("../other.tar", "/etc/x.tar", "sub/x.tar"):
        index = {"__kind__": "wids-shard-index-v1", "wids_version": 1, "format_version": 1,
                 "shardlist": [{"url": url, "nsamples": 1}]}
        (jail / "index.json").write_text(json.dumps(index))
        with pytest.raises(FormatError, match=r"must be a plain \.tar file name"):
            list(open_shards(jail / "index.json"))


def test_verify_reports_a_hostile_shard(jail: Path) -> None:
    out = jail / "out"
    out.mkdir()
    shard = _tar(out / "r-s-000000.tar", HOSTILE["symlink"][0])
    index = {"__kind__": "wids-shard-index-v1", "wids_version": 1, "format_version": 1,
             "shardlist": [{"url": shard.name, "nsamples": 2, "split": "s"}]}
    (out / "index.json").write_text(json.dumps(index))
    (out / "report.json").write_text(json.dumps({"splits": {"s": {"samples": 2}}}))
    result = verify(out)
    assert result.problems == [
        "r-s-000000.tar: md5 and size not in index.json, so not checked",
        "r-s-000000.tar: member 'evil.flac': links are refused (target '../../outside')",
        "r-s-000000.tar: holds 0 samples, index.json says 2",
        "report.json: split s counts 2 samples, the shards hold 0 readable ones"]
