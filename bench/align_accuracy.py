"""Word-boundary accuracy and speed of the forced-alignment backends.

Usage::

    python bench/align_accuracy.py                        # espeak set in tests/fixtures
    python bench/align_accuracy.py --timit DIR            # TIMIT-style *.wav + *.wrd (+ *.txt)
    python bench/align_accuracy.py --librispeech-alignments FILE --librispeech-root DIR
    python bench/align_accuracy.py --whisperx-model DIR   # also run the whisperx backend (en)

For each backend that can run here and each reference set it reports: items aligned,
mean absolute boundary error (word starts and ends), the share of boundaries within
20/50/100 ms, Qwen-Audio's average shift (mean absolute shift of word start and end
after both sides go through the SRWT target at 0.01 s, words whose pause structure
differs included), and the real-time factor on one core (alignment time / audio time,
model loading excluded, torch limited to one thread).

Reference formats:

* espeak set: ``<id>.wav`` + ``<id>.json`` with ``text`` and ``words`` ``[{word, start, end}]``.
* TIMIT: ``<utt>.wav`` + ``<utt>.wrd`` (``start_sample end_sample word`` at the file's rate).
* LibriSpeech alignments (Lugosch et al. release): lines ``<utt_id> ",W1,W2," "t1,t2,..."``
  where ``t_i`` is the end of segment ``i`` (empty words are pauses); audio under
  ``--librispeech-root`` as ``<spk>/<chapter>/<utt_id>.flac``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import audio, tags  # noqa: E402
from pipeline.align import AlignConfig, AlignmentError, make_aligner  # noqa: E402

ESPEAK = ROOT / "tests" / "fixtures" / "espeak-words"
Ref = tuple[str, float, float]


@dataclass
class Item:
    """One reference utterance: audio samples, transcript and reference word times."""

    name: str
    samples: np.ndarray
    text: str
    words: list[Ref]


def espeak_items(folder: Path) -> Iterator[Item]:
    """The espeak-words set (synthetic speech with the synthesizer's word times)."""
    for js in sorted(folder.glob("*.json")):
        d = json.loads(js.read_text())
        words = [(w["word"], w["start"], w["end"]) for w in d["words"]]
        yield Item(d["id"], audio.load(folder / d["wav"]).samples, d["text"], words)


def timit_items(folder: Path) -> Iterator[Item]:
    """TIMIT-style folders: each ``*.wrd`` next to its ``*.wav`` (times in samples)."""
    import soundfile as sf

    for wrd in sorted(folder.rglob("*.wrd")):
        wav = next((p for p in (wrd.with_suffix(".wav"), wrd.with_suffix(".WAV")) if p.exists()),
                   None)
        if wav is None:
            print(f"skip {wrd}: no .wav next to it", file=sys.stderr)
            continue
        sr = sf.info(str(wav)).samplerate
        words = []
        for line in wrd.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                words.append((parts[2], int(parts[0]) / sr, int(parts[1]) / sr))
        text = " ".join(w for w, _, _ in words)
        yield Item(str(wrd.relative_to(folder)), audio.load(wav).samples, text, words)


def librispeech_items(alignments: Path, root: Path) -> Iterator[Item]:
    """LibriSpeech alignment release lines ``utt ",W1,W2," "t1,t2"`` (segment end times)."""
    for n, line in enumerate(alignments.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            utt, words_field, times_field = line.split()
            labels = words_field.strip('"').split(",")
            ends = [float(t) for t in times_field.strip('"').split(",")]
        except ValueError:
            raise SystemExit(f"{alignments}:{n}: expected <utt> \",W1,...\" \"t1,...\"") from None
        spk, chapter, _ = utt.split("-")
        flac = root / spk / chapter / f"{utt}.flac"
        if not flac.exists():
            continue
        words, start = [], 0.0
        for label, end in zip(labels, ends, strict=True):
            if label:
                words.append((label.lower(), start, end))
            start = end
        text = " ".join(w for w, _, _ in words)
        yield Item(utt, audio.load(flac).samples, text, words)


def _srwt_words(words: list[Ref], duration: float, sil: float) -> list[Ref]:
    target = tags.srwt_target(words, duration, sil)
    return [w for w in tags.parse_srwt(target) if w[0] != tags.SIL]


def run(name: str, cfg: AlignConfig, items: list[Item]) -> dict[str, float | int | str]:
    """Align every item with ``cfg``; return the metrics of one backend on one set."""
    aligner = make_aligner(cfg)
    lang = "en"
    aligner.backend(lang)  # load the model before timing
    start_err: list[float] = []
    end_err: list[float] = []
    shifts: list[float] = []
    seconds = busy = 0.0
    failed: list[str] = []
    for item in items:
        dur = len(item.samples) / audio.SAMPLE_RATE
        t0 = time.process_time()
        try:
            hyp = aligner.align(item.samples, item.text, lang)
        except AlignmentError as err:
            failed.append(f"{item.name}: {err}")
            continue
        busy += time.process_time() - t0
        seconds += dur
        hyp_w = [(w.word, w.start, w.end) for w in hyp]
        for (_, hs, he), (_, rs, re_) in zip(hyp_w, item.words, strict=True):
            start_err.append(abs(hs - rs))
            end_err.append(abs(he - re_))
        h2 = _srwt_words(hyp_w, dur, cfg.sil_threshold)
        r2 = _srwt_words(item.words, dur, cfg.sil_threshold)
        shifts += [(abs(h[1] - r[1]) + abs(h[2] - r[2])) / 2 for h, r in zip(h2, r2, strict=True)]
    for f in failed:
        print(f"  FAILED {f}", file=sys.stderr)
    both = np.array(start_err + end_err)
    return {
        "backend": name,
        "aligned": f"{len(items) - len(failed)}/{len(items)}",
        "start_mae_ms": 1000 * statistics.fmean(start_err) if start_err else float("nan"),
        "end_mae_ms": 1000 * statistics.fmean(end_err) if end_err else float("nan"),
        "boundary_mae_ms": 1000 * float(both.mean()) if both.size else float("nan"),
        **{f"within_{ms}ms": float((both <= ms / 1000 + 1e-9).mean()) for ms in (20, 50, 100)},
        "avg_shift_ms": 1000 * statistics.fmean(shifts) if shifts else float("nan"),
        "rtf_1core": busy / seconds if seconds else float("nan"),
    }


def _configs(args: argparse.Namespace) -> list[tuple[str, AlignConfig]]:
    out = [
        ("pocketsphinx", AlignConfig()),
        ("pocketsphinx + phone pass", AlignConfig(phone_pass=True)),
    ]
    if args.whisperx_model:
        out.append(("whisperx", AlignConfig(
            backends={"en": "whisperx"}, whisperx_models={"en": str(args.whisperx_model)})))
    return out


def _row(set_name: str, r: dict[str, float | int | str]) -> str:
    return (
        f"| {set_name} | {r['backend']} | {r['aligned']} | {r['start_mae_ms']:.1f} | "
        f"{r['end_mae_ms']:.1f} | {r['boundary_mae_ms']:.1f} | {r['within_20ms']:.0%} | "
        f"{r['within_50ms']:.0%} | {r['within_100ms']:.0%} | {r['avg_shift_ms']:.1f} | "
        f"{r['rtf_1core']:.3f} |"
    )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print a Markdown table (and JSON with ``--json``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--espeak", type=Path, default=ESPEAK, help="espeak-words folder")
    p.add_argument("--timit", type=Path, help="folder with TIMIT-style .wav + .wrd files")
    p.add_argument("--librispeech-alignments", type=Path, help="alignment release .txt file")
    p.add_argument("--librispeech-root", type=Path, help="LibriSpeech split folder (audio)")
    p.add_argument("--whisperx-model", type=Path, help="local wav2vec2 CTC model dir (English)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency of whisperx
        pass
    sets = [("espeak-words", list(espeak_items(args.espeak)))]
    if args.timit:
        sets.append((f"TIMIT {args.timit.name}", list(timit_items(args.timit))))
    if args.librispeech_alignments:
        if not args.librispeech_root:
            p.error("--librispeech-alignments needs --librispeech-root")
        items = list(librispeech_items(args.librispeech_alignments, args.librispeech_root))
        sets.append(("LibriSpeech alignments", items))
    print("| set | backend | aligned | start MAE ms | end MAE ms | boundary MAE ms | <=20 ms "
          "| <=50 ms | <=100 ms | avg shift ms | RTF (1 core) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    results = []
    for set_name, items in sets:
        for name, cfg in _configs(args):
            r = run(name, cfg, items)
            results.append({"set": set_name, **r})
            print(_row(set_name, r), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
