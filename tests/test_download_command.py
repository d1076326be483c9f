"""`python -m dataset_recipes.download`: LibriSpeech and Clotho downloads from a loopback
server give corpora their recipes read; bad requests fail before any download."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import py7zr
import pytest
from omegaconf import OmegaConf

from dataset_recipes import RECIPES, clotho, librispeech
from dataset_recipes import download as command
from pipeline.download import DownloadError, Downloads, Remote, download_declared
from pipeline.recipe import Recipe
from pipeline.record import Record

ROOT = Path(__file__).parents[1]


def _run(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """The command in-process (so that the tests' monkeypatches apply)."""
    cfg = OmegaConf.load(ROOT / "conf" / "download.yaml")
    cfg.pop("defaults")
    cfg.pop("hydra")
    cfg.merge_with_dotlist(list(args))
    return command.run(cfg)


def _served(monkeypatch: pytest.MonkeyPatch, recipe: Recipe, http_server, data: dict[str, bytes]
            ) -> Recipe:
    """``recipe`` with its declared files moved to the loopback server, each checked
    against the md5 of the bytes served under its name (a file not in ``data`` gets a
    404); registered in place of the real recipe for the command's lookups."""
    def move(r: Remote) -> Remote:
        body = data.get(r.filename)
        return dataclasses.replace(r, url=http_server.url(r.filename), sha256=None, size=None,
                                   md5=hashlib.md5(body).hexdigest() if body is not None else None)

    assert recipe.download is not None
    for name, body in data.items():
        http_server.add(name, body)
    dl = recipe.download
    moved = dataclasses.replace(dl, files=tuple(move(r) for r in dl.files), per_split={
        s: tuple(move(r) for r in rs) for s, rs in dl.per_split.items()})
    served = dataclasses.replace(recipe, download=moved)
    monkeypatch.setitem(RECIPES, recipe.info.name, served)
    return served


def _records(recipe: Recipe, raw: Path) -> list[tuple[str, str, str, tuple]]:
    items = recipe.prepare(recipe.locate(raw))
    return sorted((r.split, r.key, r.source, r.labels) for r in items if isinstance(r, Record))


def test_librispeech_download_gives_the_corpus(http_server, tmp_path, monkeypatch, capsys):
    sample = librispeech.make_sample(tmp_path / "sample")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:  # the official archive's layout
        tf.add(sample / "LibriSpeech" / "dev-clean", arcname="LibriSpeech/dev-clean")
    _served(monkeypatch, librispeech.RECIPE, http_server, {"dev-clean.tar.gz": buf.getvalue()})
    raw = tmp_path / "raw"
    assert _run(monkeypatch, "recipe=librispeech", f"raw={raw}", "splits=[dev-clean]") == 0
    assert f"librispeech: ready in {raw}" in capsys.readouterr().out
    got = _records(librispeech.RECIPE, raw)
    assert [k for _, k, _, _ in got] == ["1272-128104-0000", "2412-153948-0000"]
    assert got == [r for r in _records(librispeech.RECIPE, sample) if r[0] == "dev-clean"]
    assert http_server.requests == [("dev-clean.tar.gz", None)]
    assert _run(monkeypatch, "recipe=librispeech", f"raw={raw}", "splits=[dev-clean]") == 0
    assert len(http_server.requests) == 1  # finished: nothing fetched again


def test_clotho_download_unpacks_7z_next_to_csvs(http_server, tmp_path, monkeypatch):
    sample = clotho.make_sample(tmp_path / "sample")
    data = {}
    for kind in ("captions", "metadata"):
        name = f"clotho_{kind}_validation.csv"
        data[name] = (sample / name).read_bytes()
    archive = tmp_path / "clotho_audio_validation.7z"
    with py7zr.SevenZipFile(archive, "w") as z:  # members are validation/<file>.wav
        for wav in sorted((sample / "validation").iterdir()):
            z.writestr(wav.read_bytes(), f"validation/{wav.name}")
    data[archive.name] = archive.read_bytes()
    served = _served(monkeypatch, clotho.RECIPE, http_server, data)
    raw = tmp_path / "raw"
    assert served.download is not None
    assert download_declared(served.download, raw, splits=["validation"]) == raw
    assert sorted(p.name for p in raw.iterdir()) == [
        ".clotho_audio_validation.7z.extracted", "archives", "clotho_captions_validation.csv",
        "clotho_metadata_validation.csv", "validation"]
    got = _records(clotho.RECIPE, raw)
    assert len(got) == 3
    assert got == [r for r in _records(clotho.RECIPE, sample) if r[0] == "validation"]


def test_recipe_without_download_prints_hint_and_exits_2(monkeypatch, capsys):
    base = RECIPES["clotho"]
    info = type(base.info)(**{**base.info.__dict__, "name": "handmade", "title": "Handmade",
                              "download_hint": "ask the authors by e-mail"})
    monkeypatch.setitem(RECIPES, "handmade", Recipe(info, base.locate, base.prepare,
                                                    base.make_sample, download=None))
    assert _run(monkeypatch, "recipe=[clotho,handmade]") == 2
    err = capsys.readouterr().err
    assert "handmade: no automatic download for Handmade." in err
    assert "How to get it: ask the authors by e-mail" in err


def test_bad_splits_fail_before_any_download(http_server, monkeypatch, capsys, tmp_path):
    _served(monkeypatch, librispeech.RECIPE, http_server, {})
    assert _run(monkeypatch, "recipe=librispeech", f"raw={tmp_path}",
                "splits=[dev-clean,dev-dirty]") == 2
    assert "librispeech: unknown split(s) ['dev-dirty']; choose from train-clean-100" in \
        capsys.readouterr().err
    assert _run(monkeypatch, "recipe=nosuch") == 2
    assert "unknown recipe 'nosuch'" in capsys.readouterr().err
    assert http_server.requests == []
    assert list(tmp_path.iterdir()) == []


def test_download_error_exits_1_naming_the_url(http_server, monkeypatch, capsys, tmp_path):
    _served(monkeypatch, librispeech.RECIPE, http_server, {})
    assert _run(monkeypatch, "recipe=librispeech", f"raw={tmp_path}", "splits=[test-other]") == 1
    assert f"error: librispeech: {http_server.url('test-other.tar.gz')}: HTTP 404" in \
        capsys.readouterr().err


def test_command_line_refuses_unknown_split(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dataset_recipes.download", "recipe=clotho", f"raw={tmp_path}",
         "splits=[training]"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ})
    assert proc.returncode == 2, proc.stderr
    assert "error: clotho: unknown split(s) ['training']; choose from development, " \
        "validation, evaluation" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_splits_of_a_recipe_that_downloads_everything_together_are_refused(monkeypatch,
                                                                           capsys):
    assert _run(monkeypatch, "recipe=esc50", "splits=[fold1]") == 2
    assert "error: esc50: this recipe downloads all its files together; drop splits=" in \
        capsys.readouterr().err


def test_a_bug_keeps_its_traceback_a_user_error_does_not(monkeypatch, tmp_path, capsys):
    def broken(_target: Path) -> None:
        raise KeyError("x")  # a bug in a recipe's unpack step, not a user error

    def refused(_target: Path) -> None:
        raise DownloadError("archive member outside the corpus; report it")

    for unpack, outcome in ((broken, KeyError), (refused, 1)):
        recipe = dataclasses.replace(RECIPES["esc50"], download=Downloads(unpack=unpack))
        monkeypatch.setitem(RECIPES, "esc50", recipe)
        if outcome is KeyError:
            with pytest.raises(KeyError, match="'x'"):
                _run(monkeypatch, "recipe=esc50", f"raw={tmp_path}")
        else:
            assert _run(monkeypatch, "recipe=esc50", f"raw={tmp_path}") == 1
            assert capsys.readouterr().err == ("error: esc50: archive member outside the "
                                               "corpus; report it\n")
