"""Audio decoding and normalization: formats, resampling, rejects, long-audio policy."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline import audio

SAMPLES = Path(__file__).parents[1] / "dataset_recipes" / "samples"


def test_stereo_44k_wav_becomes_16k_mono(tmp_path):
    t = np.arange(44100) / 44100
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "x.wav", np.stack([left, left], 1), 44100)
    clip = audio.load(tmp_path / "x.wav")
    assert len(clip.samples) == 16000 and clip.samples.dtype == np.float32
    flac = audio.encode_flac(clip.samples)
    pcm, sr = audio.decode_flac(flac)
    assert sr == 16000 and pcm.ndim == 1 and len(pcm) == 16000
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins over 1 s: the tone survives


def test_real_flac_is_bit_exact_and_flac_bytes_are_deterministic():
    src = SAMPLES / "speech" / "1272-128104-0000.flac"
    ref, sr = sf.read(src, dtype="int16")
    clip = audio.load(src)
    pcm, _ = audio.decode_flac(audio.encode_flac(clip.samples))
    assert sr == 16000 and np.array_equal(pcm, ref)
    assert audio.encode_flac(clip.samples) == audio.encode_flac(clip.samples)


def test_mp3_decodes(tmp_path):
    mp3 = Path(__file__).parent / "fixtures" / "speech_common_voice.mp3"
    clip = audio.load(mp3)
    assert 2.0 < clip.duration < 3.0 and np.abs(clip.samples).max() > 0.01


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b"not audio at all"), "unreadable audio"),
        (lambda p: sf.write(p, np.zeros((0, 1)), 16000), "empty audio"),
        (lambda p: sf.write(p, np.full(100, np.nan, np.float32), 16000, subtype="FLOAT"),
         "NaN or infinite"),
        (lambda p: None, "not found"),
    ],
)
def test_bad_audio_is_an_error_with_a_reason(tmp_path, make, reason):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(audio.AudioError, match=reason):
        audio.load(path)


def test_long_audio_policy(tmp_path):
    sf.write(tmp_path / "long.wav", np.full(16000 * 31, 0.1, np.float32), 16000)
    with pytest.raises(audio.AudioError, match=r"31\.00 s, longer than 30 s"):
        audio.load(tmp_path / "long.wav")
    clip = audio.load(tmp_path / "long.wav", long_audio="truncate")
    assert len(clip.samples) == 480000 and clip.truncated_from == 31.0
