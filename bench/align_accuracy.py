"""Word-boundary accuracy and speed of the forced-alignment backends.

Usage::

    python bench/align_accuracy.py                        # espeak set in tests/fixtures
    python bench/align_accuracy.py --timit DIR            # DIR/manifest.jsonl, else *.wav + *.wrd
    python bench/align_accuracy.py --manifest FILE        # {"id", "wav", "text", "words"} lines
    python bench/align_accuracy.py --librispeech-alignments FILE --librispeech-root DIR
    python bench/align_accuracy.py --whisperx-model DIR   # also run the whisperx backend (en)
    python bench/align_accuracy.py --timit DIR --halves --sweep edge_level=0.2,0.3,0.4,0.5

For each backend/option and each reference set it reports: items aligned and failed,
mean absolute error of word starts, of word ends and of both (boundary error), the share
of boundaries within 20/50/100 ms, the average shift (Qwen-Audio's SRWT metric as the
release scores it: per word |start error| + |end error|, averaged over words; here words
are matched by position, since reference and hypothesis hold the same words), and speed:
wall-clock seconds and process CPU seconds per audio second of one process on one core
(model loading excluded, torch limited to one thread).  The CPU figure is the steadier
one on a shared machine.

``--halves`` also scores the two halves of the speakers (sorted speaker ids, every other
one: A and B), for leave-speakers-out checks; ``--sweep KEY=V1,V2,...`` (repeatable) runs
the default backend at each value of one numeric ``align`` option and says which value
each half would pick and how it scores on the other half.

Reference formats:

* espeak set: ``<id>.wav`` + ``<id>.json`` with ``text`` and ``words`` ``[{word, start, end}]``.
* manifest (``--manifest``, or ``manifest.jsonl`` in a ``--timit`` folder): one JSON line
  per utterance, ``{"id", "wav" (path beside the manifest), "text", "words": [{word,
  start, end}]}``; the speaker is ``speaker`` if present, else the id up to its last ``_``.
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import audio  # noqa: E402
from pipeline.align import AlignConfig, AlignmentError, make_aligner  # noqa: E402
from pipeline.align.sphinx import SphinxBackend, SphinxOptions  # noqa: E402

ESPEAK = ROOT / "tests" / "fixtures" / "espeak-words"
Ref = tuple[str, float, float]


@dataclass
class Item:
    """One reference utterance: audio samples, transcript and reference word times."""

    name: str
    samples: np.ndarray
    text: str
    words: list[Ref]
    speaker: str = ""


@dataclass
class Outcome:
    """One item aligned by one configuration: hypothesis words or the failure reason."""

    item: Item
    hyp: list[Ref] | None
    error: str = ""
    cpu: float = 0.0
    wall: float = 0.0


@dataclass
class Variant:
    """A row of the table: a name, the align config and pocketsphinx options to force."""

    name: str
    cfg: AlignConfig
    sphinx: dict[str, float] = field(default_factory=dict)


def espeak_items(folder: Path) -> Iterator[Item]:
    """The espeak-words set (synthetic speech with the synthesizer's word times)."""
    for js in sorted(folder.glob("*.json")):
        d = json.loads(js.read_text())
        words = [(w["word"], w["start"], w["end"]) for w in d["words"]]
        yield Item(d["id"], audio.load(folder / d["wav"]).samples, d["text"], words, "espeak")


def manifest_items(manifest: Path) -> Iterator[Item]:
    """Utterances of a JSON-lines manifest (see the module docstring)."""
    for n, line in enumerate(manifest.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            words = [(w["word"], float(w["start"]), float(w["end"])) for w in d["words"]]
            uid, wav, text = str(d["id"]), manifest.parent / d["wav"], d["text"]
        except (ValueError, KeyError, TypeError) as err:
            raise SystemExit(f"{manifest}:{n}: bad manifest line ({err}); expected "
                             '{"id", "wav", "text", "words": [{"word", "start", "end"}]}') from None
        speaker = str(d.get("speaker") or uid.rsplit("_", 1)[0])
        yield Item(uid, audio.load(wav).samples, text, words, speaker)


def timit_items(folder: Path) -> Iterator[Item]:
    """``folder/manifest.jsonl`` if there is one, else each ``*.wrd`` next to its ``*.wav``."""
    if (folder / "manifest.jsonl").exists():
        yield from manifest_items(folder / "manifest.jsonl")
        return
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
        yield Item(str(wrd.relative_to(folder)), audio.load(wav).samples, text, words,
                   wrd.parent.name)


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
        yield Item(utt, audio.load(flac).samples, text, words, spk)


def align_all(variant: Variant, items: list[Item]) -> list[Outcome]:
    """Align every item with one variant (model loaded before timing starts)."""
    aligner = make_aligner(variant.cfg)
    backend = aligner.backend("en")
    if variant.sphinx:  # options AlignConfig does not expose (the issue-3 baseline rows)
        assert isinstance(backend, SphinxBackend)
        opts = SphinxOptions(**{**backend.options.__dict__, **variant.sphinx})
        aligner._backends["en"] = SphinxBackend(opts)  # bench-only override
    out = []
    for item in items:
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            words = aligner.align(item.samples, item.text, "en")
            hyp: list[Ref] | None = [(w.word, w.start, w.end) for w in words]
            error = ""
        except AlignmentError as err:
            hyp, error = None, str(err)
        out.append(Outcome(item, hyp, error, time.process_time() - c0,
                           time.perf_counter() - w0))
    return out


def score(outcomes: list[Outcome]) -> dict[str, float | str]:
    """The table's metrics over ``outcomes`` (failed items count only as failures)."""
    starts: list[float] = []
    ends: list[float] = []
    shifts: list[float] = []
    ok = [o for o in outcomes if o.hyp is not None]
    for o in ok:
        assert o.hyp is not None
        for (_, hs, he), (_, rs, re_) in zip(o.hyp, o.item.words, strict=True):
            starts.append(abs(hs - rs))
            ends.append(abs(he - re_))
            shifts.append(abs(hs - rs) + abs(he - re_))
    both = np.array(starts + ends)
    seconds = sum(len(o.item.samples) for o in ok) / audio.SAMPLE_RATE
    nan = float("nan")
    return {
        "aligned": f"{len(ok)}/{len(outcomes)}",
        "failed": len(outcomes) - len(ok),
        "start_mae_ms": 1000 * statistics.fmean(starts) if starts else nan,
        "end_mae_ms": 1000 * statistics.fmean(ends) if ends else nan,
        "boundary_mae_ms": 1000 * float(both.mean()) if both.size else nan,
        **{f"within_{ms}ms": float((both <= ms / 1000 + 1e-9).mean()) if both.size else nan
           for ms in (20, 50, 100)},
        "avg_shift_ms": 1000 * statistics.fmean(shifts) if shifts else nan,
        "rtf_wall": sum(o.wall for o in ok) / seconds if seconds else nan,
        "cpu_per_audio_s": sum(o.cpu for o in ok) / seconds if seconds else nan,
    }


def halves(outcomes: list[Outcome]) -> dict[str, list[Outcome]]:
    """Speaker halves A and B (sorted speaker ids, every other one) and all."""
    speakers = sorted({o.item.speaker for o in outcomes})
    a, b = set(speakers[::2]), set(speakers[1::2])
    return {
        f"speakers A ({len(a)})": [o for o in outcomes if o.item.speaker in a],
        f"speakers B ({len(b)})": [o for o in outcomes if o.item.speaker in b],
        "all": outcomes,
    }


def variants(args: argparse.Namespace) -> list[Variant]:
    """The table's rows: the issue-3 baseline, each change on top of it, the default."""
    issue3 = {"frame_offset": 0.0}
    plain = {"edge_level": 0.0, "closure_level": 0.0}
    out = [
        Variant("pocketsphinx, issue-3 settings", AlignConfig(silprob=0.005, **plain), issue3),
        Variant("+ frame times at window midpoints", AlignConfig(silprob=0.005, **plain)),
        Variant("+ silprob 0.1", AlignConfig(**plain)),
        Variant("+ pause-edge refinement", AlignConfig(closure_level=0)),
        Variant("+ stop closures = default", AlignConfig()),
        Variant("default + phone pass", AlignConfig(phone_pass=True)),
    ]
    if args.whisperx_model:
        out.append(Variant("whisperx", AlignConfig(
            backends={"en": "whisperx"}, whisperx_models={"en": str(args.whisperx_model)})))
    return out


HEADER = ("| set | backend / option | aligned | start MAE ms | end MAE ms | boundary MAE ms "
          "| <=20 ms | <=50 ms | <=100 ms | avg shift ms | RTF wall | CPU s / audio s |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def row(set_name: str, name: str, r: dict[str, float | str]) -> str:
    """One Markdown table row."""
    return (
        f"| {set_name} | {name} | {r['aligned']} | {r['start_mae_ms']:.1f} | "
        f"{r['end_mae_ms']:.1f} | {r['boundary_mae_ms']:.1f} | {r['within_20ms']:.1%} | "
        f"{r['within_50ms']:.1%} | {r['within_100ms']:.1%} | {r['avg_shift_ms']:.1f} | "
        f"{r['rtf_wall']:.4f} | {r['cpu_per_audio_s']:.4f} |"
    )


def sweep(
    key: str, levels: list[float], set_name: str, items: list[Item]
) -> list[dict[str, object]]:
    """Default backend at each value of ``key``; each half's pick, scored on the other half."""
    table: dict[float, dict[str, dict[str, float | str]]] = {}
    print(f"\n{key} sweep on {set_name}: boundary MAE ms (<=50 ms) per speaker half")
    for level in levels:
        cfg = AlignConfig.from_dict({key: level})
        outcomes = align_all(Variant(f"{key}={level}", cfg), items)
        table[level] = {k: score(v) for k, v in halves(outcomes).items()}
        print(f"  {level:g}: " + "  ".join(
            f"{k} {r['boundary_mae_ms']:.1f} ({r['within_50ms']:.1%})"
            for k, r in table[level].items()), flush=True)
    names = list(next(iter(table.values())))
    picks = []
    for tune, test in ((names[0], names[1]), (names[1], names[0])):
        best = min(levels, key=lambda lv: float(table[lv][tune]["boundary_mae_ms"]))
        r = table[best][test]
        picks.append({"option": key, "tuned_on": tune, "value": best, "held_out": test, **r})
        print(f"  tuned on {tune}: {key}={best:g} -> {test}: {r['boundary_mae_ms']:.1f} ms, "
              f"{r['within_50ms']:.1%} within 50 ms")
    return picks


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print Markdown tables (and JSON with ``--json``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--espeak", type=Path, default=ESPEAK, help="espeak-words folder")
    p.add_argument("--no-espeak", action="store_true", help="skip the espeak set")
    p.add_argument("--timit", type=Path, help="folder: manifest.jsonl, or TIMIT .wav + .wrd")
    p.add_argument("--manifest", type=Path, help="JSON-lines manifest with reference words")
    p.add_argument("--librispeech-alignments", type=Path, help="alignment release .txt file")
    p.add_argument("--librispeech-root", type=Path, help="LibriSpeech split folder (audio)")
    p.add_argument("--whisperx-model", type=Path, help="local wav2vec2 CTC model dir (English)")
    p.add_argument("--halves", action="store_true", help="also score speaker halves A and B")
    p.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="sweep one numeric align option (repeatable)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency of whisperx
        pass
    sets = [] if args.no_espeak else [("espeak-words", list(espeak_items(args.espeak)))]
    if args.timit:
        sets.append((f"TIMIT {args.timit.name}", list(timit_items(args.timit))))
    if args.manifest:
        sets.append((args.manifest.parent.name, list(manifest_items(args.manifest))))
    if args.librispeech_alignments:
        if not args.librispeech_root:
            p.error("--librispeech-alignments needs --librispeech-root")
        items = list(librispeech_items(args.librispeech_alignments, args.librispeech_root))
        sets.append(("LibriSpeech alignments", items))
    print(HEADER)
    results: list[dict[str, object]] = []
    for set_name, items in sets:
        for variant in variants(args):
            outcomes = align_all(variant, items)
            for o in outcomes:
                if o.hyp is None:
                    print(f"  FAILED {variant.name} {o.item.name}: {o.error}", file=sys.stderr)
            several = len({o.item.speaker for o in outcomes}) > 1
            parts = halves(outcomes) if args.halves and several else {"all": outcomes}
            for part, subset in parts.items():
                name = set_name if part == "all" else f"{set_name}, {part}"
                r = score(subset)
                results.append({"set": name, "backend": variant.name, **r})
                print(row(name, variant.name, r), flush=True)
    for spec in args.sweep:
        key, _, values = spec.partition("=")
        levels = [float(x) for x in values.split(",") if x]
        if not levels:
            p.error(f"--sweep {spec!r}: expected KEY=V1,V2,...")
        for set_name, items in sets:
            if set_name != "espeak-words":
                results.append({"set": set_name, "sweep": sweep(key, levels, set_name, items)})
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
