"""Lhotse recipe: manifests of plain lines are read without Lhotse's classes, with the
same records, rejects and errors as through :func:`lhotse.load_manifest`."""

from __future__ import annotations

import gc
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import dataset_recipes.lhotse_manifests as lm
from dataset_recipes import lhotse_plain

ROOT = Path(__file__).resolve().parents[1]
ALIGN = {"word": [["HELLO", 0.0, 0.4, None], ["<eps>", 0.4, 0.3, None], ["WORLD", 0.7, 0.3]],
         "phone": [["HH", 0.0, 0.1]]}


def _rec(i: int, **kw: Any) -> dict[str, Any]:
    d = {"id": f"r{i}", "sources": [{"type": "file", "channels": [0],
                                     "source": f"audio/r{i}.wav"}],
         "sampling_rate": 16000, "num_samples": 16000, "duration": 1.0, "channel_ids": [0]}
    return {k: v for k, v in {**d, **kw}.items() if v != "DEL"}


def _sup(i: int, **kw: Any) -> dict[str, Any]:
    d = {"id": f"s{i}", "recording_id": f"r{i}", "start": 0.0, "duration": 1.0, "channel": 0,
         "text": f"HELLO, WORLD {i}!", "language": "English", "speaker": "x"}
    return {k: v for k, v in {**d, **kw}.items() if v != "DEL"}


def _lines(items: list[Any], ascii_only: bool = True) -> list[bytes]:
    return [json.dumps(x, ensure_ascii=ascii_only).encode() if not isinstance(x, bytes) else x
            for x in items]


R = [_rec(i) for i in range(5)]
S = [_sup(i) for i in range(5)]
#: name -> (recording lines, supervision lines, line end, whether both are plain)
CASES: dict[str, tuple[list[Any], list[Any], bytes, bool]] = {
    "plain": (R, S, b"\n", True),
    "crlf": (R, S, b"\r\n", True),
    "lone_cr": (R, S, b"\r", True),
    "no_channel_ids": ([_rec(i, channel_ids="DEL") for i in range(5)], S, b"\n", True),
    "alignments": (R, [_sup(0, alignment=ALIGN), _sup(1, alignment={"word": []}),
                       _sup(2, alignment={}), _sup(3, alignment={"word": [["HI", 0.0, 2.5]]}),
                       _sup(4, alignment={"phone": [["a", 0, 1]]})], b"\n", True),
    "custom": (R, [_sup(0, custom={"orig": "x"}), _sup(1, custom=None), *S[2:]], b"\n", True),
    "sources": ([_rec(0, sources=[R[0]["sources"][0], R[1]["sources"][0]]),
                 _rec(1, sources=[{"type": "url", "channels": [0], "source": "http://x/a"}]),
                 _rec(2, sources=[{"type": "file", "channels": [0], "source": "./audio/r2.wav"}]),
                 _rec(3, sources=[{"type": "file", "channels": [0], "source": "r3.wav"}]),
                 _rec(4, sources=[{"type": "file", "channels": [0], "source": "ABS"}])],
                S, b"\n", True),
    "values": ([_rec(i, duration=1) for i in range(5)],
               [_sup(0, start=0), _sup(1, start=0.5), _sup(2, duration=0.5),
                _sup(3, language="Polish"), _sup(4, text="...")], b"\n", True),
    "unicode": (R, [_sup(0, text="Caf\u00e9 na\u00efve"), _sup(1, language="zh",
                                                       text="\u4f60\u597d\uff0c\u4e16\u754c"),
                    *S[2:]], b"\n", True),
    "mismatches": ([*R, _rec(0, duration=2.0), _rec(9)], [*S, _sup(7, recording_id="nowhere")],
                   b"\n", True),
    "empty": ([], [], b"\n", True),
    # read as Lhotse reads them: orjson (where installed) makes integers beyond 64 bits
    # floats, and json reads what orjson rejects (NaN, a lone surrogate escape)
    "json_edges": ([_rec(0, duration=2**64 + 1), _rec(1, duration=float("nan")), *R[2:]],
                   [_sup(0, duration=2**64), *_lines([_sup(1, text="A \ud800 B")]), *S[2:]],
                   b"\n", True),
    # left to Lhotse's classes
    "bom": (R, [b"\xef\xbb\xbf" + _lines(S[:1])[0], *S[1:]], b"\n", False),
    "latin1": (R, [_lines(S[:1])[0].replace(b"HELLO", b"CAF\xe9"), *S[1:]], b"\n", False),
    "bad_json": ([*R[:2], b'{"id": "broken', *R[2:]], [*S, b""], b"\n", False),
    "word_dicts": (R, [_sup(0, alignment={"word": [{"symbol": "HI", "start": 0.0,
                                                   "duration": 0.5}]}), *S[1:]], b"\n", False),
    "transforms": ([_rec(0, transforms=[{"name": "Speed", "kwargs": {"factor": 1.1}}]), *R[1:]],
                   S, b"\n", False),
    "nested_custom": (R, [_sup(0, custom={"a": {"b": 1}}), *S[1:]], b"\n", False),
    "unknown_field": (R, [_sup(0, foo=1), *S[1:]], b"\n", False),
    "alignment_null": (R, [_sup(0, alignment=None), *S[1:]], b"\n", False),
    "missing_field": ([_rec(0, num_samples="DEL"), *R[1:]], S, b"\n", False),
    "unsortable_channels": ([_rec(0, channel_ids="DEL", sources=[{
        "type": "file", "channels": [0, "a"], "source": "audio/r0.wav"}]), *R[1:]], S, b"\n",
                            False),
    "swapped": (S, R, b"\n", False),
}


def _write(raw: Path, recs: list[Any], sups: list[Any], end: bytes, gz: bool) -> Path:
    ext = ".jsonl.gz" if gz else ".jsonl"
    for name, items in (("recordings", recs), ("supervisions", sups)):
        data = b"".join(line + end for line in _lines(items, ascii_only=name == "recordings"))
        data = data.replace(b'"ABS"', json.dumps(str(raw / "audio" / "r4.wav")).encode())
        opener = gzip.open if gz else open
        with opener(raw / f"x_{name}_train{ext}", "wb") as f:
            f.write(data)
    (raw / "audio").mkdir()
    for i in (0, 1, 2, 4):  # r3 is missing
        (raw / "audio" / f"r{i}.wav").touch()
    return raw


def _parse(raw: Path) -> tuple[str, Any]:
    try:
        return "items", list(lm.prepare(lm.locate(raw)))
    except Exception as err:  # noqa: BLE001 - the same error both ways is part of the contract
        return "error", (type(err), str(err))


@pytest.mark.parametrize("gz", [True, False], ids=["jsonl.gz", "jsonl"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_plain_reader_gives_what_lhotse_gives(name: str, gz: bool, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    recs, sups, end, plain = CASES[name]
    raw = _write(tmp_path, recs, sups, end, gz)
    used: list[bool] = []
    real = lhotse_plain.read_plain

    def spy(path: Path, parse: Any) -> Any:
        out = real(path, parse)
        used.append(out is not None)
        return out

    monkeypatch.setattr(lhotse_plain, "read_plain", spy)
    fast = _parse(raw)
    assert all(used) == plain and used  # plain manifests skip Lhotse, the others do not
    monkeypatch.setattr(lhotse_plain, "read_plain", lambda path, parse: None)
    assert fast == _parse(raw)  # Lhotse's objects: same records, rejects, errors
    if name == "plain":
        assert fast[0] == "items" and len(fast[1]) == 5


def test_plain_manifests_do_not_import_lhotse(tmp_path: Path) -> None:
    raw = _write(tmp_path, R, S, b"\n", True)
    code = ("import sys; import dataset_recipes.lhotse_manifests as m; "
            f"items = list(m.prepare(m.locate(__import__('pathlib').Path({str(raw)!r})))); "
            "print(len(items), 'lhotse' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == ["5", "False", "False"]


def test_rows_are_flat_tuples_the_collector_stops_tracking(tmp_path: Path) -> None:
    raw = _write(tmp_path, [*R, _rec(9, sources=[R[0]["sources"][0], R[1]["sources"][0]])],
                 S, b"\n", True)
    recs = lhotse_plain.read_plain(raw / "x_recordings_train.jsonl.gz",
                                   lhotse_plain.plain_recording)
    sups = lhotse_plain.read_plain(raw / "x_supervisions_train.jsonl.gz",
                                   lhotse_plain.plain_supervision)
    assert recs is not None and sups is not None
    assert recs[0] == (1, "r0", 1.0, "file", "audio/r0.wav")
    assert recs[5] == (6, "r9", 1.0, "file", "audio/r0.wav", "file", "audio/r1.wav")
    assert sups[4] == (5, "s4", "r4", 0.0, 1.0, "HELLO, WORLD 4!", "English", None)
    assert lhotse_plain.recording_view(recs[5]) == lhotse_plain.Recording(
        "r9", (lhotse_plain.Source("file", "audio/r0.wav"),
               lhotse_plain.Source("file", "audio/r1.wav")), 1.0)
    gc.collect()  # a tracked row would cost every full collection a look at it
    assert [(type(r), gc.is_tracked(r)) for r in recs + sups] == [(tuple, False)] * 11


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize("last_end", [True, False], ids=["ends", "open"])
def test_chunked_reading_gives_the_lines_iteration_gives(
        end: bytes, last_end: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"".join(line + end for line in _lines(S, ascii_only=False))
    path = tmp_path / "x_supervisions_train.jsonl"
    path.write_bytes(data if last_end else data[:-len(end)])
    with open(path) as f:  # the lines as Lhotse's load_jsonl gets them
        want = [lhotse_plain.plain_supervision(json.loads(line), n)
                for n, line in enumerate(f, 1)]
    assert len(want) == 5
    for chunk in (1, 2, 3, 7, 64, 1 << 20):  # chunk ends inside lines and between \r and \n
        monkeypatch.setattr(lhotse_plain, "_CHUNK", chunk)
        assert lhotse_plain.read_plain(path, lhotse_plain.plain_supervision) == want


def test_folders_answer_as_find_and_normpath(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from dataset_recipes.common import FileIndex, rel_str
    from dataset_recipes.lhotse_audio import Folders, find, normpath

    cwd, out = tmp_path / "cwd", str(tmp_path / "out")
    for name in ("cwd/corpus/m/audio/a.wav", "cwd/corpus/m/audio/.h.wav", "cwd/corpus/m/top.wav",
                 "cwd/audio/b.wav", "cwd/c.wav", "out/d.wav"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    monkeypatch.chdir(cwd)
    simple = ["audio/a.wav", "top.wav", "audio/b.wav", "c.wav", f"{cwd}/corpus/m/audio/a.wav",
              f"{out}/d.wav"]
    odd = ["./audio/a.wav", "audio//a.wav", "audio/../audio/a.wav", "audio/.h.wav", "audio/",
           "", "/", "/d.wav", f"{out}//d.wav", "audio/gone.wav", f"{out}/gone.wav", "audio/.",
           "audio/..", 5, None]
    # corpus roots: absolute, relative, and relative through '..' (relative sources there
    # are left to find)
    for root in (str(cwd / "corpus"), "corpus", "../cwd/corpus"):
        base = os.path.join(root, "m", "")
        files = FileIndex()
        folders = Folders(base, root, files)
        for path in simple + odd:
            try:
                found = find(path, base, files)  # type: ignore[arg-type]
            except TypeError:
                found = None
            want = None if found is None else (normpath(found), rel_str(normpath(found), root))
            got = folders.locate(path)
            assert got == want or (got is None and (path in odd or root[0] == ".")), path
        if root[0] == ".":
            assert [folders.locate(p) is None for p in simple] == [True] * 4 + [False] * 2
            continue
        whole = f"{cwd}/corpus/m/audio/a.wav"
        assert [folders.locate(p) for p in simple] == [
            (f"{base}audio/a.wav", "m/audio/a.wav"), (f"{base}top.wav", "m/top.wav"),
            (f"{cwd}/audio/b.wav", f"{cwd}/audio/b.wav"), (f"{cwd}/c.wav", f"{cwd}/c.wav"),
            (whole, "m/audio/a.wav" if root[0] == "/" else whole), (f"{out}/d.wav", f"{out}/d.wav")]
