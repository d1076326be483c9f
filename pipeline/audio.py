"""Audio decoding and normalization: any corpus file -> 16 kHz mono 16-bit FLAC.

Decoding uses soundfile (libsndfile: wav, flac, ogg, mp3, au) and falls back to PyAV
(FFmpeg) for containers such as mp4.  Every failure is an :class:`AudioError` whose
message is the reject reason written to ``rejects.jsonl``.

Long audio: Qwen-Audio sees at most 30 s.  ``long_audio="reject"`` (the default) skips
a longer clip, because its label (a transcript, a caption) describes the whole clip;
``"truncate"`` keeps the first 30 s and records ``truncated_from`` in the sample, for
labels that hold for any part of the clip (a scene, a genre).  The build report counts
both outcomes.

Sources that already are 16 kHz mono 16-bit FLAC (LibriSpeech, Aishell-1 after
conversion, most Lhotse corpora) are not re-encoded: :func:`load` drops their metadata
blocks other than STREAMINFO (padding, tags, seek tables), decodes exactly those bytes to
prove them whole, and keeps them as the sample's FLAC.  Re-encoding would change nothing
but cost most of a build's time.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from pipeline.format import MAX_SECONDS, SAMPLE_RATE

LongAudioPolicy = Literal["reject", "truncate"]


class AudioError(ValueError):
    """A clip that cannot become a sample; the message is the reason."""


class Audio:
    """Normalized audio: mono float32 at :data:`SAMPLE_RATE`.

    A FLAC kept as is (``flac``) holds its decoded 16-bit samples (``pcm16``), and
    ``samples`` is made from them on first use: a build that stores the FLAC without
    aligning it never needs the float copy (converting it was 5% of such a build's CPU).
    """

    __slots__ = ("_samples", "flac", "pcm16", "truncated_from")

    def __init__(self, samples: np.ndarray | None = None, truncated_from: float | None = None,
                 flac: bytes | None = None, *, pcm16: np.ndarray | None = None) -> None:
        if (samples is None) == (pcm16 is None):
            raise ValueError("Audio needs exactly one of samples and pcm16")
        self._samples, self.pcm16 = samples, pcm16
        self.truncated_from = truncated_from
        #: the FLAC bytes to store when the source was kept as is (see :func:`load`)
        self.flac = flac

    @property
    def samples(self) -> np.ndarray:
        """The mono float32 samples."""
        if self._samples is None:
            # /32768 is libsndfile's own int16 -> float scaling: decode()'s samples
            self._samples = self.pcm16.astype(np.float32) / np.float32(32768.0)
        return self._samples

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.pcm16 if self._samples is None else self._samples) / SAMPLE_RATE


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return data, sr


def _read_pyav(path: Path) -> tuple[np.ndarray, int]:
    import av  # imported lazily: only containers libsndfile cannot read need it

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise AudioError("file has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return data[:, None], SAMPLE_RATE


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a file to ``(frames x channels float32, sample rate)``.

    Raises :class:`AudioError` naming the problem when neither decoder can read it, or
    when a FLAC file fails libFLAC's checks (never handed to FFmpeg's lenient decoder).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    try:
        return _read_soundfile(path)
    except (sf.LibsndfileError, RuntimeError, TypeError) as sf_err:
        with path.open("rb") as f:
            if f.read(4) == b"fLaC":
                # libFLAC checks every frame's CRC; FFmpeg would conceal the damage and
                # return audio with a hole in it, under a label for the whole clip
                raise AudioError(f"corrupt FLAC ({sf_err})") from None
        try:
            return _read_pyav(path)
        except AudioError:
            raise
        except Exception as av_err:  # noqa: BLE001 - any decoder failure is a reject reason
            raise AudioError(f"unreadable audio ({sf_err}; ffmpeg: {av_err})") from None


def resample(x: np.ndarray, sr: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono signal from ``sr`` to ``target`` Hz with libsoxr (high quality).

    soxr's "HQ" setting is about 4x faster than ``scipy.signal.resample_poly`` here and its
    error on a pure tone is ~1000x smaller; the output is deterministic.
    """
    if sr == target:
        return x
    import soxr

    return soxr.resample(x, sr, target, quality="HQ").astype(np.float32, copy=False)


def normalize(
    data: np.ndarray,
    sr: int,
    *,
    max_seconds: float = MAX_SECONDS,
    long_audio: LongAudioPolicy = "reject",
) -> Audio:
    """Downmix, resample to 16 kHz, check, and apply the long-audio policy."""
    if data.size == 0 or len(data) == 0:
        raise AudioError("empty audio (no samples)")
    if data.ndim == 2 and data.shape[1] > 1:
        # a matrix-vector product: ~20x faster than data.mean(axis=1) on frames x channels
        mono = data.astype(np.float32) @ np.full(data.shape[1], 1 / data.shape[1], np.float32)
    else:
        mono = data.reshape(len(data))
    if not np.all(np.isfinite(mono)):
        raise AudioError("audio holds NaN or infinite samples")
    mono = resample(mono.astype(np.float32), sr)
    limit = round(max_seconds * SAMPLE_RATE)
    truncated_from = None
    if len(mono) > limit:
        seconds = len(mono) / SAMPLE_RATE
        if long_audio == "reject":
            raise AudioError(
                f"audio is {seconds:.2f} s, longer than {max_seconds:g} s "
                "(long_audio=reject; the label describes the whole clip)"
            )
        if long_audio != "truncate":
            raise ValueError(f"long_audio must be 'reject' or 'truncate', not {long_audio!r}")
        mono, truncated_from = mono[:limit], round(seconds, 3)
    if len(mono) == 0:
        raise AudioError("empty audio after resampling")
    return Audio(np.ascontiguousarray(mono, dtype=np.float32), truncated_from)


@dataclass(frozen=True)
class FlacInfo:
    """What a FLAC stream's STREAMINFO block says about its audio."""

    sample_rate: int
    channels: int
    bits_per_sample: int
    frames: int  # total samples per channel; 0 when the encoder did not know it


def strip_flac_metadata(data: bytes) -> tuple[bytes, FlacInfo]:
    """Return the FLAC stream with STREAMINFO as its only metadata block, and its info.

    Padding, Vorbis comments, pictures, seek tables and cue sheets go; the audio frames
    are kept byte for byte (format: https://xiph.org/flac/format.html#metadata_block).
    Raises :class:`AudioError` when the metadata is malformed.
    """
    if data[:4] != b"fLaC":
        raise AudioError("not a FLAC stream (no fLaC marker)")
    pos, streaminfo = 4, None
    while True:
        if pos + 4 > len(data):
            raise AudioError("FLAC metadata runs past the end of the file")
        head, size = data[pos], int.from_bytes(data[pos + 1:pos + 4], "big")
        if head & 0x7F == 0:
            streaminfo = data[pos + 4:pos + 4 + size]
        pos += 4 + size
        if head & 0x80:
            break
    if streaminfo is None or len(streaminfo) != 34 or pos >= len(data):
        raise AudioError("FLAC stream has no STREAMINFO block or no audio frames")
    # after min/max block and frame sizes (10 bytes): 20 bits sample rate, 3 bits
    # channels - 1, 5 bits bits per sample - 1, 36 bits total samples
    bits = int.from_bytes(streaminfo[10:18], "big")
    info = FlacInfo(bits >> 44, ((bits >> 41) & 0x7) + 1, ((bits >> 36) & 0x1F) + 1,
                    bits & ((1 << 36) - 1))
    return b"fLaC\x80\x00\x00\x22" + streaminfo + data[pos:], info


def _load_flac_as_is(path: Path, max_seconds: float) -> Audio | None:
    """The clip with its own FLAC bytes kept, or None when it must be re-encoded."""
    try:
        flac, info = strip_flac_metadata(path.read_bytes())
        if not (info.sample_rate == SAMPLE_RATE and info.channels == 1
                and info.bits_per_sample == 16
                and 0 < info.frames <= round(max_seconds * SAMPLE_RATE)):
            return None
        pcm, sr = sf.read(io.BytesIO(flac), dtype="int16")  # proves the kept bytes decode
    except (AudioError, sf.LibsndfileError, RuntimeError, TypeError, OSError):
        return None  # the general path gives the reject reason
    if sr != SAMPLE_RATE or pcm.ndim != 1 or len(pcm) != info.frames:
        return None
    return Audio(None, None, flac, pcm16=pcm)


def load(
    path: str | Path,
    *,
    max_seconds: float = MAX_SECONDS,
    long_audio: LongAudioPolicy = "reject",
) -> Audio:
    """Decode and normalize one file (see :func:`decode` and :func:`normalize`).

    A 16 kHz mono 16-bit FLAC within ``max_seconds`` keeps its own audio frames
    (``Audio.flac``); anything else is decoded, normalized and later re-encoded.
    """
    path = Path(path)
    if path.suffix.lower() == ".flac":
        clip = _load_flac_as_is(path, max_seconds)
        if clip is not None:
            return clip
    data, sr = decode(path)
    return normalize(data, sr, max_seconds=max_seconds, long_audio=long_audio)


def encode_flac(samples: np.ndarray) -> bytes:
    """Encode mono float samples as 16-bit FLAC at 16 kHz (deterministic bytes)."""
    # x32768 inverts libsndfile's int16 -> float scaling, so 16-bit sources stay bit-exact
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue()
