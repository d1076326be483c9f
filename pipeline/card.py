"""The files that describe a finished build: index.json, report.json, rejects.jsonl and
the README.md dataset card (also valid as a Hugging Face dataset repository card)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline import tags
from pipeline.card_plots import card_section
from pipeline.format import INDEX_NAME, index_text
from pipeline.recipe import CorpusInfo
from pipeline.record import FORMAT_VERSION, Record, Reject
from pipeline.stages import MAX_PROMPTS, BuildOptions


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_index(out_dir: Path, name: str, parts: Sequence[dict[str, Any]]) -> None:
    """Write ``index.json`` in the wids shard-index format (plus a ``split`` per shard)."""
    _write_atomic(out_dir / INDEX_NAME, index_text(name, parts))


def _split_report(split: str, role: str | None) -> dict[str, Any]:
    return {"role": role, "inputs": 0, "samples": 0, "hours": 0.0, "truncated": 0,
            "rejects": {}, "tasks": {},
            "alignment": {"attempted": 0, "aligned": 0, "success_rate": None,
                          "skipped": {}}}


def write_report(
    out_dir: Path,
    info: CorpusInfo,
    parts: Sequence[dict[str, Any]],
    parse_rejects: Sequence[Reject],
    records: Sequence[Record],
    wall_seconds: float,
    options: BuildOptions,
    align_skipped: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Write ``report.json`` and ``rejects.jsonl``; return the report.

    ``align_skipped`` maps a language built without SRWT to the reason (a configured
    ``align.skip_languages``, or no local model in a sample build): each split counts its
    items that were not aligned for it, and the report keeps the reasons."""
    splits: dict[str, dict[str, Any]] = {}

    def split(name: str) -> dict[str, Any]:
        return splits.setdefault(name, _split_report(name, info.splits.get(name)))

    for rec in records:
        split(rec.split)["inputs"] += 1
    rejects = [r.to_json() for r in parse_rejects]
    for r in parse_rejects:
        split(r.split)["inputs"] += 1
    for p in parts:
        s, st = split(p["split"]), p["stats"]
        s["samples"] += st["samples"]
        s["hours"] += st["seconds"] / 3600
        s["truncated"] += st["truncated"]
        s["alignment"]["attempted"] += st["align"]["ok"] + st["align"]["failed"]
        s["alignment"]["aligned"] += st["align"]["ok"]
        for lang, n in st["align"].get("skipped", {}).items():
            s["alignment"]["skipped"][lang] = s["alignment"]["skipped"].get(lang, 0) + n
        for task, t in st["tasks"].items():
            acc = s["tasks"].setdefault(task, {"entries": 0, "hours": 0.0, "rejects": 0,
                                               "prompts": []})
            acc["entries"] += t["entries"]
            acc["hours"] += t["seconds"] / 3600
            for prompt in t["prompts"]:
                if prompt not in acc["prompts"] and len(acc["prompts"]) < MAX_PROMPTS:
                    acc["prompts"].append(prompt)
        rejects.extend(p["rejects"])
    for r in rejects:
        s = split(r["split"])
        s["rejects"][r["stage"]] = s["rejects"].get(r["stage"], 0) + 1
        if "task" in r and r["task"] in s["tasks"]:
            s["tasks"][r["task"]]["rejects"] += 1
    for s in splits.values():
        s["hours"] = round(s["hours"], 6)
        for t in s["tasks"].values():
            t["hours"] = round(t["hours"], 6)
        al = s["alignment"]
        if al["attempted"]:
            al["success_rate"] = round(al["aligned"] / al["attempted"], 4)
    seconds = sum(p["stats"]["seconds"] for p in parts)
    report = {
        "recipe": info.name,
        "format_version": FORMAT_VERSION,
        "samples": sum(s["samples"] for s in splits.values()),
        "hours": round(seconds / 3600, 6),
        "rejects": len(rejects),
        "shards": len(parts),
        "splits": dict(sorted(splits.items())),
        "options": options.to_json(),
        "align_skipped": dict(sorted((align_skipped or {}).items())),
        "wall_seconds": round(wall_seconds, 3),
        "audio_seconds_per_second": round(seconds / wall_seconds, 2) if wall_seconds else None,
    }
    lines = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rejects)
    _write_atomic(out_dir / "rejects.jsonl", lines)
    _write_atomic(out_dir / "report.json", json.dumps(report, indent=1) + "\n")
    return report


def _code_tokens(text: str) -> str:
    """Put ``<|...|>`` tokens in code spans, so Markdown shows them instead of eating them."""
    return re.sub(r"`?(<\|[^<>|]+\|>)`?", r"`\1`", text)


def hf_split_name(split: str) -> str:
    """Hugging Face split names allow only word characters (``dev-clean`` -> ``dev_clean``)."""
    return re.sub(r"\W", "_", split)


def _licence_id(licence: str) -> str:
    ident = re.sub(r"[\s_]+", "-", licence.strip().lower())
    return ident if re.fullmatch(r"cc-[a-z-]+-\d\.\d|cc0-1\.0|mit|apache-2\.0", ident) else "other"


#: Column types for ``datasets.load_dataset(<out dir>)``: FLAC stays bytes and the JSON a
#: ``Json`` column, so loading needs no FFmpeg/torchcodec (see FORMAT.md; issue 6).
HF_FEATURES_YAML = ["dataset_info:", "  features:", "  - name: __key__", "    dtype: string",
                    "  - name: __url__", "    dtype: string", "  - name: flac",
                    "    dtype: binary", "  - name: json", "    dtype: json"]


def card_shards(out_dir: Path, info: CorpusInfo, report: dict[str, Any]) -> list[Path]:
    """The finished shards of this build's splits (for the card's pictures)."""
    pattern = re.compile(rf"{re.escape(info.name)}-(.+)-\d{{6}}\.tar")
    return [p for p in sorted(out_dir.glob("*.tar"))
            if (m := pattern.fullmatch(p.name)) and m.group(1) in report["splits"]]


def _alignment_cell(s: dict[str, Any]) -> str:
    al = s["alignment"]
    cells = [] if al["success_rate"] is None else [f"{al['success_rate']:.1%}"]
    cells += [f"{n} without SRWT ({lang}, see below)"
              for lang, n in sorted(al.get("skipped", {}).items())]
    return ", ".join(cells) or "-"


def write_card(out_dir: Path, info: CorpusInfo, report: dict[str, Any],
               section: list[str] | None = None) -> None:
    """Write ``README.md``: front matter (one config per split), counts, tasks, prompts.

    ``section``: the pictures and tables (:func:`pipeline.card_plots.card_section`), drawn
    here when not given."""
    front = ["---", f"license: {_licence_id(info.licence)}", "tags:", "- audio",
             "- qwen-audio", "- webdataset", *HF_FEATURES_YAML, "configs:",
             "- config_name: default", "  data_files:"]
    for split in report["splits"]:
        front += [f"  - split: {hf_split_name(split)}",
                  f'    path: "{info.name}-{split}-*.tar"']
    front.append("---")
    body = [
        f"# {info.title}: Qwen-Audio tagged shards", "",
        f"Built by `make build-dataset RECIPE={info.name}` from {info.title} "
        f"({info.homepage}).", "",
        f"- Licence of the source corpus: {info.licence}",
        f"- Samples: {report['samples']}, audio: {report['hours']:.4f} h, "
        f"rejects: {report['rejects']} (see `rejects.jsonl`)",
        f"- Format: WebDataset tars, `<key>.flac` (16 kHz mono) + `<key>.json`, "
        f"format version {report['format_version']}; shard list in `index.json`", "",
        "## Splits", "", "| split | role | samples | hours | rejects | alignment |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in report["splits"].items():
        body.append(f"| {name} | {s['role'] or '-'} | {s['samples']} | {s['hours']:.4f} | "
                    f"{sum(s['rejects'].values())} | {_alignment_cell(s)} |")
    for lang, why in report.get("align_skipped", {}).items():
        body += ["", f"No word timestamps (SRWT) for language `{lang}`: {why}"]
    body += ["", "## Tasks and prompts", "", "| task | entries | hours | prompt |",
             "|---|---|---|---|"]
    merged: dict[str, dict[str, Any]] = {}
    for s in report["splits"].values():
        for task, t in s["tasks"].items():
            m = merged.setdefault(task, {"entries": 0, "hours": 0.0, "prompts": []})
            m["entries"] += t["entries"]
            m["hours"] += t["hours"]
            m["prompts"] += [p for p in t["prompts"] if p not in m["prompts"]]
    for task, m in sorted(merged.items()):
        # a "|" inside a table cell must be escaped, even inside a code span (GFM)
        prompt = "<br>".join(f"`{p}`".replace("|", "\\|") for p in m["prompts"][:MAX_PROMPTS])
        body.append(f"| {task} | {m['entries']} | {m['hours']:.4f} | {prompt} |")
    choices = [t for t in merged if t in tags.TASKS and not tags.TASKS[t].released]
    if choices:
        body += ["", "## Choices made where the release shows no prompt", ""]
        body += [f"- `{t}`: {_code_tokens(tags.TASKS[t].description)}; the released Qwen-Audio "
                 "evaluation scripts show no prompt for it, so the closest existing output "
                 "instruction is used." for t in sorted(choices)]
    styles = [tag for tag in tags.ITN_STYLES if any(tag in p for m in merged.values()
                                                    for p in m["prompts"])]
    if styles or info.notes:  # the style each ITN tag asks for, then this corpus's rules
        body += ["", "## Targets", ""]
        body += [f"- `{tag}` targets: {tags.ITN_STYLES[tag]}." for tag in styles]
        if info.notes:
            body += [f"- This corpus: {_code_tokens(info.notes)}"]
    if section is None:
        section = card_section(out_dir, card_shards(out_dir, info, report), {info.name: info})
    body += ["", *section]
    body += ["## Citation", "", "```bibtex", info.citation.strip(), "```", ""]
    _write_atomic(out_dir / "README.md", "\n".join([*front, "", *body]))
