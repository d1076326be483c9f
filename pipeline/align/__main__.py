"""Command line: align one clip, or a JSONL manifest with the model loaded once.

    python -m pipeline.align --audio clip.flac --text "hello world" --lang en
    python -m pipeline.align --manifest items.jsonl [--out aligned.jsonl]

One clip prints ``[{"word", "start", "end"}, ...]``.  A manifest has one
``{"audio", "text", "lang"}`` per line (``audio`` relative to the manifest's folder or
absolute); the output has one line per input, ``{"audio", "words"}`` or
``{"audio", "error"}``.  ``--backend`` overrides the configured backend of every
language; ``--model`` sets the whisperx model (local directory or cached HF id).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from pipeline import audio
from pipeline.align import BACKENDS, AlignConfig, AlignConfigError, Aligner, AlignmentError

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "conf" / "align" / "default.yaml"


def _config(args: argparse.Namespace, languages: set[str]) -> AlignConfig:
    d: dict[str, Any] = {}
    if args.config.is_file():
        from omegaconf import OmegaConf

        d = OmegaConf.to_container(OmegaConf.load(args.config), resolve=True)  # type: ignore[assignment]
    elif args.config != DEFAULT_CONFIG:
        raise SystemExit(f"config file not found: {args.config}")
    d["enabled"] = True
    if args.backend:
        d["backends"] = {**d.get("backends", {}), **{lang: args.backend for lang in languages}}
    if args.model:
        d["whisperx_models"] = {
            **d.get("whisperx_models", {}), **{lang: args.model for lang in languages}
        }
    return AlignConfig.from_dict(d)


def _manifest(path: Path) -> Iterator[dict[str, str]]:
    """Items of a JSONL manifest; a bad line stops with its file and line number."""
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not all(isinstance(item.get(k), str) for k in ("audio", "text", "lang")):
                raise ValueError("needs string fields audio, text, lang")
        except ValueError as err:
            raise SystemExit(f"{path}:{n}: bad manifest line ({err})") from None
        yield item


def _align_one(aligner: Aligner, path: Path, text: str, lang: str) -> list[dict[str, Any]]:
    try:
        samples = audio.load(path).samples
    except audio.AudioError as err:
        raise AlignmentError(f"{path}: {err}") from None
    return [{"word": w.word, "start": w.start, "end": w.end}
            for w in aligner.align(samples, text, lang)]


def _run_manifest(aligner: Aligner, items: list[dict[str, str]], base: Path, out: TextIO) -> int:
    failed = 0
    for item in items:
        path = Path(item["audio"])
        path = path if path.is_absolute() else base / path
        try:
            words = _align_one(aligner, path, item["text"], item["lang"])
            row: dict[str, Any] = {"audio": item["audio"], "words": words}
        except AlignmentError as err:
            row = {"audio": item["audio"], "error": str(err)}
            failed += 1
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        out.flush()
    print(f"aligned {len(items) - failed} of {len(items)}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m pipeline.align``; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m pipeline.align", description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--audio", type=Path, help="one audio file (with --text and --lang)")
    src.add_argument("--manifest", type=Path, help='JSONL: {"audio", "text", "lang"} per line')
    p.add_argument("--text", help="transcript of --audio")
    p.add_argument("--lang", default="en", help="language of --audio (default en)")
    p.add_argument("--backend", choices=BACKENDS, help="override the configured backend")
    p.add_argument("--model", help="whisperx model: local directory or cached HF id")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="align config YAML")
    p.add_argument("--out", type=Path, help="manifest output file (default stdout)")
    args = p.parse_args(argv)
    if args.audio and args.text is None:
        p.error("--audio needs --text")
    items = list(_manifest(args.manifest)) if args.manifest else []
    languages = {i["lang"] for i in items} if args.manifest else {args.lang}
    aligner = Aligner(_config(args, languages))
    try:
        aligner.check(languages)
    except AlignConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.manifest:
        if args.out:
            with args.out.open("w", encoding="utf-8") as out:
                return _run_manifest(aligner, items, args.manifest.parent, out)
        return _run_manifest(aligner, items, args.manifest.parent, sys.stdout)
    try:
        words = _align_one(aligner, args.audio, args.text, args.lang)
    except AlignmentError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(words, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
