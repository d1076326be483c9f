"""LibriSpeech recipe: parsing the official layout, rejects, sample corpus."""

from pathlib import Path

import pytest
from recipe_helpers import split_items

from dataset_recipes import RECIPES
from dataset_recipes.librispeech import RECIPE
from pipeline.recipe import CorpusNotFound

FIXTURE = Path(__file__).parent / "fixtures" / "librispeech"


def test_registered():
    assert RECIPES["librispeech"] is RECIPE


def test_parses_fixture_with_exact_labels_and_rejects():
    root = RECIPE.locate(FIXTURE)
    assert root == FIXTURE / "LibriSpeech"
    assert RECIPE.locate(root) == root  # the corpus folder itself works too
    records, rejects = split_items(RECIPE.prepare(root))
    assert [(r.split, r.key) for r in records] == [
        ("train-clean-100", "2412-153948-0000"),
        ("dev-clean", "1272-128104-0000"),
        ("dev-clean", "1272-128104-0002"),
    ]
    rec = records[1]
    assert rec.source == "dev-clean/1272/128104/1272-128104-0000.flac"
    assert rec.language == "en" and rec.align is True
    assert [(lb.task, lb.target, lb.kwargs) for lb in rec.labels] == [
        ("asr", "mister quilter", {"lang": "en"})  # <|wo_itn|>: lower-case spoken form
    ]
    got = {(r.source, r.line, r.reason) for r in rejects}
    trans = "dev-clean/1272/128104/1272-128104.trans.txt"
    assert got == {
        ("dev-clean/1272/128104/1272-128104-0001.flac", 2,
         "listed in 1272-128104.trans.txt line 2 but the audio file is missing"),
        (trans, 4, "malformed transcript line (want '<spk>-<chap>-<utt> TEXT')"),
        ("dev-clean/1272/128104/1272-128104-0003.flac", None,
         "audio file has no line in 1272-128104.trans.txt"),
    }


def test_missing_corpus_error_names_layout_download_and_sample(tmp_path):
    with pytest.raises(CorpusNotFound) as err:
        RECIPE.locate(tmp_path)
    msg = str(err.value)
    assert "LibriSpeech/<split>/<spk>/<chap>" in msg
    assert "openslr.org/resources/12/dev-clean.tar.gz" in msg
    assert "make build-dataset RECIPE=librispeech SOURCE=sample" in msg


def test_sample_corpus_parses_cleanly(tmp_path):
    root = RECIPE.locate(RECIPE.make_sample(tmp_path))
    records, rejects = split_items(RECIPE.prepare(root))
    assert rejects == []
    assert sum(r.split == "dev-clean" for r in records) == 2
    assert sum(r.split == "train-clean-100" for r in records) == 22
    first = next(r for r in records if r.key == "9000-1-0000")
    assert first.labels[0].target == "the quick brown fox jumps over the lazy dog"


def test_asr_text_lower_cases_and_keeps_apostrophes():
    from dataset_recipes.librispeech import asr_text

    assert asr_text("I DON'T  THINK 'TIS SO") == "i don't think 'tis so"
