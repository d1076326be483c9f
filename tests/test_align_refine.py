"""Word edges at pauses moved onto the energy evidence (pipeline.align.refine, issue 16).

Synthetic clips (tone bursts in low noise) pin the exact edge positions; the bundled
LibriSpeech clip (tests/fixtures/speech) checks the behaviour on real speech.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline import audio
from pipeline.align import AlignConfig, AlignConfigError, make_aligner
from pipeline.align.refine import refine_pause_edges, refine_stop_closures, speech_frames
from pipeline.align.sphinx import FRAME_OFFSET

SR = 16000
FIXTURES = Path(__file__).parent / "fixtures"
MISTER = ("MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES AND WE ARE GLAD TO WELCOME "
          "HIS GOSPEL")


def _clip(bursts: list[tuple[float, float]], seconds: float = 1.0) -> np.ndarray:
    """Noise at -80 dBFS with 0.1-amplitude 440 Hz tones over ``bursts`` (seconds)."""
    x = np.random.default_rng(1).normal(0, 1e-4, int(seconds * SR))
    t = np.arange(len(x)) / SR
    for a, b in bursts:
        on = (t >= a) & (t < b)
        x[on] += 0.1 * np.sin(2 * np.pi * 440 * t[on])
    return x.astype(np.float32)


def test_edges_next_to_pauses_move_onto_the_sound() -> None:
    # frames are 10 ms every 5 ms: the first frame holding tone from 0.30 s starts at
    # 0.295 s, so the edge lies between its centre (0.300) and the previous one's (0.295)
    got = refine_pause_edges(_clip([(0.3, 0.7)]), [(0.2, 0.8)], 0.4)
    assert got == [pytest.approx((0.2975, 0.7025), abs=1e-9)]


def test_a_boundary_shared_by_two_words_stays() -> None:
    got = refine_pause_edges(_clip([(0.3, 0.45), (0.55, 0.7)]), [(0.2, 0.5), (0.5, 0.8)], 0.4)
    assert got == [pytest.approx((0.2975, 0.5)), pytest.approx((0.5, 0.7025))]


def test_both_sides_of_a_gap_move() -> None:
    got = refine_pause_edges(
        _clip([(0.3, 0.4), (0.6, 0.7)]), [(0.2, 0.45), (0.55, 0.8)], 0.4
    )
    assert got == [pytest.approx((0.2975, 0.4025)), pytest.approx((0.5975, 0.7025))]


def test_left_alone_without_evidence() -> None:
    spans = [(0.2, 0.8)]
    # speech as loud as the noise: no usable spread of levels
    noisy = np.random.default_rng(2).normal(0, 0.1, SR).astype(np.float32)
    assert speech_frames(noisy, 0.4) is None
    assert refine_pause_edges(noisy, spans, 0.4) == spans
    # a word over silence only (its sound lies elsewhere) keeps its span
    assert refine_pause_edges(_clip([(0.85, 0.95)]), spans, 0.4) == spans
    # a silent run shorter than 10 ms at the edge is not trimmed
    assert refine_pause_edges(_clip([(0.205, 0.795)]), spans, 0.4) == spans


def test_threshold_stays_under_speech_level() -> None:
    """Audio within 25 dB of the loudest frame is speech whatever the level asks."""
    x = _clip([(0.1, 0.5)])
    t = np.arange(len(x)) / SR
    soft = (t >= 0.5) & (t < 0.9)
    x[soft] += 0.01 * np.sin(2 * np.pi * 440 * t[soft])  # 20 dB under the loud part
    frames = slice(round(0.6 / 0.005), round(0.8 / 0.005))
    assert speech_frames(x, 0.9)[frames].all()  # 90% of the way up is above it: capped
    assert speech_frames(x, 0.4)[frames].all()


CLOSURE = _clip([(0.1, 0.35), (0.45, 0.8)])  # 100 ms of background between two sounds


@pytest.mark.parametrize(
    ("stops", "boundary"),
    [
        ([(False, True), (False, False)], 0.4475),  # "like|a": the closure ends word 0
        ([(False, False), (True, False)], 0.3525),  # "a|cat": the closure starts word 1
        ([(False, True), (True, False)], 0.4),  # "get|to": stops on both sides, stays
        ([(False, False), (False, False)], 0.4),  # no stop: a boundary in a pause-like gap
    ],
)
def test_a_stop_closure_goes_to_the_stop_word(
    stops: list[tuple[bool, bool]], boundary: float
) -> None:
    got = refine_stop_closures(CLOSURE, [(0.1, 0.4), (0.4, 0.8)], stops, 0.2)
    assert got == [pytest.approx((0.1, boundary)), pytest.approx((boundary, 0.8))]


def test_closure_rule_limits() -> None:
    stops = [(False, True), (False, False)]
    # a gap between the words is a pause (refine_pause_edges' business), not a closure
    assert refine_stop_closures(CLOSURE, [(0.1, 0.38), (0.42, 0.8)], stops, 0.2) == [
        (0.1, 0.38), (0.42, 0.8)]
    # 300 ms of background is longer than any closure
    long_gap = _clip([(0.1, 0.35), (0.65, 0.9)])
    spans = [(0.1, 0.5), (0.5, 0.9)]
    assert refine_stop_closures(long_gap, spans, stops, 0.2) == spans
    # the move may not leave the next word shorter than 30 ms
    assert refine_stop_closures(CLOSURE, [(0.1, 0.4), (0.4, 0.47)], stops, 0.2) == [
        (0.1, 0.4), (0.4, 0.47)]


def test_real_speech_first_word_follows_leading_silence() -> None:
    """0.3 s more low-level noise in front moves only the refined times, by exactly 0.3 s."""
    x = audio.load(FIXTURES / "speech" / "1272-128104-0000.flac").samples
    pad = np.random.default_rng(3).normal(0, 3e-4, int(0.3 * SR)).astype(np.float32)
    aligner = make_aligner(AlignConfig())
    plain = aligner.align(x, MISTER, "en")
    padded = aligner.align(np.concatenate([pad, x]), MISTER, "en")
    assert plain[0].start == pytest.approx(0.553, abs=1e-9)  # level leaves background
    assert padded[0].start == pytest.approx(plain[0].start + 0.3, abs=0.0051)
    # without refinement the decoder starts the word 15 ms earlier, in the background noise
    raw = make_aligner(AlignConfig(edge_level=0)).align(x, MISTER, "en")
    assert raw[0].start == pytest.approx(0.538, abs=1e-9)
    shared = [k for k in range(len(raw) - 1) if raw[k].end == raw[k + 1].start]
    assert len(shared) == 15  # the pause after CLASSES (k = 8) is the only inner one
    assert all(plain[k].end == raw[k].end for k in shared)
    assert plain[8].end == pytest.approx(raw[8].end - 0.03, abs=1e-9)


def test_frame_times_are_window_midpoints() -> None:
    assert FRAME_OFFSET == pytest.approx(0.0078125)
    x = audio.load(FIXTURES / "speech" / "1272-128104-0000.flac").samples
    raw = make_aligner(AlignConfig(edge_level=0)).align(x, MISTER, "en")
    frames = [(w.start - FRAME_OFFSET) * 100 for w in raw] + [(w.end - FRAME_OFFSET) * 100
                                                              for w in raw]
    assert all(abs(f - round(f)) < 0.1 for f in frames)  # times are rounded to 1 ms


@pytest.mark.parametrize(("key", "value"), [("edge_level", 1.0), ("edge_level", -0.1),
                                            ("closure_level", 1.0), ("silprob", 0.0),
                                            ("silprob", 2.0)])
def test_config_ranges(key: str, value: float) -> None:
    with pytest.raises(AlignConfigError, match=f"align.{key} must be in"):
        AlignConfig.from_dict({key: value})
