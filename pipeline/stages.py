"""The per-record stages of a build: decode + normalize, align, tag, encode.

:class:`SampleMaker` turns one :class:`~pipeline.record.Record` into one WebDataset
sample (``flac`` + ``json`` members) and a list of rejects.  It is built once per worker
(a Ray actor, or the driver in the in-process runner) because it may hold an alignment
model.  :func:`write_shard` runs it over a :class:`~pipeline.shards.ShardSpec`.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline import audio, tags
from pipeline.record import Record, Reject, SampleMeta
from pipeline.shards import ShardSpec, json_bytes, write_tar

PARTS_DIR = ".build"
#: Bumped whenever the same input and options give different sample bytes (a new
#: resampler, say); it is part of every shard's content hash, so a rerun after an upgrade
#: rewrites the shards instead of mixing old and new ones.
STAGES_VERSION = 4  # 4: SRWT targets continue the released prompt's <|0.00|>
MAX_PROMPTS = 3  # distinct example prompts kept per task for the dataset card


@dataclass(frozen=True)
class BuildOptions:
    """Options that change shard contents (their hash decides whether a shard is stale)."""

    shard_size: int = 256
    max_seconds: float = audio.MAX_SECONDS
    long_audio: str = "reject"
    align: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)


@dataclass
class Made:
    """Result of one record: the sample (or None) and what was rejected."""

    key: str
    members: dict[str, bytes] | None
    meta: dict[str, Any] | None
    rejects: list[Reject] = field(default_factory=list)
    align_tried: bool = False
    #: the language of a record that asks for alignment but whose language is skipped
    align_skipped: str | None = None


_ALIGNERS: dict[str, Any] = {}


def shared_aligner(align: dict[str, Any]) -> Any:
    """The :class:`~pipeline.align.Aligner` of this process for the ``align`` options.

    One per process and configuration (``skip_languages`` aside: the maker applies it), so
    a worker that writes shards of several recipes loads each language's model once, and
    only when a record of that language is aligned (the aligner loads lazily).
    """
    key = json.dumps({k: v for k, v in align.items() if k != "skip_languages"},
                     sort_keys=True, default=str)
    if key not in _ALIGNERS:
        from pipeline.align import AlignConfig, make_aligner

        _ALIGNERS[key] = make_aligner(AlignConfig.from_dict({**align, "skip_languages": []}))
    return _ALIGNERS[key]


class SampleMaker:
    """Decode, align, tag and encode records; holds the aligner (if any) for its lifetime."""

    def __init__(self, options: BuildOptions) -> None:
        self.options = options
        self.aligner = None
        self.sil_threshold = 0.2
        self.skip_languages: frozenset[str] = frozenset()
        if options.align and options.align.get("enabled", False):
            self.aligner = shared_aligner(options.align)
            self.sil_threshold = self.aligner.cfg.sil_threshold
            self.skip_languages = frozenset(options.align.get("skip_languages") or ())

    def make(self, rec: Record) -> Made:
        """Turn ``rec`` into a sample; never raises for bad input, returns rejects instead."""
        def reject(reason: str, stage: str, task: str | None = None) -> Reject:
            return Reject(rec.recipe, rec.split, rec.source, reason, stage, key=rec.key, task=task)

        try:
            clip = audio.load(
                rec.audio, max_seconds=self.options.max_seconds,
                long_audio=self.options.long_audio,  # type: ignore[arg-type]
            )
        except audio.AudioError as err:
            return Made(rec.key, None, None, [reject(str(err), "audio")])
        except Exception as err:  # noqa: BLE001 - one bad file must not stop the build
            return Made(rec.key, None, None, [reject(f"audio decoder crashed: {err!r}", "audio")])
        made = Made(rec.key, None, None)
        entries: list[dict[str, str]] = []
        for label in rec.labels:
            try:
                entries.append(tags.make_entry(label.task, label.target, **label.kwargs))
            except tags.TagError as err:
                made.rejects.append(reject(str(err), "tag", label.task))
        words = self._align(rec, clip, made, reject, entries)
        if not entries:
            made.rejects.append(reject("no task left for this clip", "tag"))
            return made
        meta = SampleMeta(
            key=rec.key,
            tasks=entries,
            duration=round(clip.duration, 4),
            language=rec.language,
            source={"recipe": rec.recipe, "split": rec.split, "file": rec.source},
            words=words,
            truncated_from=clip.truncated_from,
            meta=dict(rec.meta),
        ).to_json()
        made.meta = meta
        flac = clip.flac if clip.flac is not None else audio.encode_flac(clip.samples)
        made.members = {"flac": flac, "json": json_bytes(meta)}
        return made

    def _align(self, rec: Record, clip: audio.Audio, made: Made,
               reject: Callable[..., Reject], entries: list[dict[str, str]],
               ) -> list[dict[str, Any]] | None:
        """Add the SRWT entry to ``entries``; return the words, or None (reject recorded)."""
        if not (rec.align and self.aligner is not None):
            return None
        asr = next((lb for lb in rec.labels if lb.task == "asr"), None)
        if asr is None:
            return None
        lang = asr.kwargs.get("lang", rec.language)
        if lang in self.skip_languages:  # configured off: no SRWT, not a failure
            made.align_skipped = lang
            return None
        made.align_tried = True
        from pipeline.align import AlignmentError

        try:
            words = self.aligner.align(clip.samples, asr.target, lang)
            target = tags.srwt_target(
                [(w.word, w.start, w.end) for w in words], clip.duration, self.sil_threshold
            )
            entries.append(tags.make_entry("srwt", target, lang=lang))
        except (AlignmentError, tags.TagError) as err:
            made.rejects.append(reject(str(err), "align", "srwt"))
            return None
        except Exception as err:  # noqa: BLE001 - an aligner crash loses only this task
            made.rejects.append(reject(f"aligner crashed: {err!r}", "align", "srwt"))
            return None
        return [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)} for w in words]


def _empty_stats() -> dict[str, Any]:
    return {"samples": 0, "seconds": 0.0, "tasks": {}, "truncated": 0,
            "align": {"ok": 0, "failed": 0, "skipped": {}}}


def write_shard(spec: ShardSpec, out_dir: Path, maker: SampleMaker, digest: str) -> dict[str, Any]:
    """Write one shard (atomically) and its part file; return the part (stats + rejects)."""
    samples: list[tuple[str, dict[str, bytes]]] = []
    rejects: list[Reject] = []
    stats = _empty_stats()
    for rec in spec.records:
        made = maker.make(rec)
        rejects.extend(made.rejects)
        if made.align_tried:
            ok = made.meta is not None and "words" in made.meta
            stats["align"]["ok" if ok else "failed"] += 1
        if made.align_skipped:
            skipped = stats["align"]["skipped"]
            skipped[made.align_skipped] = skipped.get(made.align_skipped, 0) + 1
        if made.members is None or made.meta is None:
            continue
        samples.append((made.key, made.members))
        dur = made.meta["duration"]
        stats["samples"] += 1
        stats["seconds"] += dur
        stats["truncated"] += int("truncated_from" in made.meta)
        for entry in made.meta["tasks"]:
            t = stats["tasks"].setdefault(
                entry["task"], {"entries": 0, "seconds": 0.0, "prompts": []})
            t["entries"] += 1
            if entry["prompt"] not in t["prompts"] and len(t["prompts"]) < MAX_PROMPTS:
                t["prompts"].append(entry["prompt"])
        for task in {entry["task"] for entry in made.meta["tasks"]}:
            stats["tasks"][task]["seconds"] += dur  # a clip's audio counts once per task
    size, md5 = write_tar(out_dir / spec.name, samples)
    part = {
        "name": spec.name, "split": spec.split, "digest": digest, "nsamples": len(samples),
        "filesize": size, "md5sum": md5, "stats": stats,
        "rejects": [r.to_json() for r in rejects],
    }
    parts = out_dir / PARTS_DIR
    parts.mkdir(exist_ok=True)
    tmp = parts / f"{spec.name}.json.tmp"
    tmp.write_text(json.dumps(part, sort_keys=True))
    tmp.replace(parts / f"{spec.name}.json")
    return part


def crash_part(spec: ShardSpec, digest: str, err: BaseException) -> dict[str, Any]:
    """Describe a shard whose writer crashed (a bug, not bad input): no file is left."""
    return {"name": spec.name, "split": spec.split, "digest": digest, "failed": True,
            "error": "".join(traceback.format_exception_only(type(err), err)).strip()}
