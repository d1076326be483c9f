"""Forced alignment with the default (pocketsphinx) backend, the CLI and the config.

Fixtures: tests/fixtures/espeak-words (synthetic speech with known word times) and
tests/fixtures/speech (two LibriSpeech utterances); see tests/fixtures/README.md.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from pipeline import audio, tags
from pipeline.align import (
    AlignConfig,
    AlignConfigError,
    Aligner,
    AlignmentError,
    make_aligner,
)
from pipeline.align.__main__ import main as cli_main

FIXTURES = Path(__file__).parent / "fixtures"
ESPEAK = sorted((FIXTURES / "espeak-words").glob("*.json"))
LIBRI = {
    "1272-128104-0000": "MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES AND WE ARE GLAD "
    "TO WELCOME HIS GOSPEL",
    "2412-153948-0000": "IF THE READER WILL EXCUSE ME I WILL SAY NOTHING OF MY ANTECEDENTS NOR "
    "OF THE CIRCUMSTANCES WHICH LED ME TO LEAVE MY NATIVE COUNTRY THE NARRATIVE WOULD BE "
    "TEDIOUS TO HIM AND PAINFUL TO MYSELF",
}


@pytest.fixture(scope="module")
def aligner() -> Aligner:
    return make_aligner(AlignConfig())


def _libri(utt: str) -> np.ndarray:
    return audio.load(FIXTURES / "speech" / f"{utt}.flac").samples


def test_espeak_set_word_starts_within_30ms(aligner: Aligner) -> None:
    errors = []
    for js in ESPEAK:
        ref = json.loads(js.read_text())
        words = aligner.align(audio.load(js.with_suffix(".wav")).samples, ref["text"], "en")
        assert [w.word for w in words] == ref["text"].split(), js.name
        errors += [abs(w.start - r["start"]) for w, r in zip(words, ref["words"], strict=True)]
    assert len(ESPEAK) == 22
    assert statistics.fmean(errors) < 0.030  # measured: 13.5 ms (9.8 before issue 16)


@pytest.mark.parametrize("utt", sorted(LIBRI))
def test_librispeech_every_word_aligned_and_srwt_round_trips(aligner: Aligner, utt: str) -> None:
    samples = _libri(utt)
    duration = len(samples) / 16000
    words = aligner.align(samples, LIBRI[utt], "en")
    assert [w.word for w in words] == LIBRI[utt].split()
    target = tags.srwt_target([(w.word, w.start, w.end) for w in words], duration, 0.2)
    parsed = tags.parse_srwt(target)
    assert [p[0] for p in parsed if p[0] != tags.SIL] == LIBRI[utt].split()
    times = [p[1] for p in parsed] + [parsed[-1][2]]
    assert times == sorted(times) and 0.0 <= times[0] and times[-1] <= round(duration, 2)
    # one time token ends each segment; the first segment's start <|0.00|> is in the prompt
    assert target.count("<|") - target.count(tags.SIL) == len(parsed)


def test_original_words_kept_while_aligning_normalized_form(aligner: Aligner) -> None:
    text = 'Mister Quilter, is the "apostle" of the middle-classes and we are glad to ' \
        "welcome his gospel."
    words = aligner.align(_libri("1272-128104-0000"), text, "en")
    assert [w.word for w in words] == text.split()
    plain = aligner.align(_libri("1272-128104-0000"), LIBRI["1272-128104-0000"], "en")
    # "middle-classes" is one original word spanning the aligned units middle + classes
    assert [w.start for w in words] == [w.start for k, w in enumerate(plain) if k != 8]
    assert (words[7].word, words[7].end) == ("middle-classes", plain[8].end)


def test_leading_digital_silence_is_dithered_and_aligned(aligner: Aligner) -> None:
    ref = json.loads(ESPEAK[0].read_text())
    samples = audio.load(ESPEAK[0].with_suffix(".wav")).samples
    padded = np.concatenate([np.zeros(8000, np.float32), samples, np.zeros(8000, np.float32)])
    words = aligner.align(padded, ref["text"], "en")
    errors = [abs(w.start - 0.5 - r["start"]) for w, r in zip(words, ref["words"], strict=True)]
    assert statistics.fmean(errors) < 0.030


def test_unknown_word_gets_a_guessed_pronunciation(aligner: Aligner) -> None:
    text = LIBRI["1272-128104-0000"].replace("QUILTER", "QUILTERZ")
    words = aligner.align(_libri("1272-128104-0000"), text, "en")
    assert words[1].word == "QUILTERZ"


@pytest.mark.parametrize(
    ("text", "samples", "reason"),
    [
        ("the quick brown fox jumps over the lazy dog", "libri", "transcript"),
        (LIBRI["1272-128104-0000"], "silence", "silent"),
        (LIBRI["1272-128104-0000"], "digital", "silent"),
        ("MISTER QUILTER", "libri", "outside the aligned words"),
        (LIBRI["1272-128104-0000"].replace("QUILTER", "日本"), "libri", "'日本'"),
        ("... !", "libri", "no words"),
    ],
)
def test_failures_are_alignment_errors(
    aligner: Aligner, text: str, samples: str, reason: str
) -> None:
    x = {
        "libri": _libri("1272-128104-0000"),
        "silence": np.random.default_rng(0).normal(0, 1e-4, 48000).astype(np.float32),
        "digital": np.zeros(48000, np.float32),
    }[samples]
    with pytest.raises(AlignmentError, match=reason):
        aligner.align(x, text, "en")


def test_unknown_word_without_g2p_fails_naming_it() -> None:
    strict = make_aligner(AlignConfig(g2p=False))
    text = LIBRI["1272-128104-0000"].replace("QUILTER", "QUILTERZ")
    with pytest.raises(AlignmentError, match="'quilterz' is not in the pocketsphinx dictionary"):
        strict.align(_libri("1272-128104-0000"), text, "en")


def test_check_lists_every_unusable_language() -> None:
    cfg = AlignConfig(backends={"en": "pocketsphinx", "de": "pocketsphinx"})
    with pytest.raises(AlignConfigError) as err:
        make_aligner(cfg).check({"en", "de", "fr"})
    msg = str(err.value)
    assert "align.backends.de=whisperx" in msg and "'fr' has no alignment backend" in msg
    make_aligner(cfg).check({"en"})  # English alone is fine


def test_config_from_dict() -> None:
    from omegaconf import OmegaConf

    node = OmegaConf.load(Path(__file__).parents[1] / "conf" / "align" / "default.yaml")
    assert AlignConfig.from_dict(OmegaConf.to_container(node)) == AlignConfig()  # type: ignore[arg-type]
    assert AlignConfig.from_dict({"sil_threshold": 0.3}).sil_threshold == 0.3
    with pytest.raises(AlignConfigError, match=r"unknown align option.*treshold"):
        AlignConfig.from_dict({"treshold": 0.3})


def test_cli_one_clip(capsys: pytest.CaptureFixture[str]) -> None:
    wav = FIXTURES / "speech" / "1272-128104-0000.flac"
    assert cli_main(["--audio", str(wav), "--text", "Mister Quilter is the apostle of the "
                     "middle classes and we are glad to welcome his gospel", "--lang", "en"]) == 0
    words = json.loads(capsys.readouterr().out)
    assert [w["word"] for w in words][:2] == ["Mister", "Quilter"]
    assert set(words[0]) == {"word", "start", "end"} and words[0]["end"] > words[0]["start"]


def test_cli_manifest_one_line_per_input(tmp_path: Path) -> None:
    wav = (FIXTURES / "speech" / "1272-128104-0000.flac").resolve()
    lines = [
        {"audio": str(wav), "text": LIBRI["1272-128104-0000"], "lang": "en"},
        {"audio": str(wav), "text": "the quick brown fox jumps over the lazy dog", "lang": "en"},
        {"audio": "missing.flac", "text": "hello", "lang": "en"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out.jsonl"
    assert cli_main(["--manifest", str(manifest), "--out", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["audio"] for r in rows] == [x["audio"] for x in lines]
    assert len(rows[0]["words"]) == 17 and "error" in rows[1]
    assert "not found" in rows[2]["error"]


def test_cli_bad_manifest_line_names_file_and_line(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"audio": "a.wav", "text": "hi", "lang": "en"}\n{"audio": 3}\n')
    with pytest.raises(SystemExit, match=r"m\.jsonl:2: bad manifest line"):
        cli_main(["--manifest", str(manifest)])


def test_build_stage_keeps_asr_and_records_align_rejects() -> None:
    """Through the build's per-record stage: a failed alignment loses only the SRWT task."""
    from pipeline.record import Label, Record
    from pipeline.stages import BuildOptions, Made, SampleMaker

    maker = SampleMaker(BuildOptions(align={"enabled": True}))
    wav = str(FIXTURES / "speech" / "1272-128104-0000.flac")

    def make(text: str) -> Made:
        rec = Record("librispeech", "dev", "k", wav, "1272-128104-0000.flac", "en",
                     (Label.make("asr", text, lang="en"),), align=True)
        return maker.make(rec)

    good = make(LIBRI["1272-128104-0000"])
    assert [t["task"] for t in good.meta["tasks"]] == ["asr", "srwt"] and not good.rejects
    assert [w["word"] for w in good.meta["words"]] == LIBRI["1272-128104-0000"].split()
    bad = make("THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG")
    assert [t["task"] for t in bad.meta["tasks"]] == ["asr"]
    (rej,) = bad.rejects
    assert (rej.stage, rej.task) == ("align", "srwt") and "transcript" in rej.reason


def test_phone_pass_agrees_with_the_word_pass() -> None:
    """The optional state-level second pass (align.phone_pass) aligns the same words; on
    this clip its boundaries equal the word pass's (bench/RESULTS.md: identical on both sets)."""
    samples = _libri("1272-128104-0000")
    text = ("MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES AND WE ARE GLAD TO WELCOME "
            "HIS GOSPEL")
    plain = make_aligner(AlignConfig()).align(samples, text, "en")
    phone = make_aligner(AlignConfig(phone_pass=True)).align(samples, text, "en")
    assert [w.word for w in phone] == [w.word for w in plain] == text.split()
    pairs = zip(plain, phone, strict=True)
    assert max(abs(a.start - b.start) + abs(a.end - b.end) for a, b in pairs) < 0.02
