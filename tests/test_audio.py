"""Audio decoding and normalization: formats, resampling, rejects, long-audio policy."""

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline import audio
from pipeline.format import decode_flac

SAMPLES = Path(__file__).parents[1] / "dataset_recipes" / "samples"


def test_stereo_44k_wav_becomes_16k_mono(tmp_path):
    t = np.arange(44100) / 44100
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "x.wav", np.stack([left, left], 1), 44100)
    clip = audio.load(tmp_path / "x.wav")
    assert len(clip.samples) == 16000 and clip.samples.dtype == np.float32
    flac = audio.encode_flac(clip.samples)
    pcm = decode_flac(flac, dtype="int16")  # refuses anything but 16 kHz mono FLAC
    assert pcm.ndim == 1 and len(pcm) == 16000
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins over 1 s: the tone survives


def test_real_flac_is_bit_exact_and_flac_bytes_are_deterministic():
    src = SAMPLES / "speech" / "1272-128104-0000.flac"
    ref, sr = sf.read(src, dtype="int16")
    clip = audio.load(src)
    pcm = decode_flac(audio.encode_flac(clip.samples), dtype="int16")
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


def _flac_blocks(data: bytes) -> list[int]:
    """Metadata block types of a FLAC stream, in order."""
    pos, kinds = 4, []
    while True:
        head, size = data[pos], int.from_bytes(data[pos + 1:pos + 4], "big")
        kinds.append(head & 0x7F)
        pos += 4 + size
        if head & 0x80:
            return kinds


def test_16k_mono_flac_keeps_its_own_frames_without_padding_or_tags():
    """LibriSpeech's FLAC (STREAMINFO, SEEKTABLE, VORBIS_COMMENT, 8 KiB PADDING) is stored
    with STREAMINFO only and the encoder's audio frames byte for byte, not re-encoded."""
    src = SAMPLES / "speech" / "1272-128104-0000.flac"
    raw = src.read_bytes()
    assert _flac_blocks(raw) == [0, 3, 4, 1]
    clip = audio.load(src)
    assert clip.flac is not None and _flac_blocks(clip.flac) == [0]
    assert len(raw) - len(clip.flac) == 18 + 40 + 8192 + 3 * 4  # three blocks and headers
    assert clip.flac[8:42] == raw[8:42]  # STREAMINFO (with the stream's MD5) unchanged
    assert raw.endswith(clip.flac[42:])  # the frames, untouched
    pcm, sr = sf.read(io.BytesIO(clip.flac), dtype="int16")
    assert sr == 16000 and np.array_equal(pcm, sf.read(src, dtype="int16")[0])
    decoded = audio.normalize(*audio.decode(src))  # the general path: same samples
    assert clip.duration == decoded.duration == len(pcm) / 16000
    assert np.array_equal(clip.pcm16, pcm)  # the float copy is made only when asked for
    assert clip.samples.dtype == np.float32 and np.array_equal(clip.samples, decoded.samples)
    assert clip.samples is clip.samples  # (made once)


@pytest.mark.parametrize(
    ("rate", "channels", "subtype", "seconds"),
    [(44100, 1, "PCM_16", 1.0), (16000, 2, "PCM_16", 1.0), (16000, 1, "PCM_24", 1.0),
     (16000, 1, "PCM_16", 31.0)],
)
def test_other_flac_is_decoded_and_re_encoded(tmp_path, rate, channels, subtype, seconds):
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "x.flac", rng.uniform(-0.3, 0.3, (int(rate * seconds), channels)),
             rate, subtype=subtype)
    clip = audio.load(tmp_path / "x.flac", long_audio="truncate")
    assert clip.flac is None and len(clip.samples) == round(min(seconds, 30) * 16000)
    assert clip.truncated_from == (31.0 if seconds > 30 else None)


@pytest.mark.parametrize("damage", ["truncate", "flip", "no-frames"])
def test_damaged_16k_flac_is_rejected_not_copied(tmp_path, damage):
    raw = (SAMPLES / "speech" / "1272-128104-0000.flac").read_bytes()
    if damage == "truncate":
        bad = raw[: len(raw) * 2 // 3]
    elif damage == "flip":
        bad = bytearray(raw)
        bad[len(raw) // 2] ^= 0x55
    else:
        bad = raw[:4 + 4 + 34 + 4 + 18 + 4 + 40 + 4 + 8192]  # metadata only
    (tmp_path / "bad.flac").write_bytes(bytes(bad))
    with pytest.raises(audio.AudioError, match="corrupt FLAC"):
        audio.load(tmp_path / "bad.flac")
