"""Transcript normalization for alignment and the rule-based G2P fallback."""

from __future__ import annotations

import pytest

from pipeline.align.g2p import G2PError, pronounce
from pipeline.align.text import number_words, tokenize


def _pairs(text: str, lang: str = "en") -> list[tuple[str, tuple[str, ...]]]:
    return [(t.text, t.units) for t in tokenize(text, lang)]


def test_english_case_punctuation_numbers() -> None:
    assert _pairs('"Hello," she said -- 19 times in 1905, the 3rd.') == [
        ('"Hello,"', ("hello",)),
        ("she", ("she",)),
        ("said --", ("said",)),
        ("19", ("nineteen",)),
        ("times", ("times",)),
        ("in", ("in",)),
        ("1905,", ("nineteen", "oh", "five")),
        ("the", ("the",)),
        ("3rd.", ("third",)),
    ]


def test_apostrophes_hyphens_and_symbols() -> None:
    assert _pairs("Don't re-enter R&D at 50% or $5") == [
        ("Don't", ("don't",)),
        ("re-enter", ("re", "enter")),
        ("R&D", ("r", "and", "d")),
        ("at", ("at",)),
        ("50%", ("fifty", "percent")),
        ("or", ("or",)),
        ("$5", ("five", "dollars")),
    ]


def test_chinese_per_character_punctuation_glued() -> None:
    assert _pairs("面条机，好。GPU", "zh") == [
        ("面", ("面",)), ("条", ("条",)), ("机，", ("机",)), ("好。", ("好",)), ("GPU", ("gpu",)),
    ]


def test_leading_punctuation_and_empty() -> None:
    assert _pairs("-- well") == [("-- well", ("well",))]
    assert tokenize("... !", "en") == []


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"), (15, "fifteen"), (40, "forty"), (99, "ninety nine"),
        (105, "one hundred five"), (1900, "nineteen hundred"), (1999, "nineteen ninety nine"),
        (2024, "two thousand twenty four"), (1_000_000, "one million"),
    ],
)
def test_number_words(n: int, words: str) -> None:
    assert " ".join(number_words(n)) == words


@pytest.mark.parametrize(
    ("word", "phones"),
    [
        ("quilter", "K W IH L T ER"),
        ("knight", "N AY T"),
        ("grace", "G R AE S"),
        ("nth", "N TH AH"),
        ("church", "CH ER CH"),
    ],
)
def test_g2p_rules(word: str, phones: str) -> None:
    assert pronounce(word) == phones


def test_g2p_refuses_non_english_letters() -> None:
    with pytest.raises(G2PError, match="only English letters"):
        pronounce("straße")
