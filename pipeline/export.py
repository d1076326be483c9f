"""Export chat-stage conversations for other trainers: ChatML, ms-swift or LLaMA-Factory.

``python -m pipeline.export --format chatml|swift|llamafactory --out DIR
[--mixture data/shards/mixture.json --role train | --index DIR_OR_INDEX ... --splits a,b]
[--seed 0] [--templates conf/chat/templates.yaml] [--max-tokens 2048] [--name NAME]
[--times tokens|seconds]``

Writes into ``DIR``::

    <name>.jsonl           one conversation per line (format below)
    audio/<set>/<split>/<key>.flac   the FLAC bytes of the shards, as they are (no re-encode)
    dataset_info.json      (llamafactory) the dataset entry LLaMA-Factory reads
    rejects.jsonl          samples (or whole shards) left out, each with its reason
    export.json            settings and counts

Audio paths in the JSONL are relative to ``DIR``: LLaMA-Factory resolves them against its
``dataset_dir``/``media_dir`` (give ``dataset_dir=DIR``); ms-swift opens them against the
working directory or ``ROOT_IMAGE_DIR`` (its ``load_file``: run from ``DIR`` or set
``ROOT_IMAGE_DIR=DIR``); the release's loader against the working directory.

Formats (every line a JSON object):

* ``chatml``: ``{"id", "text", "audios"}``; ``text`` is the release's ChatML
  (``assets/sft_sample.txt`` of QwenLM/Qwen-Audio) with ``Audio 1: <audio>PATH</audio>``.
* ``swift``: ``{"messages": [{"role", "content"}...], "audios": [...]}``, one ``<audio>`` tag
  per audio at the start of the first user turn; ms-swift's Qwen(2)-Audio templates write
  ``Audio N: `` and the newline around each tag themselves
  (https://swift.readthedocs.io/en/latest/Customization/Custom-dataset.html).
* ``llamafactory``: the same ``messages`` + ``audios`` (sharegpt formatting, OpenAI-style
  tags) with ``Audio N: <audio>\\n`` written out, since LLaMA-Factory's audio plugin only
  replaces the tag (https://github.com/hiyouga/LLaMA-Factory/blob/main/data/README.md).

Like the build: each input shard becomes a part file (``.parts/``) written under a
temporary name and renamed when complete; a rerun with the same settings skips finished
parts, so a killed export resumes and two exports of the same shards are byte-identical.
A shard that cannot be read is a reject (retried by the next run), never a crash.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.chat import (
    DEFAULT_MAX_TOKENS,
    ChatSample,
    Clip,
    Conversation,
    Templates,
    chatml,
    conversations_of,
    messages,
    token_length,
)

FORMATS = ("chatml", "swift", "llamafactory")
TIMES = ("tokens", "seconds")
_TIME = re.compile(r"<\|(\d+\.\d{2})\|>")
PARTS = ".parts"


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def audio_path(clip: Clip) -> str:
    """Where a clip's FLAC goes, relative to the export folder."""
    return f"audio/{clip.set_name}/{clip.split}/{clip.key}.flac"


def plain_times(conv: Conversation) -> Conversation:
    """``conv`` with each time token ``<|2.33|>`` written as ``2.33`` (for models whose
    tokenizer has no time tokens)."""
    pairs = tuple((_TIME.sub(r"\1", q), _TIME.sub(r"\1", a)) for q, a in conv.pairs)
    return replace(conv, pairs=pairs)


def line(fmt: str, conv: Conversation) -> str:
    """One JSONL line of ``conv`` in ``fmt``."""
    paths = [audio_path(c) for c in conv.clips]
    if fmt == "chatml":
        return _dump({"id": conv.id, "text": chatml(conv, paths), "audios": paths})
    if fmt == "swift":
        return _dump({"messages": messages(conv, lambda n: "<audio>"), "audios": paths})
    if fmt == "llamafactory":
        label = conv.audio_label
        return _dump({"messages": messages(conv, lambda n: f"{label.format(n=n)}<audio>\n"),
                      "audios": paths})
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def dataset_info(name: str, file_name: str) -> dict[str, Any]:
    """LLaMA-Factory's ``dataset_info.json`` entry for the exported file (sharegpt, OpenAI
    message tags, an ``audios`` column)."""
    return {name: {
        "file_name": file_name, "formatting": "sharegpt",
        "columns": {"messages": "messages", "audios": "audios"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                 "assistant_tag": "assistant", "system_tag": "system"},
    }}


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _reject(shard: Any, reason: str, key: str | None = None) -> str:
    rec = {"set": shard.set_name, "split": shard.split, "shard": Path(shard.path).name,
           "reason": reason}
    if key is not None:
        rec["key"] = key
    return _dump(rec)


def export_shard(
    shard: Any, fmt: str, out: Path, templates: Templates, seed: int,
    length: Callable[[Conversation], int], max_tokens: int, times: str = "tokens",
) -> tuple[list[str], list[str]]:
    """Lines and rejects of one shard; writes the audio files its conversations name."""
    from trainer.reader import read_shard

    samples: list[ChatSample] = []
    flac: dict[Clip, bytes] = {}
    rejects: list[str] = []
    for key, meta, ref in read_shard(shard.path, shard.nsamples):
        clip = Clip(shard.set_name, shard.split, key, float(meta["duration"]))
        if not (ref.data or b"").startswith(b"fLaC"):
            rejects.append(_reject(shard, "audio member is not a FLAC stream", key))
            continue
        samples.append(ChatSample(clip, meta))
        flac[clip] = ref.data  # type: ignore[assignment]
    lines: list[str] = []
    for sample, conv in zip(samples, conversations_of(samples, templates, seed, length,
                                                      max_tokens), strict=True):
        if isinstance(conv, str):
            rejects.append(_reject(shard, conv, sample.clip.key))
            continue
        for clip in conv.clips:
            path = out / audio_path(clip)
            if not path.is_file() or path.read_bytes() != flac[clip]:
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_atomic(path, flac[clip])
        lines.append(line(fmt, plain_times(conv) if times == "seconds" else conv))
    return lines, rejects


def _settings(fmt: str, shards: Sequence[Any], templates: Templates, seed: int,
              max_tokens: int, name: str, times: str) -> dict[str, Any]:
    text = Path(templates.path).read_bytes()
    return {"format": fmt, "name": name, "seed": seed, "max_tokens": max_tokens, "times": times,
            "templates_sha256": hashlib.sha256(text).hexdigest(),
            "shards": [f"{s.set_name}/{Path(s.path).name}" for s in shards]}


def run_export(shards: Sequence[Any], fmt: str, out: Path, templates: Templates, tokenizer: Any,
               seed: int = 0, max_tokens: int = DEFAULT_MAX_TOKENS,
               name: str = "qwen_audio_chat", times: str = "tokens") -> dict[str, Any]:
    """Export ``shards`` (``trainer.reader.Shard``) into ``out``; returns ``export.json``.

    ``times="seconds"`` writes time tokens as plain numbers (see :func:`plain_times`).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if times not in TIMES:
        raise ValueError(f"unknown times {times!r}; choose one of {', '.join(TIMES)}")
    out = Path(out)
    parts = out / PARTS
    parts.mkdir(parents=True, exist_ok=True)
    settings = _settings(fmt, shards, templates, seed, max_tokens, name, times)
    marker = parts / "settings.json"
    if marker.is_file() and json.loads(marker.read_text()) != settings:
        raise ValueError(f"{out} holds an unfinished or finished export with other settings "
                         f"({marker}); choose another --out or delete that folder")
    _write_atomic(marker, json.dumps(settings, indent=1).encode())
    length = token_length(tokenizer)
    all_lines: list[str] = []
    all_rejects: list[str] = []
    for i, shard in enumerate(shards):
        stem = f"{i:06d}-{shard.set_name}-{Path(shard.path).stem}"
        done, rej = parts / f"{stem}.jsonl", parts / f"{stem}.rejects.jsonl"
        if not done.is_file():
            try:
                lines, rejects = export_shard(shard, fmt, out, templates, seed, length,
                                              max_tokens, times)
            except (OSError, ValueError) as err:  # unreadable or refused shard: retried next run
                all_rejects.append(_reject(shard, f"shard not read: {err}"))
                continue
            _write_atomic(rej, "".join(r + "\n" for r in rejects).encode())
            _write_atomic(done, "".join(x + "\n" for x in lines).encode())
        all_lines += done.read_text(encoding="utf-8").splitlines()
        all_rejects += rej.read_text(encoding="utf-8").splitlines()
    file_name = f"{name}.jsonl"
    _write_atomic(out / file_name, "".join(x + "\n" for x in all_lines).encode())
    _write_atomic(out / "rejects.jsonl", "".join(r + "\n" for r in all_rejects).encode())
    if fmt == "llamafactory":
        _write_atomic(out / "dataset_info.json",
                      json.dumps(dataset_info(name, file_name), indent=2).encode())
    report = {**settings, "file": file_name, "conversations": len(all_lines),
              "rejects": len(all_rejects)}
    _write_atomic(out / "export.json", json.dumps(report, indent=1).encode())
    return report


def select(mixture: str | None, indexes: Sequence[str], role: str,
           splits: Sequence[str]) -> list[Any]:
    """The shards to export: a mixture's ``role`` shards, or the ``splits`` of index files."""
    from trainer.reader import read_index, read_mixture

    if indexes:
        paths = [Path(p) / "index.json" if Path(p).is_dir() else Path(p) for p in indexes]
        shards = [s for p in paths for s in read_index(p)]
        return [s for s in shards if not splits or s.split in splits]
    return list(read_mixture(mixture or "data/shards/mixture.json")["shards"][role])


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--format", required=True, choices=FORMATS)
    ap.add_argument("--out", required=True, type=Path, help="export folder")
    ap.add_argument("--mixture", default=None, help="default: data/shards/mixture.json")
    ap.add_argument("--role", default="train", choices=["train", "valid", "test"])
    ap.add_argument("--index", nargs="*", default=[], help="shard folders or index.json files")
    ap.add_argument("--splits", default="", help="comma-separated splits (with --index)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--templates", default=None, help="default: conf/chat/templates.yaml")
    ap.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS)
    ap.add_argument("--name", default="qwen_audio_chat", help="dataset and file name")
    ap.add_argument("--tokenizer", default=None, help="qwen.tiktoken (default: the package's)")
    ap.add_argument("--times", default="tokens", choices=TIMES,
                    help="seconds: <|2.33|> written as 2.33 (models without time tokens)")
    args = ap.parse_args(argv)
    from trainer.tokenizer import QwenAudioTokenizer

    try:
        shards = select(args.mixture, args.index, args.role,
                        [s for s in args.splits.split(",") if s])
        if not shards:
            raise ValueError("no shards selected: check --mixture/--role or --index/--splits")
        report = run_export(shards, args.format, args.out, Templates.load(args.templates),
                            QwenAudioTokenizer.from_tiktoken(args.tokenizer), args.seed,
                            args.max_tokens, args.name, args.times)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{report['conversations']} conversations, {report['rejects']} rejects -> "
          f"{args.out / report['file']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
