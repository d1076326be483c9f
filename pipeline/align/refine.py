"""Word edges at pauses, moved onto the acoustic evidence (short-time energy).

Pocketsphinx's word spans reach into neighbouring pauses: on real read speech (TIMIT
word boundaries, bench/RESULTS.md) a word after a pause started 58 ms early and a word
before a pause ended 42 ms late on average; the phone next to the pause takes silent
frames that belong to the silence model.  Where a word meets a pause, its
edge is moved to where the audio first (or last) rises above a level between the clip's
background and its speech: silence at a pause belongs to the pause.

Only edges next to a pause (the first word's start, the last word's end, and both sides
of a gap between two words) move, and only inwards (:func:`refine_pause_edges`).

A boundary shared by two words moves only when a stop consonant meets it
(:func:`refine_stop_closures`): the silent closure of a stop belongs to the stop's word
(human labels give a word-final stop its closure and release, a word-initial stop its
closure), while the decoder often hands a final stop's closure to the next word.  The
boundary goes to the end of the near-background run around it after a word-final stop,
to its start before a word-initial stop.  With stops on both sides it stays.

A clip whose loud and quiet frames differ by less than :data:`MIN_RANGE_DB` carries no
usable evidence (noise as loud as speech) and is left unchanged.
"""

from __future__ import annotations

import numpy as np

from pipeline.format import SAMPLE_RATE

HOP = 0.005  #: seconds between energy frames
WINDOW = 0.010  #: seconds of audio per energy frame
MIN_RANGE_DB = 20.0  #: spread of frame levels (95th - 5th percentile) needed to refine
SPEECH_DB = 25.0  #: frames within this of the loudest are speech (as align's coverage check)
MIN_TRIM = 0.010  #: a silent run shorter than this at a word edge is left in the word
MIN_CLOSURE, MAX_CLOSURE = 0.020, 0.250  #: seconds of near-background audio taken as a closure
MIN_WORD = 0.030  #: a moved shared boundary leaves both words at least this long
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
    Returns ``None`` when they are less than :data:`MIN_RANGE_DB` apart.  The threshold
    never exceeds :data:`SPEECH_DB` below the loudest frame, so audio that the aligner's
    coverage check counts as speech is never taken out of a word.
    """
    db = frame_levels(samples)
    if db.size == 0:
        return None
    low, high = np.percentile(db, [5, 95])
    if high - low < MIN_RANGE_DB:
        return None
    return db > min(low + level * (high - low), db.max() - SPEECH_DB)


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


def _quiet_run(loud: np.ndarray, boundary: float) -> tuple[float, float] | None:
    """The run of quiet frames at ``boundary`` as ``(start, end)`` seconds, or ``None``."""
    k = round((boundary - WINDOW / 2) / HOP)
    if not 1 <= k < len(loud) or (loud[k] and loud[k - 1]):
        return None
    a = e = k if not loud[k] else k - 1
    while a > 0 and not loud[a - 1]:
        a -= 1
    while e + 1 < len(loud) and not loud[e + 1]:
        e += 1
    # edges between frame centres, as in refine_pause_edges
    return a * HOP + WINDOW / 2 - HOP / 2, (e + 1) * HOP + WINDOW / 2 - HOP / 2


def refine_stop_closures(
    samples: np.ndarray,
    spans: list[tuple[float, float]],
    stops: list[tuple[bool, bool]],
    level: float,
) -> list[tuple[float, float]]:
    """Give the closure at a shared boundary to the word whose stop it is.

    ``stops[i]`` says whether word ``i`` begins and whether it ends with a stop consonant
    (or affricate).  Quiet frames are those below ``level`` of the background-to-speech
    range (see :func:`speech_frames`); a quiet run of :data:`MIN_CLOSURE` to
    :data:`MAX_CLOSURE` around the boundary is the closure.
    """
    loud = speech_frames(samples, level)
    out = [list(span) for span in spans]
    if loud is None:
        return list(spans)
    for i in range(1, len(out)):
        boundary = out[i][0]
        ends_stop, starts_stop = stops[i - 1][1], stops[i][0]
        if abs(boundary - out[i - 1][1]) > _GAP or ends_stop == starts_stop:
            continue
        run = _quiet_run(loud, boundary)
        if run is None or not MIN_CLOSURE <= run[1] - run[0] <= MAX_CLOSURE:
            continue
        new = run[1] if ends_stop else run[0]
        if out[i - 1][0] + MIN_WORD < new < out[i][1] - MIN_WORD:
            out[i - 1][1] = out[i][0] = new
    return [(s, e) for s, e in out]
