"""Word edges at pauses, moved onto the acoustic evidence (short-time energy).

Pocketsphinx's word spans reach into neighbouring pauses: on real read speech (TIMIT
word boundaries) a word after a pause started about 40 ms early and a word before a pause
ended about 25 ms late, because a phone HMM next to silence absorbs silent frames more
cheaply than the decoder switches to its silence model.  Where a word meets a pause, its
edge is moved to where the audio first (or last) rises above a level between the clip's
background and its speech: silence at a pause belongs to the pause.

Only edges next to a pause (the first word's start, the last word's end, and both sides
of a gap between two words) move, and only inwards; a boundary shared by two words is
left alone, since silence there is usually a stop closure that belongs to the next word.
A clip whose loud and quiet frames differ by less than :data:`MIN_RANGE_DB` carries no
usable edge evidence (noise as loud as speech) and is left unchanged.
"""

from __future__ import annotations

import numpy as np

from pipeline.audio import SAMPLE_RATE

HOP = 0.005  #: seconds between energy frames
WINDOW = 0.010  #: seconds of audio per energy frame
MIN_RANGE_DB = 20.0  #: spread of frame levels (95th - 5th percentile) needed to refine
MIN_TRIM = 0.010  #: a silent run shorter than this at a word edge is left in the word
_GAP = 1e-3  #: seconds between two words that count as a pause


def frame_levels(samples: np.ndarray) -> np.ndarray:
    """Level in dB of each :data:`WINDOW` frame, one frame every :data:`HOP` seconds."""
    hop, win = round(HOP * SAMPLE_RATE), round(WINDOW * SAMPLE_RATE)
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < win:
        return np.zeros(0)
    n = (len(x) - win) // hop + 1
    power = np.lib.stride_tricks.sliding_window_view(x, win)[::hop][:n] ** 2
    return 10.0 * np.log10(power.mean(axis=1) + 1e-12)


def speech_frames(samples: np.ndarray, level: float) -> np.ndarray | None:
    """Frames above ``level`` of the way from the clip's background to its speech level.

    Background and speech level are the 5th and 95th percentiles of :func:`frame_levels`.
    Returns ``None`` when they are less than :data:`MIN_RANGE_DB` apart.
    """
    db = frame_levels(samples)
    if db.size == 0:
        return None
    low, high = np.percentile(db, [5, 95])
    if high - low < MIN_RANGE_DB:
        return None
    return db > low + level * (high - low)


def refine_pause_edges(
    samples: np.ndarray, spans: list[tuple[float, float]], level: float
) -> list[tuple[float, float]]:
    """Move word edges next to pauses onto the first/last speech frame inside the word.

    ``spans`` are ``(start, end)`` seconds in order; ``level`` is the threshold as a
    fraction of the background-to-speech range (0.4: 40% of the way up, in dB).  A word
    with no speech frame at all keeps its span.
    """
    loud = speech_frames(samples, level)
    if loud is None or not spans:
        return list(spans)
    min_run = round(MIN_TRIM / HOP)
    out = []
    for i, (start, end) in enumerate(spans):
        pause_before = i == 0 or start - spans[i - 1][1] > _GAP
        pause_after = i == len(spans) - 1 or spans[i + 1][0] - end > _GAP
        # frame k covers [k * HOP, k * HOP + WINDOW]; its centre is k * HOP + WINDOW / 2
        a = max(round((start - WINDOW / 2) / HOP), 0)
        b = min(round((end - WINDOW / 2) / HOP), len(loud))
        inside = np.flatnonzero(loud[a:b]) if b > a else np.zeros(0, dtype=int)
        if inside.size:
            first, last = a + int(inside[0]), a + int(inside[-1])
            if pause_before and first - a >= min_run:
                start = first * HOP + WINDOW / 2 - HOP / 2
            if pause_after and b - 1 - last >= min_run:
                end = last * HOP + WINDOW / 2 + HOP / 2
        out.append((start, end))
    return out
