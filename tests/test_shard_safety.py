"""Issue 6: reading a hostile shard never writes to disk and is refused with a clear error
naming the shard and the member (absolute names, '..', links, non-regular members, huge
members, unknown extensions, keys with dots, damaged headers, bad or newer JSON).  The cases
live in ``hostile_shards.py``; ``test_trainer_reader_safety.py`` runs them against the
trainer's reader too."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest
from hostile_shards import FLAC, HOSTILE, hostile_tar, meta_json, regular

from pipeline.reader import (
    MAX_MEMBER_BYTES,
    FormatError,
    UnsafeMemberError,
    check_member,
    open_shards,
)
from pipeline.shards import write_tar
from pipeline.verify import verify


@pytest.fixture
def jail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from an empty directory, to prove that reading writes nothing anywhere near."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_member_is_refused(jail: Path, case: str) -> None:
    add, message = HOSTILE[case]
    shard = hostile_tar(jail / "evil.tar", add)
    before = sorted(p.relative_to(jail) for p in jail.rglob("*"))
    with pytest.raises(FormatError, match=message) as err:
        list(open_shards(shard))
    assert str(shard) in str(err.value)
    assert sorted(p.relative_to(jail) for p in jail.rglob("*")) == before
    assert not (jail.parent / "outside").exists() and not Path("/tmp/evil.json").exists()


def test_link_and_path_errors_are_unsafe_member_errors(jail: Path) -> None:
    for case in ("absolute", "dotdot", "symlink", "fifo", "pickle"):
        shard = hostile_tar(jail / f"{case}.tar", HOSTILE[case][0])
        with pytest.raises(UnsafeMemberError):
            list(open_shards(shard))


def test_huge_member_is_refused_before_reading() -> None:
    info = tarfile.TarInfo("big.flac")
    info.size = MAX_MEMBER_BYTES + 1
    with pytest.raises(UnsafeMemberError, match=rf"big\.flac': {MAX_MEMBER_BYTES + 1} bytes "
                                                rf"exceeds the {MAX_MEMBER_BYTES}-byte limit"):
        check_member(info, "x.tar")


def test_member_limit_is_configurable(jail: Path) -> None:
    shard = hostile_tar(jail / "s.tar", regular("other.json", meta_json("other")))
    size = len(meta_json("good"))  # the FLAC of 0.1 s of silence is under 100 bytes
    with pytest.raises(UnsafeMemberError, match=rf"'good\.json': {size} bytes exceeds the 100-"):
        list(open_shards(shard, max_member_bytes=100))


def test_damaged_header_is_not_a_silent_end(jail: Path) -> None:
    shard = jail / "s.tar"
    write_tar(shard, [("a", {"flac": FLAC, "json": meta_json("a")}),
                      ("b", {"flac": FLAC, "json": meta_json("b")})])
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
    shard = hostile_tar(out / "r-s-000000.tar", HOSTILE["symlink"][0])
    index = {"__kind__": "wids-shard-index-v1", "wids_version": 1, "format_version": 1,
             "shardlist": [{"url": shard.name, "nsamples": 2, "split": "s"}]}
    (out / "index.json").write_text(json.dumps(index))
    (out / "report.json").write_text(json.dumps({"splits": {"s": {"samples": 2}}}))
    result = verify(out)
    assert result.problems == [
        "r-s-000000.tar: md5 and size not in index.json, so not checked",
        "r-s-000000.tar: member 'evil.flac': links are refused (target '../../outside')",
        "r-s-000000.tar: holds 0 samples, index.json says 2; the shard is damaged or stale, "
        "rebuild it",
        "report.json: split s counts 2 samples, the shards hold 0 readable ones"]
