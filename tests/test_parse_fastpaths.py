"""The parse fast paths of issue 11 give exactly what the generic code gives."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import asdict, fields, replace
from pathlib import Path

import pytest

from dataset_recipes import textfiles
from dataset_recipes.common import FileIndex, path_key, source_key, stem, stem_key
from pipeline.errors import InputError
from pipeline.record import Label, Record, labels_of

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
    assert _or_error(path_key, name) == _or_error(
        lambda n: source_key(n, os.path.splitext(n)[0]), name)
    assert _or_error(stem_key, name) == _or_error(lambda n: source_key(stem(n)), name)


def _or_error(key: Callable[[str], str], name: str) -> str:
    try:
        return key(name)
    except ValueError as err:  # (an empty key)
        return f"ValueError: {err}"


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
        assert stem(name) == os.path.splitext(os.path.basename(name))[0], repr(name)


def test_one_call_keys_as_source_key_on_random_names() -> None:
    """stem_key and path_key give source_key's keys (and errors) for any name."""
    import random

    rng = random.Random(11)
    alphabet = "aZ9_-. \t/\\\x1f\x7f\u00e9\u4e2d"
    names = ["Sound 0.wav", "Car Keys.wav", "Car_Keys.wav", "a b/c d.flac", "clips/0/u0.wav"]
    names += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 9)))
              for _ in range(60_000)]
    fast = 0
    for name in names:
        assert _or_error(stem_key, name) == _or_error(
            lambda n: source_key(stem(n)), name), repr(name)
        assert _or_error(path_key, name) == _or_error(
            lambda n: source_key(n, os.path.splitext(n)[0]), name), repr(name)
        fast += name.isascii() and "." in name.rpartition("/")[2][1:]  # (the one-call case)
    assert stem_key("Car Keys.wav") == "Car_Keys-" + __import__("hashlib").sha256(
        b"Car Keys").hexdigest()[:8]
    assert path_key("clips/a b.wav") == "clips_a_b-" + __import__("hashlib").sha256(
        b"clips/a b.wav").hexdigest()[:8]
    assert fast > 3_000


def test_labels_of_makes_the_labels_init_makes() -> None:
    made = labels_of("aac", iter(["a dog", "", "a dog"]))
    assert made == tuple(Label("aac", t) for t in ("a dog", "", "a dog"))
    assert [repr(x) for x in made] == [repr(Label("aac", t)) for t in ("a dog", "", "a dog")]
    assert made[0].__class__ is Label and hash(made[0]) == hash(Label("aac", "a dog"))
    assert pickle.loads(pickle.dumps(made)) == made and replace(made[1], target="b").target == "b"
    assert asdict(made[0]) == {"task": "aac", "target": "a dog", "args": ()}
    assert labels_of("aac", []) == ()
    with pytest.raises(AttributeError):
        made[0].target = "q"  # type: ignore[misc]


def test_clotho_row_check_as_caption_by_caption(tmp_path: Path) -> None:
    """Clotho's one check of a row's five captions takes a row only where each caption
    is its collapsed form and not empty (else the captions are read one by one)."""
    import csv
    import random

    from dataset_recipes import clotho

    rng = random.Random(3)
    pool = ["A dog barks.", "caf\u00e9 au lait", "x", "a | b", "", " ", "  lead", "trail ",
            "two  spaces", "tab\tx", "nb\u00a0sp", "ideo\u3000x", "ls\u2028x", "zw\u200bx",
            "bell\x07", "del\x7f", "nel\x85", "a   b", "\x1f", "\u00adsoft"]
    rows = [[f"c{i}.wav"] + [rng.choice(pool[:4] if rng.random() < 0.85 else pool)
                             for _ in range(5)] for i in range(3000)]
    (tmp_path / "development").mkdir()
    for row in rows:
        (tmp_path / "development" / row[0]).write_bytes(b"")
    with open(tmp_path / "clotho_captions_development.csv", "w", newline="",
              encoding="utf-8") as f:
        csv.writer(f).writerows([["file_name", *clotho.CAPTIONS], *rows])
    got = {r.key: r.labels for r in clotho.prepare(tmp_path) if isinstance(r, Record)}
    for row in rows:
        want = tuple(Label("aac", " ".join(c.split())) for c in row[1:] if c.split())
        assert got.get(row[0][:-4], ()) == want, row
    assert sum(all(c == " ".join(c.split()) and c for c in row[1:]) for row in rows) > 1000


_CSVS = [b"", b"\n\n", b"a,b\n1,2\n", b'\n\na,b\r\n1,2\r\n\r\n3\r\n,4\r\n"x\ny",5\r\n6,"open',
         b"a,b\n" + b"1," + b'"' + b"x" * 140_000 + b'"\n2,3\n,\n', b'"unclosed\n', b"b,c\n1,2\n",
         b'a,b,a\n1,2,3\n4, ,6\n"q""uote",x,y\n']


@pytest.mark.parametrize("data", _CSVS)
def test_csv_rows_in_one_loop_as_records_then_rows(data: bytes, tmp_path: Path) -> None:
    """read_csv_rows and read_csv_fields read a decodable file in one loop: the same rows,
    rejects and header errors as csv_records then _csv_rows (the undecodable-file path)."""
    path = tmp_path / "f.csv"
    path.write_bytes(data)

    def reference(as_dict: bool) -> list[str]:
        records = textfiles.csv_records(path)
        try:
            header = textfiles._csv_header(path, records, ("a",))
        except InputError as err:
            return [f"InputError: {err}"]
        columns = {c: i for i, c in enumerate(header)}
        return [repr(item) for item in textfiles._csv_rows(
            records, "f.csv", "r", "s", ("a",), header, columns, as_dict)]

    def ours(as_dict: bool) -> list[str]:
        try:
            if as_dict:
                return [repr(i) for i in textfiles.read_csv_rows(path, "f.csv", "r", "s", ("a",))]
            columns, rows = textfiles.read_csv_fields(path, "f.csv", "r", "s", ("a",))
            return [repr(columns), *(repr(item) for item in rows)]
        except InputError as err:
            return [f"InputError: {err}"]

    assert ours(True) == reference(True)
    want = reference(False)
    if want[:1] and want[0].startswith("InputError"):
        assert ours(False) == want
    else:
        header = data.decode().replace("\r", "").lstrip("\n").split("\n")[0].split(",")
        assert ours(False) == [repr({c: i for i, c in enumerate(header)}), *want]
