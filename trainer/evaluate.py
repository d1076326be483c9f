"""Greedy decoding + per-task scores of a trained run, written as a table.

``python trainer/evaluate.py --run runs/multitask/<date> [--ckpt <file or folder>]
[--role test|valid] [--max-new-tokens 128]``

The model is rebuilt from the run's saved Hydra config (``.hydra/config.yaml``) and the
weights are read from the checkpoint (``checkpoints/last.ckpt`` by default; a distributed
FSDP2 checkpoint folder works too).  Writes ``eval_<role>.md`` (per-task table),
``eval_<role>.json`` and ``predictions_<role>.jsonl`` in the run directory.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch
from omegaconf import OmegaConf

from trainer.checkpoint import load_weights
from trainer.features import TASK_NAMES
from trainer.fit import build_module
from trainer.model import QwenAudioModel
from trainer.scoring import score_task
from trainer.tokenizer import QwenAudioTokenizer


@torch.no_grad()
def greedy(
    net: QwenAudioModel, tok: QwenAudioTokenizer, batch: dict, max_new_tokens: int
) -> list[str]:
    """Greedy continuations of left-padded prompt-only batches, up to ``<|endoftext|>``."""
    embeds = net.embed(batch["input_ids"], batch["input_features"], batch["feature_lens"])
    out = net.lm.generate(
        inputs_embeds=embeds, attention_mask=batch["attention_mask"], do_sample=False,
        num_beams=1, max_new_tokens=max_new_tokens, eos_token_id=tok.eot_id,
        pad_token_id=tok.eot_id,
    )
    texts = []
    for row in out.tolist():
        if tok.eot_id in row:
            row = row[: row.index(tok.eot_id)]
        texts.append(tok.decode(row))
    return texts


def evaluate(
    run: Path, ckpt: Path | None = None, role: str = "test", max_new_tokens: int = 128
) -> dict[str, dict[str, float]]:
    """Decode every ``role`` entry once, score per task, write the table; returns scores."""
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    cfg.init_from = None
    data, module = build_module(cfg)
    load_weights(module, ckpt or run / "checkpoints" / "last.ckpt")
    net = module.net.eval()
    if not data.shards[role]:
        raise ValueError(f"no {role!r} shards in this run's data; try --role valid")
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for batch in data.eval_loader(role, prompt_only=True):
        preds = greedy(net, data.tokenizer, batch, max_new_tokens)
        for i, pred in enumerate(preds):
            if batch["weight"][i] > 0:
                rows[TASK_NAMES[int(batch["task_ids"][i])]].append(
                    {"key": batch["keys"][i], "reference": batch["targets"][i],
                     "prediction": pred}
                )
    scores = {task: {"n": len(r), **score_task(task, r)} for task, r in sorted(rows.items())}
    _write(run, role, scores, rows)
    return scores


def _write(run: Path, role: str, scores: dict, rows: dict) -> None:
    lines = ["| task | n | metric | value |", "|---|---|---|---|"]
    for task, s in scores.items():
        for metric, value in s.items():
            if metric != "n":
                lines.append(f"| {task} | {s['n']} | {metric} | {value:.4f} |")
    (run / f"eval_{role}.md").write_text("\n".join(lines) + "\n")
    (run / f"eval_{role}.json").write_text(json.dumps(scores, indent=2))
    with open(run / f"predictions_{role}.jsonl", "w") as f:
        for task, task_rows in rows.items():
            for r in task_rows:
                f.write(json.dumps({"task": task, **r}, ensure_ascii=False) + "\n")


def main() -> None:
    """Command line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="run directory of trainer/fit.py")
    ap.add_argument("--ckpt", type=Path, default=None, help="default: checkpoints/last.ckpt")
    ap.add_argument("--role", default="test", choices=["test", "valid"])
    ap.add_argument("--max-new-tokens", type=int, default=128)
    args = ap.parse_args()
    evaluate(args.run, args.ckpt, args.role, args.max_new_tokens)
    print((args.run / f"eval_{args.role}.md").read_text())


if __name__ == "__main__":
    main()
