"""Hostile and damaged shards, built in memory, for the readers' safety tests.

Shared by ``test_shard_safety.py`` (``pipeline.reader``, ``pipeline.verify``) and
``test_trainer_reader_safety.py`` (``trainer.reader``): both readers must refuse each case
with the same :class:`pipeline.format.FormatError` and the same message.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.audio import encode_flac
from pipeline.format import json_bytes
from pipeline.record import SampleMeta

FLAC = encode_flac(np.zeros(1600, np.float32))
Adder = Callable[[tarfile.TarFile], None]


def meta_json(key: str, **fields: object) -> bytes:
    """A valid ``<key>.json`` of a 0.1 s sound clip (``fields`` override its fields)."""
    obj = SampleMeta(
        key=key, tasks=[{"task": "aac", "prompt": "p", "target": "t"}], duration=0.1,
        language="unknown", source={"recipe": "r", "split": "s", "file": "f.wav"}).to_json()
    return json_bytes({**obj, **fields})


def hostile_tar(path: Path, add: Adder) -> Path:
    """A shard with one good sample, then whatever ``add`` puts in."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (("good.flac", FLAC), ("good.json", meta_json("good"))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add(tar)
    return path


def regular(name: str, data: bytes = b"x") -> Adder:
    """Adds a regular member ``name`` holding ``data``."""
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return add


def special(name: str, kind: bytes, link: str = "") -> Adder:
    """Adds a member of tar type ``kind`` (link, directory, device, FIFO)."""
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        tar.addfile(info)
    return add


def samples(*adders: Adder) -> Adder:
    """Adds what each of ``adders`` adds, in order."""
    def add(tar: tarfile.TarFile) -> None:
        for one in adders:
            one(tar)
    return add


#: case -> (what to add after the good sample, the error message it must raise: a regex)
HOSTILE: dict[str, tuple[Adder, str]] = {
    "absolute": (regular("/tmp/evil.json"), r"'/tmp/evil\.json': absolute path"),
    "dotdot": (regular("../evil.json"), r"'\.\./evil\.json': '\.\.' points outside the shard"),
    "nested dotdot": (regular("a/../../evil.json"), r"'\.\.' points outside the shard"),
    "subdir": (regular("sub/evil.json"), r"'sub/evil\.json': directories are not part"),
    "symlink": (special("evil.flac", tarfile.SYMTYPE, "../../outside"),
                r"'evil\.flac': links are refused \(target '\.\./\.\./outside'\)"),
    "hardlink": (special("evil.json", tarfile.LNKTYPE, "good.json"), r"links are refused"),
    "directory": (special("evil", tarfile.DIRTYPE),
                  r"'evil': not a regular file \(tar type b'5'\)"),
    "fifo": (special("evil.flac", tarfile.FIFOTYPE), r"not a regular file \(tar type b'6'\)"),
    "device": (special("evil.flac", tarfile.CHRTYPE), r"not a regular file \(tar type b'3'\)"),
    "block device": (special("evil.flac", tarfile.BLKTYPE),
                     r"not a regular file \(tar type b'4'\)"),
    "pickle": (regular("evil.pyd", b"cos\nsystem\n"), r"'evil\.pyd': unknown extension 'pyd'"),
    "numpy": (regular("evil.npy", b"\x93NUMPY"), r"'evil\.npy': unknown extension 'npy'"),
    "dotted key": (regular("a.b.flac", FLAC),
                   r"'a\.b\.flac': unknown extension 'b\.flac'.*keys must not contain dots"),
    "bad key": (regular("a b.json"), r"'a b\.json': key must match"),
    "missing json": (regular("lonely.flac", FLAC), r"key 'lonely' has no json member"),
    "second json": (regular("good.json", b"{}"), r"key 'good' has two 'json' members"),
    "repeated key": (samples(regular("other.json", meta_json("other")),
                             regular("other.flac", FLAC), regular("good.flac", FLAC)),
                     r"key 'good' appears twice"),
    "newer version": (samples(regular("new.flac", FLAC),
                              regular("new.json", meta_json("new", format_version=2))),
                      r"new\.json: written with format version 2, this reader knows versions "
                      r"up to 1; upgrade"),
    "not json": (samples(regular("bad.flac", FLAC), regular("bad.json", b"{'key': 1")),
                 r"bad\.json is not UTF-8 JSON"),
    "not utf-8": (samples(regular("bad.flac", FLAC), regular("bad.json", b'{"key": "\xff"}')),
                  r"bad\.json is not UTF-8 JSON"),
    "unknown field": (samples(regular("odd.flac", FLAC),
                              regular("odd.json", meta_json("odd", extra=1))),
                      r"odd\.json: unknown fields \['extra'\]"),
    "wrong key in json": (samples(regular("odd.flac", FLAC),
                                  regular("odd.json", meta_json("other"))),
                          r"odd\.json: JSON 'key' 'other' differs from the member key"),
    "too long": (samples(regular("long.flac", FLAC),
                         regular("long.json", meta_json("long", duration=31.0))),
                 r"long\.json: duration 31\.0 is outside \(0, 30\] seconds"),
}
