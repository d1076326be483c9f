"""The released Qwen-Audio checkpoint -> this project's model (trainer/convert_qwen_audio.py).

A tiny checkpoint in the release's key names and shapes is written here; the reference
forward passes below are written from the release's equations (``modeling_qwen.py``:
RMSNorm, fused q/k/v with bias, rotary on the two halves of each head, causal softmax
attention, ``c_proj(w1(x) * silu(w2(x)))``; ``audio.py``: Whisper blocks, 2x average
pooling, ``ln_post``, ``proj``, begin/end vectors) and must agree with the converted model.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from safetensors.torch import load_file, save_file

from trainer.convert_qwen_audio import convert, main
from trainer.features import HOP, audio_token_count, conv_frames
from trainer.tokenizer import packaged_qwen_vocab

ROOT = Path(__file__).resolve().parents[1]
H, HEADS, LAYERS, MLP, VOCAB, EPS, BASE = 32, 4, 2, 48, 155947, 1e-6, 10000.0
S, S_HEADS, S_LAYERS, N_CTX = 16, 2, 2, 1500
AUDIO = dict(n_mels=80, n_ctx=N_CTX, n_state=S, n_head=S_HEADS, n_layer=S_LAYERS,
             output_dim=H, avg_pool=True, add_audio_bos_eos_token=True, audio_start_id=155163)


def _release_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, std: float = 0.2) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    def norm(n: int) -> torch.Tensor:
        return 1 + r(n, std=0.1)

    w = {"transformer.wte.weight": r(VOCAB, H), "lm_head.weight": r(VOCAB, H),
         "transformer.ln_f.weight": norm(H)}
    for i in range(LAYERS):
        p = f"transformer.h.{i}."
        w |= {p + "ln_1.weight": norm(H), p + "ln_2.weight": norm(H),
              p + "attn.c_attn.weight": r(3 * H, H), p + "attn.c_attn.bias": r(3 * H),
              p + "attn.c_proj.weight": r(H, H), p + "mlp.w1.weight": r(MLP, H),
              p + "mlp.w2.weight": r(MLP, H), p + "mlp.c_proj.weight": r(H, MLP)}
    w["transformer.h.0.attn.rotary_emb.inv_freq"] = torch.ones(H // HEADS // 2)  # a buffer
    a = "transformer.audio."
    pos = torch.arange(N_CTX)[:, None] * torch.exp(
        -math.log(10000) / (S // 2 - 1) * torch.arange(S // 2))[None]
    w |= {a + "conv1.weight": r(S, 80, 3), a + "conv1.bias": r(S), a + "conv2.weight": r(S, S, 3),
          a + "conv2.bias": r(S), a + "positional_embedding": torch.cat([pos.sin(), pos.cos()], 1),
          a + "ln_post.weight": norm(S), a + "ln_post.bias": r(S), a + "proj.weight": r(H, S),
          a + "proj.bias": r(H), a + "audio_bos_eos_token.weight": r(2, H)}
    for j in range(S_LAYERS):
        p = f"{a}blocks.{j}."
        w |= {p + "attn.query.weight": r(S, S), p + "attn.query.bias": r(S),
              p + "attn.key.weight": r(S, S), p + "attn.value.weight": r(S, S),
              p + "attn.value.bias": r(S), p + "attn.out.weight": r(S, S),
              p + "attn.out.bias": r(S), p + "attn_ln.weight": norm(S), p + "attn_ln.bias": r(S),
              p + "mlp.0.weight": r(4 * S, S), p + "mlp.0.bias": r(4 * S),
              p + "mlp.2.weight": r(S, 4 * S), p + "mlp.2.bias": r(S),
              p + "mlp_ln.weight": norm(S), p + "mlp_ln.bias": r(S)}
    return w


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A tiny Qwen-Audio folder: config.json, two safetensors shards + index, qwen.tiktoken."""
    folder = tmp_path_factory.mktemp("Qwen-Audio")
    config = {"architectures": ["QWenLMHeadModel"], "model_type": "qwen", "hidden_size": H,
              "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "kv_channels": H // HEADS,
              "intermediate_size": 2 * MLP, "layer_norm_epsilon": EPS, "rotary_emb_base": BASE,
              "rotary_pct": 1.0, "no_bias": True, "vocab_size": VOCAB, "seq_length": 2048,
              "max_position_embeddings": 8192, "tie_word_embeddings": False, "audio": AUDIO}
    (folder / "config.json").write_text(json.dumps(config))
    weights = _release_weights()
    names = sorted(weights)
    halves = [names[: len(names) // 2], names[len(names) // 2 :]]
    index = {}
    for i, part in enumerate(halves):
        f = f"model-0000{i + 1}-of-00002.safetensors"
        save_file({k: weights[k] for k in part}, str(folder / f))
        index |= dict.fromkeys(part, f)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": index}))
    shutil.copyfile(packaged_qwen_vocab(), folder / "qwen.tiktoken")
    return folder, weights


@pytest.fixture(scope="module")
def converted(release: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory):
    folder, _ = release
    out = tmp_path_factory.mktemp("converted")
    main(["--checkpoint", str(folder), "--out", str(out)])
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            f"hydra.searchpath=[file://{out / 'conf'}]", "model=qwen_audio_release"])
    tok = instantiate(cfg.model.tokenizer)()
    net = instantiate(cfg.model.module.net)(tokenizer=tok)
    state = {}
    for f in sorted(out.glob("*.safetensors")):
        state |= load_file(f)
    net.load_state_dict(state, strict=True)
    return out, cfg, tok, net.eval(), state


def test_converted_weights_are_exactly_the_model_state(release, converted) -> None:
    _, w = release
    out, cfg, tok, net, state = converted
    assert set(state) == set(net.state_dict())
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(state)
    lm = cfg.model.module.net.lm
    assert (lm.rope_theta, lm.rms_norm_eps, lm.intermediate_size) == (BASE, EPS, MLP)
    assert cfg.model.tokenizer.path == str((out / "qwen.tiktoken").resolve())
    attn = net.lm.model.layers[1].self_attn
    c_attn = w["transformer.h.1.attn.c_attn.weight"]
    assert torch.equal(attn.q_proj.weight, c_attn[:H]) and torch.equal(attn.v_proj.weight,
                                                                        c_attn[2 * H:])
    assert torch.equal(attn.k_proj.bias, w["transformer.h.1.attn.c_attn.bias"][H : 2 * H])
    mlp = net.lm.model.layers[0].mlp
    assert torch.equal(mlp.gate_proj.weight, w["transformer.h.0.mlp.w2.weight"])  # silu side
    assert torch.equal(mlp.up_proj.weight, w["transformer.h.0.mlp.w1.weight"])
    rows = net.lm.model.embed_tokens.weight.shape[0]
    assert rows == -(-tok.vocab_size // 64) * 64 == 155200
    assert torch.equal(net.lm.lm_head.weight, w["lm_head.weight"][:rows])
    assert torch.equal(net.projector.bos_eos, w["transformer.audio.audio_bos_eos_token.weight"])
    assert torch.equal(net.encoder.whisper.layer_norm.bias, w["transformer.audio.ln_post.bias"])


def _rms(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * weight


def _rotary(t: torch.Tensor) -> torch.Tensor:
    """(B, T, heads, d): angles pos * base^(-2i/d) for both halves; rotate_half = (-x2, x1)."""
    d = t.shape[-1]
    inv = 1.0 / BASE ** (torch.arange(0, d, 2, dtype=torch.float32) / d)
    freqs = torch.outer(torch.arange(t.shape[1], dtype=torch.float32), inv)
    emb = torch.cat([freqs, freqs], -1)[None, :, None, :]
    t1, t2 = t[..., : d // 2], t[..., d // 2 :]
    return t * emb.cos() + torch.cat([-t2, t1], -1) * emb.sin()


def qwen_v1_logits(w: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    """The release's LM forward (fp32, no cache), from modeling_qwen.py's equations."""
    x = w["transformer.wte.weight"][ids]
    b, t, d = *ids.shape, H // HEADS
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    for i in range(LAYERS):
        p = f"transformer.h.{i}."
        h = _rms(x, w[p + "ln_1.weight"])
        q, k, v = (h @ w[p + "attn.c_attn.weight"].T + w[p + "attn.c_attn.bias"]).split(H, -1)
        q, k, v = (z.view(b, t, HEADS, d) for z in (q, k, v))
        q, k = _rotary(q), _rotary(k)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d)
        probs = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        ctx = torch.einsum("bhqk,bkhd->bqhd", probs, v).reshape(b, t, H)
        x = x + ctx @ w[p + "attn.c_proj.weight"].T
        h = _rms(x, w[p + "ln_2.weight"])
        a1, a2 = h @ w[p + "mlp.w1.weight"].T, h @ w[p + "mlp.w2.weight"].T
        x = x + (a1 * F.silu(a2)) @ w[p + "mlp.c_proj.weight"].T
    return _rms(x, w["transformer.ln_f.weight"]) @ w["lm_head.weight"].T


def test_qwen_v1_blocks_equal_the_converted_qwen2_blocks(release, converted) -> None:
    _, w = release
    *_, net, _ = converted
    ids = torch.randint(0, 155000, (2, 23), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = qwen_v1_logits(w, ids)
        got = net.lm(input_ids=ids, use_cache=False).logits
    rows = got.shape[-1]
    assert expected.abs().max() > 1.0  # not a trivially small output
    torch.testing.assert_close(got, expected[..., :rows], rtol=0, atol=1e-5)


def release_audio_span(w: dict[str, torch.Tensor], mel: torch.Tensor) -> torch.Tensor:
    """audio.py: the embeddings of one clip's <audio> ... </audio> span (one clip, no padding)."""
    a = "transformer.audio."
    x = F.gelu(F.conv1d(mel, w[a + "conv1.weight"], w[a + "conv1.bias"], padding=1))
    x = F.gelu(F.conv1d(x, w[a + "conv2.weight"], w[a + "conv2.bias"], stride=2, padding=1))
    x = x.permute(0, 2, 1) + w[a + "positional_embedding"][: x.shape[-1]]
    d = S // S_HEADS
    for j in range(S_LAYERS):
        p = f"{a}blocks.{j}."
        h = F.layer_norm(x, (S,), w[p + "attn_ln.weight"], w[p + "attn_ln.bias"])
        q = (h @ w[p + "attn.query.weight"].T + w[p + "attn.query.bias"]) * d ** -0.25
        k = (h @ w[p + "attn.key.weight"].T) * d ** -0.25
        v = h @ w[p + "attn.value.weight"].T + w[p + "attn.value.bias"]
        q, k, v = (z.view(1, -1, S_HEADS, d) for z in (q, k, v))
        probs = torch.einsum("bqhd,bkhd->bhqk", q, k).softmax(-1)
        ctx = torch.einsum("bhqk,bkhd->bqhd", probs, v).reshape(1, -1, S)
        x = x + ctx @ w[p + "attn.out.weight"].T + w[p + "attn.out.bias"]
        h = F.layer_norm(x, (S,), w[p + "mlp_ln.weight"], w[p + "mlp_ln.bias"])
        x = x + F.gelu(h @ w[p + "mlp.0.weight"].T + w[p + "mlp.0.bias"]) @ w[
            p + "mlp.2.weight"].T + w[p + "mlp.2.bias"]
    x = F.avg_pool1d(x.permute(0, 2, 1), 2, 2).permute(0, 2, 1)  # pool first ...
    x = F.layer_norm(x, (S,), w[a + "ln_post.weight"], w[a + "ln_post.bias"])  # ... then norm
    x = x @ w[a + "proj.weight"].T + w[a + "proj.bias"]
    bos, eos = w[a + "audio_bos_eos_token.weight"]
    return torch.cat([bos[None], x[0], eos[None]])


def test_audio_span_equals_the_release(release, converted) -> None:
    _, w = release
    _, _, tok, net, _ = converted
    samples = 16000 + 7 * HOP  # 1.07 s: 107 mel frames, odd
    mel = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 80, samples // HOP))
                           .astype(np.float32))
    n = audio_token_count(samples)
    assert n == conv_frames(samples // HOP) // 2 == 27
    ids = torch.tensor([[tok.audio_start_id, *[tok.audio_pad_id] * n, tok.audio_end_id,
                         *tok.encode("<|startoftranscript|>")]])
    with torch.no_grad():
        expected = release_audio_span(w, mel)
        got = net.embed(ids, mel, torch.tensor([mel.shape[-1]]))[0, : n + 2]
    assert expected.shape == (n + 2, H)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_bad_checkpoints_say_what_is_wrong(release, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"config\.json not found"):
        convert(tmp_path, tmp_path / "out")
    folder, _ = release
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    c = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps(c | {"rotary_pct": 0.5, "no_bias": False}))
    with pytest.raises(ValueError, match=r"rotary_pct 0\.5.*no_bias is false"):
        convert(bad, tmp_path / "out")
    (bad / "config.json").write_text(json.dumps(c))
    extra = {"transformer.audio.mystery.weight": torch.zeros(2)}
    save_file(extra, str(bad / "model-00003-of-00002.safetensors"))
    with pytest.raises(ValueError, match=r"transformer\.audio\.mystery\.weight"):
        convert(bad, tmp_path / "out")


def test_init_from_reads_the_converted_folder(converted) -> None:
    """The interface of ``init_from=<out>`` (trainer.checkpoint): every weight filled."""
    from trainer.checkpoint import load_init_from

    out, cfg, tok, _, state = converted
    fresh = instantiate(cfg.model.module.net)(tokenizer=tok)
    load_init_from(fresh, out)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, state[k]), k
