"""Forced alignment: audio + transcript + language -> words with start and end times.

The build turns the words into Qwen-Audio's SRWT target (``tags.srwt_target``).  One
:class:`Aligner` lives in each build worker (a Ray actor) and loads each language's model
once, on first use.  Backends, chosen per language in :class:`AlignConfig`:

* ``pocketsphinx`` (English, the default): acoustic model bundled in the PyPI wheel,
  works offline anywhere; see :mod:`pipeline.align.sphinx`.
* ``whisperx`` (wav2vec2 CTC, many languages including Chinese): model from a local
  directory or the local Hugging Face cache; see :mod:`pipeline.align.ctc`.

The transcript is aligned in a normalized form (:mod:`pipeline.align.text`) and the
original words come back.  Every per-item failure is an :class:`AlignmentError` whose
message is the reject reason; a configuration that cannot work raises
:class:`AlignConfigError` from :meth:`Aligner.check` before the build starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.align.base import AlignConfigError, AlignmentError, Backend
from pipeline.align.text import Token, tokenize
from pipeline.format import SAMPLE_RATE
from pipeline.record import Word

__all__ = [
    "AlignConfig", "AlignConfigError", "Aligner", "AlignmentError", "Word", "make_aligner",
]

BACKENDS = ("pocketsphinx", "whisperx")
_SPHINX_LANGUAGES = frozenset({"en"})


def _default_backends() -> dict[str, str]:
    return {"en": "pocketsphinx", "zh": "whisperx"}


def _default_models() -> dict[str, str]:
    return {
        "en": "facebook/wav2vec2-base-960h",
        "zh": "jonatasgrosman/wav2vec2-large-xlsr-53-chinese-zh-cn",
    }


@dataclass(frozen=True)
class AlignConfig:
    """Settings of the alignment stage (the ``align:`` node of the build config)."""

    enabled: bool = True
    backends: dict[str, str] = field(default_factory=_default_backends)
    sil_threshold: float = 0.2
    whisperx_models: dict[str, str] = field(default_factory=_default_models)
    hf_cache: str | None = None
    device: str = "cpu"
    g2p: bool = True
    phone_pass: bool = False
    dither_lsb: float = 2.0
    silprob: float = 0.1
    edge_level: float = 0.4
    closure_level: float = 0.2
    min_speech_dbfs: float = -50.0
    max_word_seconds: float = 3.0
    max_unaligned_speech: float = 0.4
    skip_languages: tuple[str, ...] = ()

    @staticmethod
    def from_dict(d: dict[str, Any] | None) -> AlignConfig:
        """Build from a plain dict (``OmegaConf.to_container``); unknown keys are an error."""
        d = dict(d or {})
        names = {f.name: f for f in dataclasses.fields(AlignConfig)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise AlignConfigError(
                f"unknown align option(s) {', '.join(unknown)}; valid: {', '.join(names)}"
            )
        if "skip_languages" in d:
            d["skip_languages"] = tuple(str(x) for x in (d["skip_languages"] or ()))
        for key in ("backends", "whisperx_models"):
            if key in d:
                if not isinstance(d[key], dict):
                    raise AlignConfigError(f"align.{key} must be a mapping language -> name")
                d[key] = {str(k): str(v) for k, v in d[key].items()}
        for key in (
            "sil_threshold", "dither_lsb", "silprob", "edge_level", "closure_level",
            "min_speech_dbfs", "max_word_seconds", "max_unaligned_speech",
        ):
            if key in d and not isinstance(d[key], int | float):
                raise AlignConfigError(f"align.{key} must be a number, not {d[key]!r}")
        for key in ("edge_level", "closure_level"):
            if not 0 <= d.get(key, 0) < 1:
                raise AlignConfigError(f"align.{key} must be in [0, 1), not {d[key]}")
        if not 0 < d.get("silprob", 0.1) <= 1:
            raise AlignConfigError(f"align.silprob must be in (0, 1], not {d['silprob']}")
        return AlignConfig(**d)


class Aligner:
    """Holds the loaded alignment models of one worker and aligns transcripts."""

    def __init__(self, cfg: AlignConfig) -> None:
        self.cfg = cfg
        self._backends: dict[str, Backend] = {}

    def _problem(self, lang: str) -> str | None:
        """Why ``lang`` cannot be aligned with this configuration, or ``None``."""
        name = self.cfg.backends.get(lang)
        if name is None:
            return (
                f"language {lang!r} has no alignment backend; add align.backends.{lang} "
                f"(one of {', '.join(BACKENDS)}) or build with alignment off (ALIGN=0)"
            )
        if name not in BACKENDS:
            return f"align.backends.{lang}={name!r} is not a backend; choose one of {BACKENDS}"
        if name == "pocketsphinx" and lang not in _SPHINX_LANGUAGES:
            return f"pocketsphinx aligns English only; set align.backends.{lang}=whisperx"
        if name == "whisperx":
            model = self.cfg.whisperx_models.get(lang)
            if model is None:
                return f"no whisperx model for {lang!r}; set align.whisperx_models.{lang}"
            from pipeline.align.ctc import resolve_model

            try:
                resolve_model(model, lang, self.cfg.hf_cache)
            except AlignConfigError as err:
                return str(err)
        return None

    def check(self, languages: set[str]) -> None:
        """Raise :class:`AlignConfigError` listing every language that cannot be aligned.

        Called on the build driver before any work, so a missing model fails fast.
        """
        wanted = sorted(set(languages) - set(self.cfg.skip_languages))
        problems = [p for lang in wanted if (p := self._problem(lang))]
        if problems:
            raise AlignConfigError("alignment cannot run:\n  " + "\n  ".join(problems))

    def unavailable(self, languages: set[str]) -> dict[str, AlignConfigError]:
        """The languages among ``languages`` whose configured model is not on this machine,
        each with its :class:`~pipeline.align.ctc.ModelNotFound` error.

        A sample build leaves them out of SRWT instead of stopping (its corpus is there to
        try the pipeline, not to train on); a real build stops (:meth:`check`).
        """
        missing = {}
        for lang in sorted(set(languages) - set(self.cfg.skip_languages)):
            model = self.cfg.whisperx_models.get(lang)
            if self.cfg.backends.get(lang) != "whisperx" or model is None:
                continue
            from pipeline.align.ctc import ModelNotFound, resolve_model

            try:
                resolve_model(model, lang, self.cfg.hf_cache)
            except ModelNotFound as err:
                missing[lang] = err
            except AlignConfigError:  # a folder without a model: a configuration error
                pass
        return missing

    def backend(self, lang: str) -> Backend:
        """The backend of ``lang``, loaded on first use and kept for the worker's life."""
        if lang in self._backends:
            return self._backends[lang]
        problem = self._problem(lang)
        if problem:
            raise AlignConfigError(problem)
        name = self.cfg.backends[lang]
        backend: Backend
        if name == "pocketsphinx":
            from pipeline.align.sphinx import SphinxBackend, SphinxOptions

            opts = SphinxOptions(
                g2p=self.cfg.g2p, phone_pass=self.cfg.phone_pass, dither_lsb=self.cfg.dither_lsb,
                silprob=self.cfg.silprob, edge_level=self.cfg.edge_level,
                closure_level=self.cfg.closure_level,
            )
            backend = SphinxBackend(opts)
        else:
            from pipeline.align.ctc import CtcBackend, resolve_model

            model_dir = resolve_model(self.cfg.whisperx_models[lang], lang, self.cfg.hf_cache)
            backend = CtcBackend(model_dir, lang, self.cfg.device)
        self._backends[lang] = backend
        return backend

    def align(self, samples: np.ndarray, text: str, lang: str) -> list[Word]:
        """Time the original words of ``text`` in ``samples`` (16 kHz mono float32).

        Raises :class:`AlignmentError` (the reject reason) when the item cannot be aligned.
        """
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1 or len(samples) < SAMPLE_RATE // 10:
            raise AlignmentError(f"audio must be mono and at least 0.1 s, got {samples.shape}")
        _check_speech(samples, self.cfg.min_speech_dbfs)
        tokens = tokenize(text, lang)
        if not tokens:
            raise AlignmentError(f"transcript has no words to align: {text[:80]!r}")
        units = [u for tok in tokens for u in tok.units]
        try:
            spans = self.backend(lang).align_units(samples, units)
        except AlignConfigError as err:
            raise AlignmentError(str(err)) from None
        words = _to_words(tokens, spans, len(samples) / SAMPLE_RATE)
        _check_durations(words, self.cfg.max_word_seconds)
        _check_coverage(samples, words, self.cfg.max_unaligned_speech)
        return words


def _check_speech(samples: np.ndarray, min_dbfs: float) -> None:
    """Refuse audio whose loudest 25 ms window is below ``min_dbfs`` (no speech in it)."""
    win = SAMPLE_RATE // 40
    n = len(samples) // win * win
    frames = samples[:n].reshape(-1, win) if n else samples[None, :]
    peak_rms = float(np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)).max())
    level = 20 * np.log10(max(peak_rms, 1e-10))
    if level < min_dbfs:
        raise AlignmentError(
            f"audio is silent (loudest 25 ms at {level:.0f} dBFS, below "
            f"align.min_speech_dbfs={min_dbfs:g}); nothing to align"
        )


def _to_words(tokens: list[Token], spans: list[tuple[float, float]], duration: float) -> list[Word]:
    """Join unit spans into original words; clip to the audio, keep times monotonic."""
    if len(spans) != sum(len(t.units) for t in tokens):
        raise AlignmentError(f"aligner returned {len(spans)} spans for {len(tokens)} words")
    words: list[Word] = []
    i = 0
    prev_end = 0.0
    for tok in tokens:
        first, last = spans[i], spans[i + len(tok.units) - 1]
        i += len(tok.units)
        start = min(max(first[0], prev_end, 0.0), duration)
        end = min(max(last[1], start), duration)
        words.append(Word(tok.text, round(start, 3), round(end, 3)))
        prev_end = end
    return words


def _check_durations(words: list[Word], max_seconds: float) -> None:
    for w in words:
        if w.end - w.start > max_seconds:
            raise AlignmentError(
                f"word {w.word!r} spans {w.end - w.start:.2f} s (over align.max_word_seconds="
                f"{max_seconds:g}); the transcript probably does not match the audio"
            )
        if w.end <= w.start:
            raise AlignmentError(f"word {w.word!r} got no duration; audio too short for text")


def _check_coverage(samples: np.ndarray, words: list[Word], max_seconds: float) -> None:
    """Refuse an alignment that leaves much loud audio outside every word.

    A transcript that misses words still aligns: the extra speech goes into pauses.  Loud
    means a 10 ms frame within 25 dB of the clip's loudest; correct alignments leave at
    most about 0.15 s of it outside words (espeak set, LibriSpeech clips), wrong ones 0.5 s
    and more.
    """
    win = SAMPLE_RATE // 100
    n = len(samples) // win
    rms = np.sqrt((samples[: n * win].astype(np.float64).reshape(n, win) ** 2).mean(axis=1))
    db = 20 * np.log10(rms + 1e-10)
    outside = db > db.max() - 25.0
    for w in words:
        outside[int(w.start * 100) : int(np.ceil(w.end * 100))] = False
    loud = float(outside.sum()) / 100
    if loud > max_seconds:
        raise AlignmentError(
            f"{loud:.2f} s of speech-level audio lies outside the aligned words (over "
            f"align.max_unaligned_speech={max_seconds:g}); the transcript misses words"
        )


def make_aligner(cfg: AlignConfig) -> Aligner:
    """Build the :class:`Aligner` of one worker (models load lazily, once per language)."""
    return Aligner(cfg)
