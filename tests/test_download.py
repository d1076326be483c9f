"""pipeline.download / pipeline.extract against a loopback HTTP server: resume, checksums,
real archives, hostile archives refused with nothing written outside the target."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import py7zr
import pytest

from pipeline.download import ArchiveError, DownloadError, Remote, download_corpus, fetch
from pipeline.extract import extract, extracted_marker

DATA = bytes(range(256)) * 40  # 10240 bytes
MD5 = hashlib.md5(DATA).hexdigest()
SHA = hashlib.sha256(DATA).hexdigest()


def _fetch(remote: Remote, target: Path, **kw) -> Path:
    return fetch(remote, target, progress=False, retry_wait=0.0, **kw)


# ------------------------------------------------------------------ fetch
def test_fetch_verifies_and_renames(http_server, tmp_path):
    url = http_server.add("corpus.bin", DATA)
    path = _fetch(Remote(url, md5=MD5, sha256=SHA, size=len(DATA)), tmp_path / "dl")
    assert path == tmp_path / "dl" / "corpus.bin"
    assert path.read_bytes() == DATA
    assert sorted(p.name for p in path.parent.iterdir()) == ["corpus.bin"]
    assert http_server.requests == [("corpus.bin", None)]
    # a second call finds the complete file and asks nothing
    assert _fetch(Remote(url, md5=MD5), tmp_path / "dl") == path
    assert len(http_server.requests) == 1


def test_fetch_resumes_after_dropped_connection(http_server, tmp_path):
    url = http_server.add("big.bin", DATA)
    http_server.drop_once("big.bin", 3000)
    path = _fetch(Remote(url, md5=MD5), tmp_path)
    assert path.read_bytes() == DATA
    assert http_server.requests == [("big.bin", None), ("big.bin", "bytes=3000-")]
    assert not (tmp_path / "big.bin.part").exists()


def test_fetch_gives_up_then_rerun_resumes_part_file(http_server, tmp_path):
    url = http_server.add("big.bin", DATA)
    http_server.drop_once("big.bin", 4096)
    with pytest.raises(DownloadError) as err:
        _fetch(Remote(url, sha256=SHA), tmp_path, retries=0)
    msg = str(err.value)
    assert url in msg and "4096 of 10240 bytes" in msg and "big.bin.part" in msg
    assert (tmp_path / "big.bin.part").read_bytes() == DATA[:4096]
    assert not (tmp_path / "big.bin").exists()
    path = _fetch(Remote(url, sha256=SHA), tmp_path)
    assert path.read_bytes() == DATA
    assert http_server.requests[-1] == ("big.bin", "bytes=4096-")


def test_fetch_complete_part_is_verified_without_download(http_server, tmp_path):
    url = http_server.add("a.bin", DATA)
    (tmp_path / "a.bin.part").write_bytes(DATA)
    assert _fetch(Remote(url, md5=MD5), tmp_path).read_bytes() == DATA
    assert http_server.requests == [("a.bin", "bytes=10240-")]  # answered 416, nothing sent


def test_fetch_restarts_when_server_ignores_range(http_server, tmp_path):
    url = http_server.add("a.bin", DATA)
    http_server.ignore_range = True
    (tmp_path / "a.bin.part").write_bytes(b"garbage from another file")
    assert _fetch(Remote(url, md5=MD5), tmp_path).read_bytes() == DATA


@pytest.mark.parametrize(("kw", "what", "expected"), [
    ({"md5": "0" * 32}, "md5 mismatch", "0" * 32),
    ({"sha256": "f" * 64}, "sha256 mismatch", "f" * 64),
    ({"size": 99}, "size mismatch", "99 bytes"),
])
def test_checksum_mismatch_deletes_part_and_names_url(http_server, tmp_path, kw, what,
                                                      expected):
    url = http_server.add("c.bin", DATA)
    with pytest.raises(DownloadError) as err:
        _fetch(Remote(url, **kw), tmp_path)
    msg = str(err.value)
    assert url in msg and what in msg and f"expected {expected}" in msg
    if what == "md5 mismatch":
        assert f"got {MD5}" in msg
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_not_retried(http_server, tmp_path):
    with pytest.raises(DownloadError, match=r"missing\.bin: HTTP 404"):
        _fetch(Remote(http_server.url("missing.bin")), tmp_path)
    assert len(http_server.requests) == 1


def test_force_downloads_again(http_server, tmp_path):
    url = http_server.add("a.bin", DATA)
    (tmp_path / "a.bin").write_bytes(b"stale")
    assert _fetch(Remote(url), tmp_path).read_bytes() == b"stale"
    assert _fetch(Remote(url), tmp_path, force=True).read_bytes() == DATA


def test_remote_names_and_validation():
    r = Remote("https://zenodo.org/records/4783391/files/clotho_audio_development.7z?download=1")
    assert r.filename == "clotho_audio_development.7z"
    assert Remote("https://x.org/a%20b.tar.gz").filename == "a b.tar.gz"
    assert Remote("https://x.org/get?id=3", name="file.zip").filename == "file.zip"
    with pytest.raises(ValueError, match="http"):
        Remote("ftp://x.org/a.tar")
    with pytest.raises(ValueError, match="md5 must be 32 hex digits"):
        Remote("https://x.org/a.tar", md5="abc")
    with pytest.raises(ValueError, match="pass name="):
        Remote("https://x.org/")


# ------------------------------------------------------------------ archives
FILES = {"corpus/a.txt": b"alpha\n", "corpus/sub/b.bin": os.urandom(5000)}


def _tar(path: Path, mode: str = "w:gz", files: dict[str, bytes] = FILES) -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(".extracted")}


@pytest.mark.parametrize("suffix", ["tar", "tar.gz", "tgz", "tar.bz2", "tar.xz"])
def test_extract_tar_variants(tmp_path, suffix):
    mode = {"tar": "w", "tar.gz": "w:gz", "tgz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}
    archive = _tar(tmp_path / f"x.{suffix}", mode[suffix])
    out = extract(archive, tmp_path / "out", progress=False)
    assert _tree(out) == FILES
    assert extracted_marker(out, archive.name).is_file()


def test_extract_zip_and_7z(tmp_path):
    zpath = tmp_path / "x.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in FILES.items():
            zf.writestr(name, data)
    assert _tree(extract(zpath, tmp_path / "z", progress=False)) == FILES
    spath = tmp_path / "x.7z"
    with py7zr.SevenZipFile(spath, "w") as z:
        for name, data in FILES.items():
            z.writestr(data, name)
    assert _tree(extract(spath, tmp_path / "s", progress=False)) == FILES


def test_rerun_skips_via_marker_and_force_redoes(tmp_path):
    archive = _tar(tmp_path / "x.tar.gz")
    out = extract(archive, tmp_path / "out", progress=False)
    (out / "corpus/a.txt").write_bytes(b"edited")
    extract(archive, out, progress=False)
    assert (out / "corpus/a.txt").read_bytes() == b"edited"  # skipped
    extract(archive, out, progress=False, force=True)
    assert (out / "corpus/a.txt").read_bytes() == b"alpha\n"


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 0
            ) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, size
    return info, b"x" * size


HOSTILE = {
    "absolute": (_member("/tmp/qwen_audio_evil.txt", size=4), "absolute path"),
    "dotdot": (_member("../evil.txt", size=4), "'..' component"),
    "nested_dotdot": (_member("corpus/../../evil.txt", size=4), "'..' component"),
    "symlink": (_member("corpus/etc", tarfile.SYMTYPE, "/etc"), "symbolic link to '/etc'"),
    "hardlink": (_member("corpus/pw", tarfile.LNKTYPE, "/etc/passwd"), "hard link"),
    "inner_hardlink": (_member("corpus/b", tarfile.LNKTYPE, "corpus/a.txt"), "hard link"),
    "fifo": (_member("corpus/fifo", tarfile.FIFOTYPE), "special file"),
    "device": (_member("corpus/sda", tarfile.BLKTYPE), "special file"),
    "huge": (_member("corpus/huge.bin", size=4096), "exceeds the limit of 1000 bytes"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tar_refused_and_nothing_written(tmp_path, case):
    (info, data), reason = HOSTILE[case]
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tf:  # a benign member first: it must be rolled back
        good = tarfile.TarInfo("corpus/a.txt")
        good.size = 6
        tf.addfile(good, io.BytesIO(b"alpha\n"))
        tf.addfile(info, io.BytesIO(data) if info.isfile() else None)
    sandbox = tmp_path / "sandbox"
    out = sandbox / "out"
    with pytest.raises(ArchiveError) as err:
        extract(archive, out, progress=False, max_member_bytes=1000)
    msg = str(err.value)
    assert str(archive) in msg and repr(info.name) in msg and reason in msg
    assert [p.name for p in sandbox.iterdir()] == ["out"]
    assert list(out.iterdir()) == []  # rolled back, and no marker
    assert not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/qwen_audio_evil.txt").exists()


def test_total_limit_stops_a_bomb(tmp_path):
    archive = _tar(tmp_path / "bomb.tar.gz", files={f"z/{i}": bytes(600) for i in range(3)})
    with pytest.raises(ArchiveError, match=r"'z/1'.*total size 1200 exceeds the limit of 1000"):
        extract(archive, tmp_path / "out", progress=False, max_total_bytes=1000)
    assert list((tmp_path / "out").iterdir()) == []


def test_hostile_zip_members_refused(tmp_path):
    cases = {"../evil.txt": "'..' component", "/abs.txt": "absolute path"}
    for name, reason in cases.items():
        zpath = tmp_path / "evil.zip"
        with zipfile.ZipFile(zpath, "w") as zf:
            zf.writestr("ok.txt", b"fine")
            zf.writestr(zipfile.ZipInfo(name), b"evil")
        with pytest.raises(ArchiveError, match=reason):
            extract(zpath, tmp_path / "out", progress=False)
        assert list((tmp_path / "out").iterdir()) == []
    link = zipfile.ZipInfo("link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zf:
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(ArchiveError, match=r"'link': symbolic link"):
        extract(tmp_path / "link.zip", tmp_path / "out2", progress=False)
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros", bytes(5_000_000))
    assert (tmp_path / "bomb.zip").stat().st_size < 20_000
    with pytest.raises(ArchiveError, match=r"'zeros'.*exceeds the limit of 1000000"):
        extract(tmp_path / "bomb.zip", tmp_path / "out3", progress=False,
                max_member_bytes=1_000_000)
    assert list((tmp_path / "out3").iterdir()) == []


def test_7z_symlink_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("lnk").symlink_to("/etc/passwd")
    Path("ok.txt").write_bytes(b"fine")
    with py7zr.SevenZipFile(tmp_path / "link.7z", "w") as z:
        z.write("ok.txt", "ok.txt")
        z.write("lnk", "lnk")
    with pytest.raises(ArchiveError, match=r"link\.7z: refusing member 'lnk': symbolic link"):
        extract(tmp_path / "link.7z", tmp_path / "out", progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_7z_bomb_refused(tmp_path):
    spath = tmp_path / "bomb.7z"
    with py7zr.SevenZipFile(spath, "w") as z:
        z.writestr(bytes(3_000_000), "zeros")
    with pytest.raises(ArchiveError, match=r"'zeros'.*exceeds the limit of 1000"):
        extract(spath, tmp_path / "out", progress=False, max_total_bytes=1000)
    assert list((tmp_path / "out").iterdir()) == []


def test_symlink_already_in_target_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "corpus").symlink_to(outside)
    archive = _tar(tmp_path / "x.tar.gz")
    with pytest.raises(ArchiveError, match="outside"):
        extract(archive, out, progress=False)
    assert list(outside.iterdir()) == []


def test_corrupt_and_unsupported_archives(tmp_path):
    good = _tar(tmp_path / "x.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(ArchiveError, match=r"cut\.tar\.gz: not a readable tar archive"):
        extract(tmp_path / "cut.tar.gz", tmp_path / "out", progress=False)
    assert list((tmp_path / "out").iterdir()) == []
    (tmp_path / "x.rar").write_bytes(b"Rar!")
    with pytest.raises(ArchiveError, match="unsupported archive type"):
        extract(tmp_path / "x.rar", tmp_path / "out", progress=False)


# ------------------------------------------------------------------ download_corpus
def test_download_corpus_fetches_extracts_and_skips_on_rerun(http_server, tmp_path):
    tar_bytes = _tar(tmp_path / "corpus.tar.gz").read_bytes()
    remotes = [
        Remote(http_server.add("corpus.tar.gz", tar_bytes),
               md5=hashlib.md5(tar_bytes).hexdigest()),
        Remote(http_server.add("labels.csv", b"file_name,caption\n") + "?download=1"),
    ]
    raw = tmp_path / "raw"
    assert download_corpus(remotes, raw, progress=False) == raw
    assert _tree(raw / "corpus") == {k.removeprefix("corpus/"): v for k, v in FILES.items()}
    assert (raw / "labels.csv").read_bytes() == b"file_name,caption\n"
    assert (raw / "archives" / "corpus.tar.gz").read_bytes() == tar_bytes
    seen = len(http_server.requests)
    (raw / "archives" / "corpus.tar.gz").unlink()  # the marker alone is enough to skip
    download_corpus(remotes, raw, progress=False)
    assert len(http_server.requests) == seen
