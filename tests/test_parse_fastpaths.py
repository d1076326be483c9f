"""The parse fast paths of issue 11 give exactly what the generic code gives."""

from __future__ import annotations

import os
import pickle
from dataclasses import asdict, fields, replace
from pathlib import Path

import pytest

from dataset_recipes import textfiles
from dataset_recipes.common import FileIndex, stem
from dataset_recipes.manifest import _without_ext
from pipeline.record import Label, Record

_TEXT = "\ufeffab\r\n\n  \ncaf\u00e9\t\u4e2d\r\r\nlast"


def _reference(path: Path) -> list[tuple[int, str]]:
    with open(path, encoding="utf-8-sig", newline="\n") as f:
        return [(n, line.removesuffix("\n")) for n, line in enumerate(f, 1)]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 22])
def test_text_lines_any_chunk_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   chunk: int) -> None:
    path = tmp_path / "f.tsv"
    path.write_text(_TEXT, encoding="utf-8")
    monkeypatch.setattr(textfiles, "_CHUNK", chunk)
    lines = textfiles.text_lines(path)
    assert lines is not None
    assert list(lines) == _reference(path) == [
        (1, "ab\r"), (2, ""), (3, "  "), (4, "caf\u00e9\t\u4e2d\r\r"), (5, "last")]
    assert list(textfiles.read_lines(path, "f.tsv", "r", "train")) == [
        (1, "ab"), (4, "caf\u00e9\t\u4e2d"), (5, "last")]


def test_text_lines_none_when_not_decodable(tmp_path: Path) -> None:
    path = tmp_path / "f.tsv"
    path.write_bytes(b"ok\ncaf\xe9\n")
    assert textfiles.text_lines(path) is None
    items = list(textfiles.read_lines(path, "f.tsv", "r", "train"))
    assert items[0] == (1, "ok")
    assert items[1].line == 2 and "b'\\xe9'" in items[1].reason


_NAMES = ["a.mp3", ".mp3", "..mp3", "a", "a.b.c", ".a.b", "...", "a.", ".", "", "x/y.z",
          "x/.z", "x.y/z", "/a/b.wav", "a//b.wav", "./a.wav", "a/..", " .mp3"]


@pytest.mark.parametrize("name", _NAMES)
def test_path_helpers_match_os_path(name: str, tmp_path: Path) -> None:
    assert stem(name) == os.path.splitext(os.path.basename(name))[0]
    assert _without_ext(name) == os.path.splitext(name)[0]


def test_file_index_folders_as_os_path_split(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.wav").write_bytes(b"")
    index = FileIndex()
    assert index.exists(f"{tmp_path}/a/x.wav") and index.exists(f"{tmp_path}/a//x.wav")
    assert not index.exists(f"{tmp_path}/a/y.wav") and not index.exists(f"{tmp_path}/a/")
    assert set(index._folders) == {f"{tmp_path}/a"}


def test_record_and_label_init_as_the_dataclass() -> None:
    label = Label("s2tt", "hallo", (("src_lang", "en"), ("tgt_lang", "de")))
    assert label == Label.make("s2tt", "hallo", tgt_lang="de", src_lang="en")
    assert Label.make("aac", "x").args == ()
    record = Record("r", "train", "k", "/a.wav", "a.wav", "en", (label,), listing="l.tsv",
                    line=3)
    assert asdict(record) == {
        "recipe": "r", "split": "train", "key": "k", "audio": "/a.wav", "source": "a.wav",
        "language": "en", "labels": ({"task": "s2tt", "target": "hallo", "args": (
            ("src_lang", "en"), ("tgt_lang", "de"))},), "align": False, "meta": (),
        "listing": "l.tsv", "line": 3}
    assert [f.name for f in fields(Record)] == list(Record.__slots__)
    assert not hasattr(record, "__dict__")  # slots: 120 bytes a record, no dict
    assert pickle.loads(pickle.dumps(record)) == record
    assert hash(Record.from_json(record.to_json())) == hash(record)
    assert replace(record, key="z").key == "z"
    with pytest.raises(AttributeError):
        record.key = "q"  # type: ignore[misc]


def _gtzan_clips(folder: Path, ext: str) -> None:
    """Clips of every kind the GTZAN header check meets: valid AU and WAV (and the other
    format under the name), garbage, empty, truncated, a zero sample rate, a bare RIFF
    header (as jazz.00054.wav), a folder and a dangling link named as clips."""
    import io

    import numpy as np
    import soundfile as sf

    def clip(fmt: str) -> bytes:
        buf = io.BytesIO()
        sf.write(buf, np.zeros(64, np.int16), 22050, format=fmt, subtype="PCM_16")
        return buf.getvalue()

    good = clip("AU" if ext == ".au" else "WAV")
    zero_rate = bytearray(good)
    zero_rate[slice(16, 20) if ext == ".au" else slice(24, 28)] = bytes(4)
    contents = {0: good, 1: clip("WAV" if ext == ".au" else "AU"), 2: b"not audio" * 9,
                3: b"", 4: good[:30], 5: bytes(zero_rate), 6: b"RIFF\x24\x00\x00\x00WAVEfmt "}
    (folder / "blues").mkdir(parents=True)
    for n, data in contents.items():
        (folder / "blues" / f"blues.{n + 30:05d}{ext}").write_bytes(data)
    (folder / "blues" / f"blues.00040{ext}").mkdir()
    (folder / "blues" / f"blues.00041{ext}").symlink_to(folder / "nowhere")
    (folder / "blues" / f"blues.00042{ext}").write_bytes(good)
    for name in (f"jazz.00054{ext}", f"hiphop.00039{ext}"):  # (hiphop.00039: no split)
        (folder / name.split(".")[0]).mkdir()
        (folder / name.split(".")[0] / name).write_bytes(contents[6])


@pytest.mark.parametrize("ext", [".au", ".wav"])
def test_gtzan_opens_is_sure_only_where_the_header_reads(tmp_path: Path, ext: str) -> None:
    """_opens (libsndfile called directly) says True exactly where _read_header
    (SoundFile) reads the header, so the records and rejects are those of the check
    through SoundFile alone."""
    import soundfile as sf

    from dataset_recipes import gtzan

    _gtzan_clips(tmp_path, ext)
    paths = sorted(str(p) for p in tmp_path.rglob(f"*{ext}"))
    assert gtzan._SND is not None  # (the pinned soundfile has its binding where used)

    def reads(path: str) -> bool:
        try:
            gtzan._read_header(path)
            return True
        except (sf.LibsndfileError, RuntimeError):
            return False

    sure = {Path(p).name: gtzan._opens(p) for p in paths}
    assert sure == {Path(p).name: reads(p) for p in paths}
    # (libsndfile reads a .au file without a header as headerless u-law, a folder too)
    reads_as = (30, 31, 32, 33, 34, 40, 42) if ext == ".au" else (30, 31, 42)
    assert sure == {f"blues.000{n}{ext}": n in reads_as for n in range(30, 43)
                    if n not in (37, 38, 39)} | {f"jazz.00054{ext}": False,
                                                 f"hiphop.00039{ext}": False}


def test_gtzan_records_and_rejects_as_without_the_fast_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataset_recipes import gtzan

    for folder, ext in gtzan.LAYOUTS:
        _gtzan_clips(tmp_path / ext / folder, ext)
        root = tmp_path / ext
        fast = [repr(item) for item in gtzan.prepare(root)]
        with monkeypatch.context() as m:
            m.setattr(gtzan, "_SND", None)  # every clip through _check and SoundFile
            assert [repr(item) for item in gtzan.prepare(root)] == fast
        records = sum(item.startswith("Record(") for item in fast)
        unreadable = sum("unreadable audio" in item for item in fast)
        assert (records, unreadable, len(fast)) == ((7, 4, 12) if ext == ".au" else (3, 8, 12))
        corrupt = next(item for item in fast if "jazz.00054" in item)
        assert ("a known corrupt file of the re-upload" in corrupt) == (ext == ".wav")


def test_source_key_hash_is_sha256() -> None:
    """source_key's SHA-256 (CPython's own module where there is one) gives hashlib's
    digests, so keys are those of any Python."""
    import hashlib
    import random

    from dataset_recipes import common

    rng = random.Random(5)
    names = ["", "Car Keys", "a/b.wav", "\u00e9\u4e2d", "x" * 200, "bad\udcff"]
    names += ["".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(30)))
              for _ in range(2000)]
    for name in names:
        data = name.encode("utf-8", "surrogateescape")
        assert common._sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    assert common.source_key("Car Keys") == "Car_Keys-" + hashlib.sha256(
        b"Car Keys").hexdigest()[:8]


def test_path_helpers_match_os_path_on_random_names() -> None:
    import random

    rng = random.Random(7)
    for _ in range(50_000):
        name = "".join(rng.choice("a./ b") for _ in range(rng.randrange(9)))
        assert _without_ext(name) == os.path.splitext(name)[0], repr(name)
        assert stem(name) == os.path.splitext(os.path.basename(name))[0], repr(name)
