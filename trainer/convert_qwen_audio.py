"""Convert the released Qwen-Audio checkpoint into this project's model, to fine-tune it.

Usage::

    python -m trainer.convert_qwen_audio --checkpoint <local Qwen-Audio folder> --out <dir>
    python trainer/fit.py --config-dir <dir>/conf model=qwen_audio_release init_from=<dir> ...

The release (``QWenLMHeadModel``: its ``config.json``, ``*.safetensors`` or
``pytorch_model*.bin``, ``qwen.tiktoken``) holds a Whisper encoder under
``transformer.audio.*`` (OpenAI names) and a Qwen-v1 LM.  Written to ``<dir>``:

* ``model-*.safetensors`` + ``model.safetensors.index.json``: exactly the keys and shapes
  of :class:`trainer.model.QwenAudioModel` built from the config below;
* ``conf/model/qwen_audio_release.yaml``: a Hydra model config of the checkpoint's sizes;
* ``qwen.tiktoken`` copied from the checkpoint (the tokenizer of that config).

Mapping (checked against the release's ``audio.py`` and ``modeling_qwen.py``):

* encoder: ``conv1/conv2`` as they are; ``positional_embedding`` -> ``embed_positions``;
  block ``attn.query/key/value/out`` -> ``self_attn.q/k/v/out_proj``, ``attn_ln`` ->
  ``self_attn_layer_norm``, ``mlp.0/mlp.2`` -> ``fc1/fc2``, ``mlp_ln`` ->
  ``final_layer_norm``; ``ln_post`` -> ``layer_norm`` (applied after pooling, as in the
  release); ``proj`` -> ``projector``; ``audio_bos_eos_token`` -> ``projector.bos_eos``.
* LM (Qwen-v1 -> transformers' Qwen2 layout): the fused ``c_attn`` (rows q, k, v, with
  bias) -> ``q/k/v_proj``; ``attn.c_proj`` -> ``o_proj``; the MLP is
  ``c_proj(w1(x) * silu(w2(x)))``, so ``w2`` -> ``gate_proj``, ``w1`` -> ``up_proj``,
  ``mlp.c_proj`` -> ``down_proj``; ``ln_1/ln_2/ln_f`` (RMSNorm) -> ``input_layernorm``,
  ``post_attention_layernorm``, ``norm``; ``wte`` -> ``embed_tokens``; ``lm_head``
  (untied).  Both rotate the two halves of each head (``rotate_half``), so q and k need no
  permutation; all heads are key/value heads; ``rotary_emb_base`` -> ``rope_theta``,
  ``layer_norm_epsilon`` -> ``rms_norm_eps``, ``intermediate_size / 2`` -> the MLP width.
* vocabulary rows: cut (or padded with the mean row) to the rows of the project's model,
  the tokenizer's ids rounded up to 64; the release's ids agree with the tokenizer's.

Not carried over: the release's inference-only long-context tricks (dynamic NTK rotary
scaling and log-n attention scaling, both inactive up to its ``seq_length`` of 2048).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

CONFIG_NAME = "qwen_audio_release"
SHARD_BYTES = 2 << 30
IGNORED = re.compile(r".*\.(rotary_emb\.inv_freq|attn\.masked_bias|attn\.bias)$")  # buffers
ENCODER_BLOCK = {
    "attn.query": "self_attn.q_proj", "attn.key": "self_attn.k_proj",
    "attn.value": "self_attn.v_proj", "attn.out": "self_attn.out_proj",
    "attn_ln": "self_attn_layer_norm", "mlp.0": "fc1", "mlp.2": "fc2",
    "mlp_ln": "final_layer_norm",
}
LM_BLOCK = {
    "ln_1": "input_layernorm", "ln_2": "post_attention_layernorm",
    "attn.c_proj": "self_attn.o_proj", "mlp.w1": "mlp.up_proj", "mlp.w2": "mlp.gate_proj",
    "mlp.c_proj": "mlp.down_proj",
}


def release_config(folder: Path) -> dict[str, Any]:
    """The release's ``config.json``, checked for what the Qwen2 layout can hold."""
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --checkpoint must be the Qwen-Audio folder")
    c = json.loads(path.read_text())
    problems = []
    if c.get("model_type") != "qwen" or "audio" not in c:
        problems.append("not a Qwen-Audio config (model_type 'qwen' with an 'audio' section)")
    if c.get("rotary_pct", 1.0) != 1.0:
        problems.append(f"rotary_pct {c['rotary_pct']} (Qwen2 rotates whole heads)")
    if c.get("kv_channels", 0) * c.get("num_attention_heads", 0) != c.get("hidden_size"):
        problems.append("kv_channels x num_attention_heads != hidden_size")
    if not c.get("no_bias", True):
        problems.append("no_bias is false (Qwen2's o_proj and MLP have no bias)")
    if problems:
        raise ValueError(f"{path}: cannot convert: " + "; ".join(problems))
    return c


def model_config(c: dict[str, Any], tokenizer_path: str | None) -> dict[str, Any]:
    """The Hydra model config (``conf/model`` group) of a release config."""
    a = c["audio"]
    encoder = {
        "_target_": "transformers.WhisperConfig", "num_mel_bins": a["n_mels"],
        "d_model": a["n_state"], "encoder_layers": a["n_layer"],
        "encoder_attention_heads": a["n_head"], "encoder_ffn_dim": 4 * a["n_state"],
        "decoder_layers": 1, "decoder_attention_heads": a["n_head"],
        "decoder_ffn_dim": 4 * a["n_state"], "max_source_positions": a["n_ctx"],
        "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
    }
    lm = {
        "_target_": "transformers.Qwen2Config", "hidden_size": c["hidden_size"],
        "intermediate_size": c["intermediate_size"] // 2,
        "num_hidden_layers": c["num_hidden_layers"],
        "num_attention_heads": c["num_attention_heads"],
        "num_key_value_heads": c["num_attention_heads"],
        "max_position_embeddings": c.get("max_position_embeddings", 8192),
        "rope_theta": float(c.get("rotary_emb_base", 10000)),
        "rms_norm_eps": float(c.get("layer_norm_epsilon", 1e-6)),
        "initializer_range": c.get("initializer_range", 0.02),
        "tie_word_embeddings": False, "attention_dropout": 0.0,
    }
    tokenizer = ({"source": "path", "path": tokenizer_path} if tokenizer_path
                 else {"source": "package", "path": None})
    return {
        "defaults": ["tiny", "_self_"],
        "lr": 1.0e-5, "warmup_steps": 100, "checkpoint_every": 1000,
        "tokenizer": tokenizer,
        "module": {
            "param_dtype": "bfloat16", "activation_checkpointing": True,
            "net": {"encoder_path": None, "lm_path": None, "encoder": encoder, "lm": lm},
        },
    }


def release_tensors(folder: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of the checkpoint, one at a time (safetensors preferred)."""
    files = sorted(folder.glob("*.safetensors"))
    if files:
        from safetensors import safe_open

        for f in files:
            with safe_open(str(f), framework="pt") as st:
                for name in st.keys():
                    yield name, st.get_tensor(name)
        return
    files = sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors or pytorch_model*.bin in {folder}")
    for f in files:
        yield from torch.load(f, map_location="cpu", weights_only=True).items()


def rename(name: str, t: torch.Tensor, hidden: int) -> list[tuple[str, torch.Tensor]]:
    """Our key(s) of one release tensor (``c_attn`` splits in three); [] for buffers."""
    if IGNORED.match(name):
        return []
    if name.startswith("transformer.audio."):
        rest = name.removeprefix("transformer.audio.")
        if rest == "positional_embedding":
            return [("encoder.whisper.embed_positions.weight", t)]
        if rest == "audio_bos_eos_token.weight":
            return [("projector.bos_eos", t)]
        if rest.startswith("proj."):
            return [("projector." + rest.removeprefix("proj."), t)]
        if rest.startswith("ln_post."):
            return [("encoder.whisper.layer_norm." + rest.removeprefix("ln_post."), t)]
        if rest.startswith(("conv1.", "conv2.")):
            return [("encoder.whisper." + rest, t)]
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(weight|bias)", rest)
        if m and m[2] in ENCODER_BLOCK:
            return [(f"encoder.whisper.layers.{m[1]}.{ENCODER_BLOCK[m[2]]}.{m[3]}", t)]
    elif name == "transformer.wte.weight":
        return [("lm.model.embed_tokens.weight", t)]
    elif name == "transformer.ln_f.weight":
        return [("lm.model.norm.weight", t)]
    elif name == "lm_head.weight":
        return [("lm.lm_head.weight", t)]
    else:
        m = re.fullmatch(r"transformer\.h\.(\d+)\.(.+)\.(weight|bias)", name)
        if m and m[2] == "attn.c_attn":
            q, k, v = t.split(hidden, dim=0)
            base = f"lm.model.layers.{m[1]}.self_attn"
            return [(f"{base}.{p}_proj.{m[3]}", x.contiguous()) for p, x in zip("qkv", (q, k, v),
                                                                              strict=True)]
        if m and m[2] in LM_BLOCK:
            return [(f"lm.model.layers.{m[1]}.{LM_BLOCK[m[2]]}.{m[3]}", t)]
    raise ValueError(f"release tensor {name} {tuple(t.shape)} has no place in the model")


def fit_rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    """Cut a vocabulary matrix to ``rows``, or pad it with its mean row."""
    if t.shape[0] >= rows:
        return t[:rows].contiguous()
    return torch.cat([t, t.mean(0, keepdim=True).expand(rows - t.shape[0], -1)])


def expected_shapes(model_yaml: dict[str, Any], tokenizer: Any) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the model the written config builds (on the meta device)."""
    from hydra.utils import instantiate

    from trainer.model import build_model

    net_cfg = model_yaml["module"]["net"]
    net = build_model(tokenizer, instantiate(net_cfg["encoder"]), instantiate(net_cfg["lm"]),
                      empty=True)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def write_shards(tensors: dict[str, torch.Tensor], out: Path) -> list[Path]:
    """Safetensors shards of at most ~2 GiB and the Hugging Face style index."""
    from safetensors.torch import save_file

    groups: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k in sorted(tensors):
        nbytes = tensors[k].numel() * tensors[k].element_size()
        if groups[-1] and size + nbytes > SHARD_BYTES:
            groups.append({})
            size = 0
        groups[-1][k] = tensors[k]
        size += nbytes
    files, weight_map = [], {}
    for i, g in enumerate(groups):
        f = out / f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        save_file(g, str(f), metadata={"format": "pt"})
        files.append(f)
        weight_map.update(dict.fromkeys(g, f.name))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    return files


def convert(checkpoint: str | Path, out: str | Path, dtype: torch.dtype | None = None,
            log: Callable[[str], None] = print) -> Path:
    """Convert ``checkpoint`` into ``out``; returns the written model config's path."""
    import yaml

    from trainer.tokenizer import QwenAudioTokenizer

    folder, out = Path(checkpoint), Path(out)
    c = release_config(folder)
    out.mkdir(parents=True, exist_ok=True)
    tiktoken = folder / "qwen.tiktoken"
    tok_path = None
    if tiktoken.is_file():
        shutil.copyfile(tiktoken, out / "qwen.tiktoken")
        tok_path = str((out / "qwen.tiktoken").resolve())
    cfg = model_config(c, tok_path)
    tok = QwenAudioTokenizer.from_tiktoken(tok_path)
    if tok.audio_start_id != c["audio"].get("audio_start_id", tok.audio_start_id):
        raise ValueError(
            f"{folder}: the release's audio_start_id {c['audio']['audio_start_id']} is not "
            f"the tokenizer's {tok.audio_start_id}: not the Qwen-Audio vocabulary")
    shapes = expected_shapes(cfg, tok)
    tensors: dict[str, torch.Tensor] = {}
    for name, t in release_tensors(folder):
        for key, x in rename(name, t, c["hidden_size"]):
            if key in ("lm.model.embed_tokens.weight", "lm.lm_head.weight"):
                x = fit_rows(x, shapes[key][0])
            tensors[key] = x.to(dtype) if dtype is not None else x
    missing, extra = sorted(set(shapes) - set(tensors)), sorted(set(tensors) - set(shapes))
    wrong = [f"{k} {tuple(tensors[k].shape)} != {shapes[k]}" for k in sorted(set(shapes) &
             set(tensors)) if tuple(tensors[k].shape) != shapes[k]]
    if missing or extra or wrong:
        raise ValueError(f"{folder}: converted weights do not fit the model: missing "
                         f"{missing[:5]}, unexpected {extra[:5]}, wrong shapes {wrong[:5]}")
    files = write_shards(tensors, out)
    conf = out / "conf" / "model" / f"{CONFIG_NAME}.yaml"
    conf.parent.mkdir(parents=True, exist_ok=True)
    head = (f"# Written by `python -m trainer.convert_qwen_audio` from {folder.resolve()}:\n"
            f"# the released Qwen-Audio's sizes. Use: python trainer/fit.py --config-dir "
            f"{(out / 'conf').resolve()} model={CONFIG_NAME} init_from={out.resolve()}\n")
    conf.write_text(head + yaml.safe_dump(cfg, sort_keys=False))
    log(f"wrote {len(tensors)} tensors in {len(files)} file(s) and {conf}")
    return conf


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--checkpoint <folder> --out <dir> [--dtype float32|bfloat16]``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="local Qwen-Audio folder")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                    help="cast the weights (default: as stored)")
    args = ap.parse_args(argv)
    convert(args.checkpoint, args.out, getattr(torch, args.dtype) if args.dtype else None)


if __name__ == "__main__":
    main()
