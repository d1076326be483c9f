"""Greedy decoding + per-task scores of a trained run, written as a table.

``python trainer/evaluate.py --run runs/multitask/<date> [--ckpt <file or folder>]
[--role test|valid] [--max-new-tokens 128] [--device auto|cpu|cuda]``

The model is rebuilt from the run's saved Hydra config (``.hydra/config.yaml``) on the
meta device and its weights read straight onto the device from the checkpoint
(``checkpoints/last.ckpt`` by default; a distributed FSDP2 checkpoint folder or a
safetensors file works too).  On a GPU the model runs in bf16; decoding is batched greedy
with the key/value cache.  Under ``torchrun --nproc-per-node N`` each rank decodes its share
of the batches and rank 0 gathers them (same predictions, in the same order, as one
process); give the run as ``--run-dir`` there (torchrun takes ``--run`` for its own).
Writes ``eval_<role>.md`` (per-task table), ``eval_<role>.json`` and
``predictions_<role>.jsonl`` in the run directory (rank 0).  A chat-stage run
(``+experiment=chat``) decodes the last answer of each conversation after
``<|im_start|>assistant\n`` up to ``<|im_end|>``, scored by exact match and WER.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch
import torch.distributed as dist
from omegaconf import OmegaConf

from trainer.checkpoint import init_weights
from trainer.features import TASK_NAMES
from trainer.fit import build_module
from trainer.model import QwenAudioModel
from trainer.scoring import score_task
from trainer.tokenizer import QwenAudioTokenizer


@torch.no_grad()
def generate(
    net: QwenAudioModel, tok: QwenAudioTokenizer, batch: dict, max_new_tokens: int,
    stop_id: int | None = None,
) -> list[str]:
    """Greedy continuations of a left-padded prompt-only batch, up to ``<|endoftext|>``
    (or ``stop_id``: ``<|im_end|>`` for chat prompts).

    Batched, with the key/value cache; the batch's tensors move to the model's device.
    """
    device = next(net.parameters()).device
    embeds = net.embed(*(batch[k].to(device) for k in ("input_ids", "input_features",
                                                       "feature_lens")))
    out = net.lm.generate(
        inputs_embeds=embeds, attention_mask=batch["attention_mask"].to(device),
        do_sample=False, num_beams=1, max_new_tokens=max_new_tokens, use_cache=True,
        eos_token_id=tok.eot_id if stop_id is None else stop_id, pad_token_id=tok.eot_id,
    )
    stop = tok.eot_id if stop_id is None else stop_id
    texts = []
    for row in out.tolist():
        if stop in row:
            row = row[: row.index(stop)]
        texts.append(tok.decode(row))
    return texts


greedy = generate  # the former name


def _distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); starts the process group under torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if world > 1 else (0, 1)


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: this process's GPU (``LOCAL_RANK``) when there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


def load_for_eval(run: Path, ckpt: Path | None, device: torch.device) -> tuple[Any, Any]:
    """The run's data module and its net, weights read straight onto ``device`` (bf16 on
    a GPU, fp32 on CPU), in eval mode."""
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    cfg.paths.run_dir = str(run)  # the saved config names Hydra's run dir
    cfg.init_from = str(ckpt or run / "checkpoints" / "last.ckpt")
    data, module = build_module(cfg, materialize=False)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    init_weights(module.net, device, cfg.seed, cfg.init_from)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return data, module.net.to(dtype).eval()


def evaluate(
    run: Path, ckpt: Path | None = None, role: str = "test", max_new_tokens: int = 128,
    device: str = "auto",
) -> dict[str, dict[str, float]]:
    """Decode every ``role`` entry once, score per task, write the table; returns scores."""
    dev = pick_device(device)
    rank, world = _distributed(dev)
    data, net = load_for_eval(run, ckpt, dev)
    if not data.shards[role]:
        raise ValueError(f"no {role!r} shards in this run's data; try --role valid")
    mine = []  # (global batch index, row, task, entry) of this rank's real rows
    loader = data.eval_loader(role, prompt_only=True, rank=rank, world=world,
                              per_rank=data.eval_batch_size)
    chat = hasattr(data, "templates")  # a chat-stage run: prompts end in "assistant\n"
    stop = data.tokenizer.token_to_id("<|im_end|>") if chat else None
    for i, batch in enumerate(loader):
        preds = generate(net, data.tokenizer, batch, max_new_tokens, stop)
        for j, pred in enumerate(preds):
            if batch["weight"][j] > 0:
                mine.append((rank + i * world, j, TASK_NAMES[int(batch["task_ids"][j])],
                             {"key": batch["keys"][j], "prompt": batch["prompts"][j],
                              "reference": batch["targets"][j], "prediction": pred}))
    everyone = [mine]
    if world > 1:
        everyone = [None] * world
        dist.all_gather_object(everyone, mine)
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for _, _, task, row in sorted((r for part in everyone for r in part), key=lambda r: r[:2]):
        rows[task].append(row)
    if chat:
        from trainer.chat_data import score_chat
    scores = {task: {"n": len(r), **(score_chat(r) if chat else score_task(task, r))}
              for task, r in sorted(rows.items())}
    if rank == 0:
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
    ap.add_argument("--run", "--run-dir", dest="run", type=Path, required=True,
                    help="run directory of trainer/fit.py (--run-dir under torchrun, whose "
                    "own options make --run ambiguous)")
    ap.add_argument("--ckpt", type=Path, default=None, help="default: checkpoints/last.ckpt")
    ap.add_argument("--role", default="test", choices=["test", "valid"])
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="auto: the GPU of this rank when there is one (bf16), else CPU")
    args = ap.parse_args()
    evaluate(args.run, args.ckpt, args.role, args.max_new_tokens, args.device)
    if int(os.environ.get("RANK", "0")) == 0:
        print((args.run / f"eval_{args.role}.md").read_text())
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
