"""A small rule-based English grapheme-to-phoneme fallback (ARPABET, CMUdict phone set).

Only for words missing from the pocketsphinx dictionary (names, rare words).  Forced
alignment needs a plausible phone string, not a perfect one: the audio is known to hold
the word, so a roughly right pronunciation still finds its boundaries.  Trained G2P models
on PyPI (``g2p_en``) download NLTK data at run time, which an offline build cannot do.

The rules are greedy longest-match over letter groups, with a few context rules
(soft ``c``/``g`` before e/i/y, silent final ``e``).
"""

from __future__ import annotations

import re

# Letter groups, longest first within each starting letter (greedy longest match).
_GROUPS: dict[str, str] = {
    "tch": "CH", "sch": "S K", "dge": "JH", "igh": "AY", "ough": "AO", "augh": "AO",
    "tion": "SH AH N", "sion": "ZH AH N", "ture": "CH ER", "eigh": "EY",
    "ch": "CH", "sh": "SH", "th": "TH", "ph": "F", "wh": "W", "ck": "K", "ng": "NG",
    "qu": "K W", "gh": "G", "kn": "N", "wr": "R", "mb": "M",
    "ee": "IY", "ea": "IY", "oo": "UW", "ou": "AW", "ow": "OW", "oi": "OY", "oy": "OY",
    "ai": "EY", "ay": "EY", "au": "AO", "aw": "AO", "ei": "EY", "ey": "IY", "ie": "IY",
    "ue": "UW", "ew": "UW", "oa": "OW", "ar": "AA R", "er": "ER", "ir": "ER", "ur": "ER",
    "or": "AO R", "ll": "L", "ss": "S", "ff": "F", "tt": "T", "pp": "P", "rr": "R",
    "mm": "M", "nn": "N", "dd": "D", "bb": "B", "gg": "G", "zz": "Z", "cc": "K",
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH",
    "i": "IH", "j": "JH", "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P",
    "q": "K", "r": "R", "s": "S", "t": "T", "u": "AH", "v": "V", "w": "W", "x": "K S",
    "y": "Y", "z": "Z", "'": "",
}
_MAX_GROUP = max(len(g) for g in _GROUPS)
_VOWEL_PHONES = frozenset(
    "AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split()
)
_WORD_RE = re.compile(r"^[a-z']+$")


class G2PError(ValueError):
    """A word the fallback cannot pronounce (letters outside a-z)."""


def _letter(word: str, i: int) -> tuple[str, int]:
    """Phones for the letter group starting at ``word[i]`` and the group's length."""
    nxt = word[i + 1] if i + 1 < len(word) else ""
    ch = word[i]
    if ch in "cg" and nxt in ("e", "i", "y") and word[i : i + 2] not in ("ch", "gh"):
        return ("S" if ch == "c" else "JH"), 1  # soft c / soft g
    if ch == "e" and i == len(word) - 1 and i > 1:
        return "", 1  # silent final e
    if ch == "y" and i > 0:
        return ("IY" if i == len(word) - 1 else "IH"), 1  # y as a vowel
    for size in range(min(_MAX_GROUP, len(word) - i), 0, -1):
        group = word[i : i + size]
        if group in _GROUPS:
            return _GROUPS[group], size
    raise G2PError(f"no rule for {ch!r}")  # pragma: no cover - every a-z letter has one


def pronounce(word: str) -> str:
    """Return a space-separated ARPABET pronunciation of a lower-case English word.

    Raises :class:`G2PError` for words with characters outside ``a-z`` and ``'``.
    """
    if not _WORD_RE.match(word) or not word.strip("'"):
        raise G2PError(f"cannot pronounce {word!r}: only English letters a-z are supported")
    phones: list[str] = []
    i = 0
    while i < len(word):
        out, size = _letter(word, i)
        phones.extend(out.split())
        i += size
    if not any(p in _VOWEL_PHONES for p in phones):
        phones.append("AH")  # every spoken word has a nucleus ("hmm", "nth")
    # a doubled phone across letter groups ("kk" in "bookkeeper") is said once
    dedup = [p for j, p in enumerate(phones) if j == 0 or p != phones[j - 1]]
    return " ".join(dedup)
