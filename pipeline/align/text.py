"""Transcript handling for alignment: original words, and the normalized units aligned.

An aligner needs the spoken form of a transcript (``"Dr. Smith's 2nd"`` is aligned as
``smith's second``), but the SRWT target must carry the words as written.  A transcript
becomes a list of :class:`Token`: ``text`` is an original word (what the target shows),
``units`` its normalized form (what the backend aligns).  A token's time span runs from
its first unit's start to its last unit's end.

* English and other space-separated languages: one token per whitespace word; units are
  lower-cased, punctuation stripped (inner apostrophes kept), hyphens and slashes split,
  and (English only) numbers spelled out (``19`` -> ``nineteen``, ``3rd`` -> ``third``).
* Chinese and Japanese: one token per CJK character, as in the released SRWT example
  ``面<|0.86|>条<|1.17|>机``; Latin runs inside them stay whole words.

A word that is only punctuation (``-``, ``...``) has nothing to align; it is glued to the
previous word's text (or the next one's, at the start) so the target keeps it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

#: Languages written without spaces: aligned per character.
CHARACTER_LANGUAGES = frozenset({"zh", "ja", "zh_tr"})

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at "}
_NUMBER_RE = re.compile(r"(\d+(?:,\d{3})*)(?:\.(\d+))?(st|nd|rd|th|s)?")
_CJK_CLASS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{_CJK_CLASS}]")
_CJK_SPLIT_RE = re.compile(f"[{_CJK_CLASS}]|[^{_CJK_CLASS}\\W]+|[^{_CJK_CLASS}\\w]+")


@dataclass(frozen=True)
class Token:
    """One original word of a transcript and the normalized units that align it."""

    text: str
    units: tuple[str, ...]


def number_words(n: int) -> list[str]:
    """Spell a non-negative integer in English words (``1905`` -> ``one thousand nine ...``).

    Years between 1100 and 1999 read as pairs (``1905`` -> ``nineteen oh five``,
    ``1900`` -> ``nineteen hundred``), as they
    are said in read speech.
    """
    if n < 0:
        raise ValueError(f"negative number {n}")
    if 1100 <= n <= 1999:
        hi, lo = divmod(n, 100)
        tail = ["hundred"] if lo == 0 else ["oh", _ONES[lo]] if lo < 10 else number_words(lo)
        return [*number_words(hi), *tail]
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        tens, ones = divmod(n, 10)
        return [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    for scale, name in _SCALES:
        if n >= scale:
            head, rest = divmod(n, scale)
            return [*number_words(head), name, *(number_words(rest) if rest else [])]
    raise AssertionError("unreachable")  # pragma: no cover - every n >= 100 has a scale


def _ordinal(words: list[str]) -> list[str]:
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return [*words[:-1], last]


def _spell_numbers(word: str) -> str:
    def repl(m: re.Match[str]) -> str:
        whole, frac, suffix = m.group(1), m.group(2), m.group(3)
        words = number_words(int(whole.replace(",", "")))
        if frac:
            words += ["point", *(_ONES[int(d)] for d in frac)]
        if suffix in ("st", "nd", "rd", "th"):
            words = _ordinal(words)
        elif suffix == "s":  # 1990s -> nineteen nineties
            words = [*words[:-1], _ordinal(words[-1:])[0].replace("ieth", "ies")]
        return " " + " ".join(words) + " "

    return _NUMBER_RE.sub(repl, word)


def _clean(word: str, lang: str) -> list[str]:
    """Normalized alignment units of one space-separated word (may be empty)."""
    w = unicodedata.normalize("NFKC", word).lower().replace("\u2019", "'")
    if w.startswith("$"):  # $5 is said "five dollars"
        w = w[1:] + " dollars"
    for sym, spoken in _SYMBOLS.items():
        w = w.replace(sym, spoken)
    if lang == "en":
        w = _spell_numbers(w)
    w = re.sub(r"[-/\u2013\u2014_]", " ", w)
    units = []
    for part in w.split():
        part = "".join(ch for ch in part if ch.isalnum() or ch == "'").strip("'")
        if part:
            units.append(part)
    return units


def _cjk_tokens(word: str) -> list[Token]:
    """One token per CJK character; other runs (Latin words, punctuation) stay whole."""
    tokens = []
    for run in _CJK_SPLIT_RE.findall(word):
        units = (run,) if _CJK_RE.fullmatch(run) else tuple(_clean(run, ""))
        tokens.append(Token(run, units))
    return tokens


def _glue_punctuation(tokens: list[Token]) -> list[Token]:
    """Attach unit-less tokens to a neighbour's text, so the target keeps every word."""
    out: list[Token] = []
    pending = ""
    for tok in tokens:
        if tok.units:
            out.append(Token(pending + tok.text, tok.units))
            pending = ""
        elif out:
            sep = "" if _CJK_RE.match(out[-1].text[-1]) else " "
            out[-1] = Token(out[-1].text + sep + tok.text, out[-1].units)
        else:
            pending += tok.text + ("" if _CJK_RE.search(tok.text) else " ")
    if pending and not out:
        return []
    return out


def tokenize(text: str, lang: str) -> list[Token]:
    """Split ``text`` into original words with their normalized alignment units.

    Returns an empty list when nothing in ``text`` can be aligned (only punctuation).
    """
    tokens: list[Token] = []
    for word in text.split():
        if lang in CHARACTER_LANGUAGES:
            tokens.extend(_cjk_tokens(word))
        else:
            tokens.append(Token(word, tuple(_clean(word, lang))))
    return _glue_punctuation(tokens)
