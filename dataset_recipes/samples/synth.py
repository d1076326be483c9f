"""Synthetic sounds of the sample corpora (``SOURCE=sample``, ``make demo``, fixtures).

Every recipe's ``make_sample`` writes a small corpus in the official layout whose labels
are true of its audio; the sounds come from here (one module, so no recipe imports
another's private helpers).  All generators are deterministic given their ``rng``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

#: Bundled recordings (see README.md next to this module).
SAMPLES_DIR = Path(__file__).parent


def clotho_sound(kind: str, seconds: float, rng: np.random.Generator,
                 sr: int = 44100) -> np.ndarray:
    """``seconds`` of a generated sound of ``kind`` (beeps, hiss, sweep, hum, clicks)."""
    t = np.arange(int(seconds * sr)) / sr
    if kind == "beeps":
        gate = (np.floor(t * 2) % 2 == 0).astype(np.float32)
        return 0.4 * np.sin(2 * np.pi * 1000 * t) * gate
    if kind == "hiss":
        return 0.2 * rng.standard_normal(len(t)) * np.linspace(1, 0.3, len(t))
    if kind == "sweep":
        return 0.4 * np.sin(2 * np.pi * (200 * t + 150 * t**2))
    if kind == "hum":
        return 0.5 * np.sin(2 * np.pi * 100 * t) + 0.05 * rng.standard_normal(len(t))
    if kind == "clicks":
        x = np.zeros(len(t))
        x[:: sr // 4] = 0.9
        return x
    raise ValueError(kind)


def esc50_sound(category: str, rng: np.random.Generator, sr: int = 44100) -> np.ndarray:
    """Five seconds of a generated sound that a listener would file under ``category``."""
    t = np.arange(5 * sr) / sr
    if category == "clock_tick":  # one sharp tick per second
        x = np.zeros(len(t))
        for k in range(5):
            i = k * sr + sr // 10
            x[i:i + 200] = np.hanning(200) * np.sin(2 * np.pi * 3000 * t[:200])
        return 0.8 * x
    if category == "clock_alarm":  # fast beeping
        return 0.4 * np.sin(2 * np.pi * 2000 * t) * (np.floor(t * 8) % 2 == 0)
    if category == "siren":  # wailing up-and-down tone
        phase = 2 * np.pi * (700 * t - 300 / (2 * np.pi * 0.5) * np.cos(2 * np.pi * 0.5 * t))
        return 0.4 * np.sin(phase)
    if category == "rain":  # dense random droplets on a noise bed
        x = 0.05 * rng.standard_normal(len(t))
        drops = rng.integers(0, len(t) - 100, 400)
        for d in drops:
            x[d:d + 100] += 0.3 * rng.standard_normal(100) * np.hanning(100)
        return x
    if category == "church_bells":  # struck inharmonic partials, decaying, every 1.25 s
        x = np.zeros(len(t))
        step = int(1.25 * sr)
        for start in range(0, len(t), step):
            tt = t[: len(t) - start]
            env = np.exp(-tt * 1.2)
            x[start:] += sum(a * np.sin(2 * np.pi * f * tt) * env
                             for f, a in ((440, 0.3), (528, 0.15), (880, 0.1), (1210, 0.05)))
        return x / np.abs(x).max() * 0.6
    raise ValueError(f"no sample sound for {category!r}")


def note(pitch: int, velocity: int, family: str, seconds: float = 4.0,
         sr: int = 16000) -> np.ndarray:
    """A synthetic note at MIDI ``pitch`` whose loudness follows ``velocity``: harmonics
    shaped by the family (odd harmonics for reeds, bright for brass), plucked or sustained."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    odd = family in ("reed", "flute")
    x = np.zeros_like(t)
    for h in range(1, 8):
        if (h == 1 or f0 * h < sr / 2) and not (odd and h % 2 == 0):  # f0 always sounds
            x += np.sin(2 * np.pi * f0 * h * t) / (h if family != "brass" else h**0.5)
    plucked = family in ("guitar", "mallet", "keyboard", "bass")
    env = np.exp(-3 * t) if plucked else np.clip(t / 0.05, 0, 1) * (t < seconds - 1)
    return (velocity / 127 * 0.8 * env * x / np.max(np.abs(x))).astype(np.float32)


def synth_music(style: str, rng: np.random.Generator, seconds: float = 10.0,
                sr: int = 16000) -> np.ndarray:
    """Ten seconds of synthetic music in one of three styles the sample captions describe."""
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros(len(t))
    if style == "calm":  # slow pure-tone melody in C major, no drums
        notes = [261.6, 293.7, 329.6, 392.0, 440.0, 392.0, 329.6, 293.7]
        step = 60 / 70
        for k, start in enumerate(np.arange(0, seconds, step)):
            i, n = int(start * sr), int(step * sr)
            tt = t[:min(n, len(t) - i)]
            x[i:i + len(tt)] += np.sin(2 * np.pi * notes[k % 8] * tt) * np.exp(-tt * 1.5)
        return (0.4 * x).astype(np.float32)
    if style == "upbeat":  # buzzy saw arpeggio over a kick drum on every beat, 128 bpm
        step = 60 / 128 / 2
        notes = [220.0, 277.2, 329.6, 440.0]
        for k, start in enumerate(np.arange(0, seconds, step)):
            i, n = int(start * sr), int(step * sr)
            tt = t[:min(n, len(t) - i)]
            x[i:i + len(tt)] += 0.3 * (2 * ((notes[k % 4] * tt) % 1) - 1) * np.exp(-tt * 4)
            if k % 2 == 0:
                x[i:i + len(tt)] += 0.7 * np.sin(2 * np.pi * 55 * tt) * np.exp(-tt * 25)
        return np.clip(0.6 * x, -1, 1).astype(np.float32)
    if style == "drone":  # low sustained drone with a bell every 2.5 s
        x += 0.3 * np.sin(2 * np.pi * 65.4 * t) + 0.15 * np.sin(2 * np.pi * 98.0 * t)
        for start in np.arange(0.5, seconds, 2.5):
            i = int(start * sr)
            tt = t[: len(t) - i]
            x[i:] += 0.3 * (np.sin(2 * np.pi * 880 * tt) + 0.4 * np.sin(2 * np.pi * 2370 * tt)) \
                * np.exp(-tt * 1.2)
        return (x / np.abs(x).max() * 0.6 + 0.005 * rng.standard_normal(len(t))).astype(
            np.float32)
    raise ValueError(f"no sample music style {style!r}")


def audioset_clip(kind: str, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    """Ten seconds of ``kind``: speech (the bundled real utterance), speech+music, music,
    beep or noise."""
    t = np.arange(10 * sr) / sr
    if kind == "speech":  # the bundled real LibriSpeech utterance, padded to 10 s
        x, _ = sf.read(SAMPLES_DIR / "speech" / "2412-153948-0000.flac", dtype="float32")
        return x[: len(t)]
    if kind == "speech+music":
        return 0.6 * audioset_clip("speech", rng)[: len(t)] + 0.4 * synth_music("calm", rng)
    if kind == "music":
        return synth_music("upbeat", rng)
    if kind == "beep":
        return (0.4 * np.sin(2 * np.pi * 1000 * t) * (np.floor(t * 2) % 2 == 0)).astype(
            np.float32)
    if kind == "noise":
        return (0.2 * rng.standard_normal(len(t))).astype(np.float32)
    raise ValueError(kind)


def syllables(n: int, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    """Speech-like audio with ``n`` syllables (a noise onset, then a voiced vowel with two
    formants and a Mandarin-like pitch contour) separated by short gaps; never silent."""
    from scipy.signal import lfilter

    out = [0.002 * rng.standard_normal(int(0.15 * sr))]
    for _ in range(n):
        dur, tone = rng.uniform(0.18, 0.26), rng.integers(4)
        t = np.arange(int(dur * sr)) / sr
        contour = (0, 40 * t / dur, -30 * np.sin(np.pi * t / dur), -50 * t / dur)[tone]
        f0 = 180 + contour
        pulses = (np.diff(np.floor(np.cumsum(f0 / sr)), prepend=0) > 0).astype(float)
        voiced = pulses.copy()
        for formant in rng.choice([(700, 1200), (300, 2300), (500, 900), (400, 2000)]):
            r, w = 0.97, 2 * np.pi * formant / sr
            voiced = lfilter([1.0], [1, -2 * r * np.cos(w), r * r], voiced)
        voiced *= np.hanning(len(voiced)) / (np.max(np.abs(voiced)) + 1e-9)
        onset = 0.1 * rng.standard_normal(int(0.03 * sr)) * np.linspace(1, 0, int(0.03 * sr))
        gap = 0.002 * rng.standard_normal(int(rng.uniform(0.03, 0.08) * sr))
        out += [onset, 0.5 * voiced, gap]
    out.append(0.002 * rng.standard_normal(int(0.15 * sr)))
    return np.concatenate(out).astype(np.float32)


def _burst(n: int, rng: np.random.Generator, attack: float, decay: float,
           sr: int = 16000) -> np.ndarray:
    t = np.arange(n) / sr
    return rng.standard_normal(n) * (1 - np.exp(-t / attack)) * np.exp(-t / decay)


def vocal_sound(label: str, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    """About 1.5 s of a synthetic stand-in for ``label`` (shaped noise or voiced pulses)."""
    x = np.zeros(int(1.5 * sr))
    if label == "cough":  # two explosive broadband bursts
        for start in (0.1, 0.6):
            i = int(start * sr)
            x[i:i + 4800] += 0.6 * _burst(4800, rng, 0.004, 0.08)
    elif label == "sneeze":  # quiet rising inhale, then one sharp burst
        inhale = rng.standard_normal(8000) * np.linspace(0, 0.08, 8000)
        x[1600:9600] += inhale
        x[9600:17600] += 0.8 * _burst(8000, rng, 0.002, 0.12)
    elif label == "sniff":  # two short hissy inhalations (high-passed noise)
        for start in (0.2, 0.7):
            i = int(start * sr)
            b = _burst(2400, rng, 0.02, 0.05)
            x[i:i + 2400] += 0.4 * np.diff(b, prepend=0.0)
    elif label == "sigh":  # long breathy exhale with falling loudness
        n = int(1.2 * sr)
        x[1600:1600 + n] += 0.2 * rng.standard_normal(n) * np.hanning(n) ** 0.5 * np.linspace(
            1, 0.2, n)
    elif label == "throatclearing":  # low rough rumble, amplitude-modulated at 30 Hz
        n = int(0.6 * sr)
        t = np.arange(n) / sr
        rough = rng.standard_normal(n) * (0.5 + 0.5 * np.sin(2 * np.pi * 30 * t))
        x[3200:3200 + n] += 0.5 * np.convolve(rough, np.ones(8) / 8, "same") * np.hanning(n)
    elif label == "laughter":  # "ha ha ha": voiced pulses with a falling pitch
        speech, _ = sf.read(SAMPLES_DIR / "speech" / "1272-128104-0000.flac", dtype="float32")
        for k in range(4):
            i, n = int((0.1 + 0.3 * k) * sr), 2800
            t = np.arange(n) / sr
            f0 = 260 - 15 * k
            voiced = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8))
            breath = speech[i:i + n] * 0.3  # a little real speech texture
            x[i:i + n] += 0.25 * (voiced + breath) * np.hanning(n)
    else:
        raise ValueError(f"no sample sound for {label!r}")
    return (x / max(1e-9, np.abs(x).max()) * 0.7).astype(np.float32)


def scene_sound(scene: str, seconds: float, rng: np.random.Generator,
                sr: int = 44100) -> np.ndarray:
    """A cheap stand-in ambience for ``scene`` (noise shaped by the scene name, never silent):
    an engine drone for vehicles, babble-like bursts for crowded places, birds for parks."""
    t = np.arange(int(seconds * sr)) / sr
    noise = rng.standard_normal(len(t))
    if any(w in scene for w in ("bus", "car", "subway", "train", "tram", "metro")):
        x = 0.3 * np.sin(2 * np.pi * 60 * t) + 0.15 * np.sin(2 * np.pi * 120 * t)
        return x + 0.05 * np.convolve(noise, np.ones(32) / 32, "same")
    if any(w in scene for w in ("park", "forest", "beach", "residential")):
        chirp = np.sin(2 * np.pi * (3000 + 800 * np.sin(2 * np.pi * 7 * t)) * t)
        gate = (np.sin(2 * np.pi * 1.5 * t) > 0.6).astype(float)
        return 0.2 * chirp * gate + 0.03 * noise
    envelope = 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 3 * t + rng.uniform(0, 3)))
    return 0.15 * np.convolve(noise, np.ones(8) / 8, "same") * envelope


#: genre -> (beats per minute, chord root Hz, timbre, drums)
GENRE_STYLE = {
    "blues": (90, 110.0, "saw", "shuffle"), "classical": (60, 261.6, "sine", "none"),
    "country": (110, 196.0, "pluck", "backbeat"), "disco": (120, 220.0, "saw", "four"),
    "hiphop": (92, 55.0, "sine", "boombap"), "jazz": (140, 146.8, "sine", "ride"),
    "metal": (160, 82.4, "dist", "double"), "pop": (118, 261.6, "pluck", "four"),
    "reggae": (75, 196.0, "pluck", "onedrop"), "rock": (130, 110.0, "dist", "backbeat"),
}


def genre_clip(genre: str, rng: np.random.Generator, seconds: float = 30.05,
               sr: int = 22050) -> np.ndarray:
    """A stylized loop: chords in the genre's timbre over a drum pattern at its tempo."""
    bpm, root_hz, timbre, drums = GENRE_STYLE[genre]
    t = np.arange(int(seconds * sr)) / sr
    beat = 60.0 / bpm
    chord_of = np.array([1.0, 4 / 3, 3 / 2, 4 / 3])[(t // (4 * beat)).astype(int) % 4]
    x = np.zeros(len(t))
    for ratio in (1.0, 5 / 4, 3 / 2):
        phase = 2 * np.pi * root_hz * ratio * chord_of * t
        x += {"sine": np.sin(phase), "saw": 2 * ((phase / (2 * np.pi)) % 1) - 1,
              "pluck": np.sin(phase) * np.exp(-(t % beat) * 6),
              "dist": np.tanh(4 * np.sin(phase))}[timbre]
    x *= 0.15
    hits = {"none": [], "four": [0, 1, 2, 3], "backbeat": [0, 2], "shuffle": [0, 1.67, 2, 3.67],
            "boombap": [0, 1.5, 2.5], "ride": [0, 1, 1.67, 2, 3, 3.67], "double": [0, 0.5, 1,
            1.5, 2, 2.5, 3, 3.5], "onedrop": [2]}[drums]
    n = int(0.08 * sr)
    kick = np.sin(2 * np.pi * 60 * t[:n]) * np.exp(-t[:n] * 40)
    for bar in np.arange(0, seconds, 4 * beat):
        for h in hits:
            i = int((bar + h * beat) * sr)
            if i + n <= len(x):
                x[i:i + n] += 0.6 * kick + 0.05 * rng.standard_normal(n) * np.exp(-t[:n] * 60)
    return np.clip(x, -1, 1).astype(np.float32)


def write_mp4(path: Path, samples: np.ndarray, sr: int, color: int = 90) -> None:
    """Write ``samples`` (mono float32) as an mp4 with an AAC audio track and a tiny
    32x32 MPEG-4 video track, like a MELD clip."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = out.add_stream("aac", rate=sr, layout="mono")
        for i in range(max(1, int(len(samples) / sr * 10))):
            img = np.full((32, 32, 3), (color + 8 * i) % 256, np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(video.encode(None))
        step = 1024
        for start in range(0, len(samples), step):
            chunk = samples[None, start:start + step].astype(np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = sr, start
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
