"""English forced alignment with pocketsphinx 5 (acoustic model bundled in the wheel).

Two passes over the same audio (see docs/known-traps.md):

1. word-level alignment: ``set_align_text`` + ``process_raw(full_utt=True)``; the search
   is an FSG with optional silences between words.  It fails (no segmentation, or a
   missing trailing word) when the transcript does not match the audio; both are caught
   and reported as the item's reject reason.
2. phone-level pass: ``set_alignment`` re-aligns the first pass's word and silence
   sequence at the HMM-state level; word boundaries are read from that pass.  Its
   boundaries next to pauses are the Viterbi ones instead of the search's word exits.

Why these settings: ``bestpath=False`` (the lattice best path gives ``<s>`` a one-frame
duration that the phone pass cannot align: "phone 0 has impossible duration 1"), wider
``beam``/``wbeam`` than the defaults (with the defaults, a few clips of the espeak set
found no alignment depending on the dither noise), and a retry with a much wider beam
before giving up.  Audio is dithered with a fixed seed, so results are deterministic and
exact digital silence never reaches the decoder.

Timing (measured on real read speech with human word boundaries, bench/RESULTS.md):

* a frame index is converted to the time between the centres of two neighbouring
  analysis windows, :data:`FRAME_OFFSET` after the frame's first sample (the decoder's
  25.6 ms windows advance by 10 ms); read as the window start, every boundary was ~6 ms
  early;
* ``silprob`` (the decoder's silence insertion probability) is raised from 0.005 to 0.1,
  so an optional pause between words costs less than stretching a word over silence;
* word edges next to pauses, and boundaries where a word-final or word-initial stop
  meets the next word, are then moved onto the energy evidence
  (:mod:`pipeline.align.refine`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.align.base import AlignmentError
from pipeline.align.g2p import G2PError, pronounce
from pipeline.align.refine import refine_pause_edges, refine_stop_closures
from pipeline.format import SAMPLE_RATE

_FILLERS = frozenset({"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]"})
_VARIANT_RE = re.compile(r"\(\d+\)$")
_STOPS = frozenset("B D G P T K CH JH".split())  # stops and affricates (CMUdict phones)
FRAME_RATE = 100  # pocketsphinx frames per second
WINDOW_SECONDS = 0.025625  # pocketsphinx's analysis window (its -wlen default)
#: seconds from a frame's first sample to the midpoint between its window centre and the
#: previous frame's: where a boundary between frames f-1 and f lies in the audio
FRAME_OFFSET = (WINDOW_SECONDS - 1 / FRAME_RATE) / 2


@dataclass(frozen=True)
class SphinxOptions:
    """Decoder settings of the pocketsphinx backend (see :class:`AlignConfig`).

    ``silprob``: the decoder's silence insertion probability; ``edge_level``: threshold of
    :func:`~pipeline.align.refine.refine_pause_edges` (0 turns that refinement off);
    ``closure_level``: the same for :func:`~pipeline.align.refine.refine_stop_closures`;
    ``frame_offset``: seconds added to every frame time (0 reads a frame's time as its
    window start, as before issue 16).
    """

    g2p: bool = True
    phone_pass: bool = False
    dither_lsb: float = 2.0
    silprob: float = 0.1
    edge_level: float = 0.4
    closure_level: float = 0.2
    frame_offset: float = FRAME_OFFSET
    beam: float = 1e-80
    wbeam: float = 1e-40
    retry_beam: float = 1e-160
    retry_wbeam: float = 1e-80


def _decoder(beam: float, wbeam: float, silprob: float) -> Any:
    from pocketsphinx import Decoder

    return Decoder(
        samprate=SAMPLE_RATE, lm=None, bestpath=False, beam=beam, wbeam=wbeam,
        silprob=silprob, loglevel="FATAL",
    )


def to_pcm(samples: np.ndarray, dither_lsb: float) -> bytes:
    """16-bit PCM bytes of float samples, with Gaussian dither of ``dither_lsb`` LSB.

    The noise uses a fixed seed, so the same clip always aligns the same way.
    """
    noise = np.random.default_rng(0).normal(0.0, dither_lsb, len(samples))
    pcm = np.clip(np.round(samples.astype(np.float64) * 32767.0 + noise), -32768, 32767)
    return pcm.astype(np.int16).tobytes()


class SphinxBackend:
    """Pocketsphinx aligner for English; one instance holds its decoders (load once)."""

    name = "pocketsphinx"
    languages = frozenset({"en"})

    def __init__(self, options: SphinxOptions | None = None) -> None:
        self.options = options or SphinxOptions()
        opts = self.options
        self._decoders: list[Any] = [_decoder(opts.beam, opts.wbeam, opts.silprob)]

    def _retry_decoder(self) -> Any:
        if len(self._decoders) == 1:
            opts = self.options
            self._decoders.append(_decoder(opts.retry_beam, opts.retry_wbeam, opts.silprob))
        return self._decoders[1]

    def _prepare_words(self, dec: Any, units: list[str]) -> None:
        """Add pronunciations for words missing from the dictionary (or fail naming them)."""
        for word in dict.fromkeys(units):
            if dec.lookup_word(word) is not None:
                continue
            if not self.options.g2p:
                raise AlignmentError(
                    f"word {word!r} is not in the pocketsphinx dictionary "
                    "(set align.g2p=true to guess its pronunciation)"
                )
            try:
                dec.add_word(word, pronounce(word), True)
            except G2PError as err:
                raise AlignmentError(f"word {word!r} has no pronunciation: {err}") from None

    def align_units(self, samples: np.ndarray, units: list[str]) -> list[tuple[float, float]]:
        """Return ``(start, end)`` seconds for each unit, or raise :class:`AlignmentError`."""
        pcm = to_pcm(samples, self.options.dither_lsb)
        self._prepare_words(self._decoders[0], units)  # an unknown word fails here, no retry
        try:
            spans = self._run(self._decoders[0], pcm, units)
        except AlignmentError:
            retry = self._retry_decoder()
            self._prepare_words(retry, units)
            spans = self._run(retry, pcm, units)
        offset = self.options.frame_offset
        spans = [(s + offset, e + offset) for s, e in spans]
        if self.options.edge_level > 0:
            spans = refine_pause_edges(samples, spans, self.options.edge_level)
        if self.options.closure_level > 0:
            stops = [self._stop_edges(unit) for unit in units]
            spans = refine_stop_closures(samples, spans, stops, self.options.closure_level)
        return spans

    def _stop_edges(self, word: str) -> tuple[bool, bool]:
        """Whether ``word``'s (first) pronunciation begins / ends with a stop or affricate."""
        phones = (self._decoders[0].lookup_word(word) or "").split()
        return bool(phones) and phones[0] in _STOPS, bool(phones) and phones[-1] in _STOPS

    def _run(self, dec: Any, pcm: bytes, units: list[str]) -> list[tuple[float, float]]:
        try:
            dec.set_align_text(" ".join(units))
            dec.start_utt()
            dec.process_raw(pcm, full_utt=True)
            dec.end_utt()
        except RuntimeError as err:
            raise AlignmentError(f"pocketsphinx alignment failed: {err}") from None
        segs = dec.seg()
        if segs is None:
            raise AlignmentError(
                "pocketsphinx found no alignment (does the transcript match the audio?)"
            )
        spans = [(s.word, s.start_frame, s.end_frame + 1) for s in segs]
        if self.options.phone_pass:
            spans = self._phone_pass(dec, pcm) or spans
        return _check_words(spans, units)

    @staticmethod
    def _phone_pass(dec: Any, pcm: bytes) -> list[tuple[str, int, int]] | None:
        """State-level re-alignment of the first pass; ``None`` when it fails."""
        try:
            dec.set_alignment()
            dec.start_utt()
            dec.process_raw(pcm, full_utt=True)
            dec.end_utt()
            alignment = dec.get_alignment()
        except RuntimeError:
            return None
        if alignment is None:
            return None
        return [(w.name, w.start, w.start + w.duration) for w in alignment.words()]


def _check_words(
    spans: list[tuple[str, int, int]], units: list[str]
) -> list[tuple[float, float]]:
    """Keep the real words, check they are exactly ``units``, convert frames to seconds."""
    words = [(_VARIANT_RE.sub("", w), s, e) for w, s, e in spans if w not in _FILLERS]
    got = [w for w, _, _ in words]
    if got != units:
        missing = units[len(got) :] if got == units[: len(got)] else None
        detail = f"missing {' '.join(missing)!r}" if missing else f"got {' '.join(got)!r}"
        raise AlignmentError(
            f"pocketsphinx aligned {len(got)} of {len(units)} words ({detail})"
        )
    return [(s / FRAME_RATE, e / FRAME_RATE) for _, s, e in words]
