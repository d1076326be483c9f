"""Word boundaries on real read speech against published reference times (issue 3)."""

from pathlib import Path

import numpy as np

from pipeline import audio
from pipeline.align import AlignConfig, make_aligner

FIXTURES = Path(__file__).parent / "fixtures"


def _reference(line: str) -> tuple[str, list[tuple[str, float, float]]]:
    """One line of the LibriSpeech alignment release -> (utterance id, timed words)."""
    utt, words_field, times_field = line.split()
    labels = words_field.strip('"').split(",")
    ends = [float(t) for t in times_field.strip('"').split(",")]
    words, start = [], 0.0
    for label, end in zip(labels, ends, strict=True):
        if label:  # an empty label is a silence segment
            words.append((label, start, end))
        start = end
    return utt, words


def test_librispeech_boundaries_match_the_alignment_release():
    line = (FIXTURES / "librispeech-alignments" / "dev-clean.txt").read_text().strip()
    utt, ref = _reference(line)
    samples = audio.load(FIXTURES / "speech" / f"{utt}.flac").samples
    text = " ".join(w for w, _, _ in ref)
    hyp = make_aligner(AlignConfig()).align(samples, text, "en")
    assert [w.word for w in hyp] == [w for w, _, _ in ref]
    starts = [abs(h.start - r[1]) for h, r in zip(hyp, ref, strict=True)]
    ends = [abs(h.end - r[2]) for h, r in zip(hyp, ref, strict=True)]
    errors = np.array(starts + ends)
    # measured 17.6 ms mean (bench/RESULTS.md); MFA-level is ~20 ms
    assert errors.mean() < 0.020
    # Every boundary inside the speech is within 50 ms.  At the two utterance edges the
    # conventions differ: the release (MFA) starts MISTER at 0.50 s and ends GOSPEL at 5.51 s,
    # both in background-level audio; the pause-edge refinement follows the human-labelled
    # convention (TIMIT) and puts them where the level leaves / reaches the background
    # (measured 53 and 107 ms from the release's times).
    assert max(starts[1:] + ends[:-1]) <= 0.050
    assert starts[0] < 0.060 and ends[-1] < 0.120
