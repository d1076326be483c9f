"""Label masking, audio splicing and an overfit check of the tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from trainer_shards import write_mixture
from transformers import Qwen2Config, WhisperConfig

from trainer.features import IGNORE, Collator, audio_token_count, encode_pair
from trainer.model import (
    adamw,
    build_model,
    lm_attention_for,
    masked_lm_loss,
    parallelize,
    param_groups,
    scored_index,
)
from trainer.reader import pairs_of, read_mixture
from trainer.tokenizer import QwenAudioTokenizer

ENC = dict(num_mel_bins=80, d_model=32, encoder_layers=2, encoder_attention_heads=4,
           encoder_ffn_dim=64, max_source_positions=1500, dropout=0.0)
LM = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
          num_key_value_heads=2, tie_word_embeddings=True)


@pytest.fixture(scope="module")
def tok() -> QwenAudioTokenizer:
    return QwenAudioTokenizer.from_texts(["MISTER QUILTER a dog barks rain falls"] * 3, 100)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> list:
    mix = read_mixture(write_mixture(tmp_path_factory.mktemp("shards")))
    return [p for s in mix["shards"]["train"] for p in pairs_of(s)]


def _net(tok: QwenAudioTokenizer, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(tok, WhisperConfig(**ENC), Qwen2Config(**LM))


def test_labels_cover_only_target_and_end_of_text(tok: QwenAudioTokenizer) -> None:
    prompt, target = "<|startoftranscript|><|en|><|transcribe|>", "MISTER QUILTER"
    ids, labels = encode_pair(tok, prompt, target, n_audio=5)
    n_head = 2 + 5 + len(tok.encode(prompt))
    assert ids[0] == tok.audio_start_id and ids[6] == tok.audio_end_id
    assert ids[1:6] == [tok.audio_pad_id] * 5
    assert labels[:n_head] == [IGNORE] * n_head
    assert labels[n_head:] == [*tok.encode(target), tok.eot_id] == ids[n_head:]


def test_batch_padding_is_never_scored(tok: QwenAudioTokenizer, pairs: list) -> None:
    batch = Collator(tok)(pairs[:4])
    labels, mask = batch["labels"], batch["attention_mask"]
    assert bool((labels[mask == 0] == IGNORE).all())
    scored = int((labels != IGNORE).sum())
    expected = sum(len(tok.encode(p.target)) + 1 for p in pairs[:4])
    assert scored == expected
    hidden = torch.randn(*labels.shape, 8)
    head = torch.nn.Linear(8, tok.vocab_size)
    losses, rows = masked_lm_loss(hidden, labels, head)
    assert losses.shape == (expected,)
    assert rows.tolist() == sorted(rows.tolist())


@pytest.mark.parametrize("seconds", [0.001, 0.03, 0.05, 0.33, 1.0, 1.01, 2.345, 7.77, 29.99, 30.0])
def test_audio_token_count_equals_pooled_frames(seconds: float) -> None:
    n = int(seconds * 16000)
    mel = max(n, 640) // 160
    # Whisper conv2 (stride 2, pad 1) then AvgPool1d(2): the released arithmetic
    conv = torch.nn.Conv1d(1, 1, 3, stride=2, padding=1)(torch.zeros(1, 1, mel)).shape[-1]
    pooled = torch.nn.AvgPool1d(2, 2)(torch.zeros(1, 1, conv)).shape[-1]
    assert audio_token_count(n) == pooled >= 1
    assert abs(audio_token_count(n) - 25 * seconds) <= 1 or seconds < 0.1


def _clips(lengths: list[int]) -> tuple[list[np.ndarray], torch.Tensor, torch.Tensor]:
    collate = Collator(QwenAudioTokenizer.from_texts(["a"], 1))
    feats = [collate.mel(np.random.default_rng(i).standard_normal(n).astype(np.float32) * 0.1)
             for i, n in enumerate(lengths)]
    x = torch.zeros(len(feats), 80, max(f.shape[1] for f in feats))
    for i, f in enumerate(feats):
        x[i, :, : f.shape[1]] = torch.from_numpy(f)
    return feats, x, torch.tensor([f.shape[1] for f in feats])


def test_splice_places_each_clip_once_and_ignores_batch_padding(tok: QwenAudioTokenizer) -> None:
    net = _net(tok).eval()
    lengths = [800, 16000, 16161, 37123]  # 0.05 s .. 2.3 s: odd and even frame counts
    feats, x, lens = _clips(lengths)
    counts = [audio_token_count(n) for n in lengths]
    # row 0 holds clips 0 and 1, row 1 clip 2, row 2 clip 3, row 3 is text only
    rows = [[0, 1], [2], [3], []]
    width = max(sum(counts[c] + 3 for c in r) for r in rows) + 1
    ids = torch.full((len(rows), width), tok.eot_id)
    where = {}
    for i, r in enumerate(rows):
        t = 0
        for c in r:
            ids[i, t], ids[i, t + 1 + counts[c]], ids[i, t + 2 + counts[c]] = (
                tok.audio_start_id, tok.audio_end_id, 7)
            ids[i, t + 1 : t + 1 + counts[c]] = tok.audio_pad_id
            where[c] = (i, t + 1)
            t += counts[c] + 3
    with torch.no_grad():
        spliced = net.embed(ids, x, lens)
        text = net.lm.get_input_embeddings()(ids)
        bos, eos = net.projector.bos_eos
        for c, f in enumerate(feats):  # alone, unpadded: the same audio embeddings
            alone = net.projector(net.encoder(torch.from_numpy(f)[None], lens[c : c + 1]))
            assert alone.shape[1] == counts[c]
            i, t = where[c]
            torch.testing.assert_close(spliced[i, t : t + counts[c]], alone[0], atol=1e-5, rtol=0)
            torch.testing.assert_close(spliced[i, t - 1], bos)  # <audio>: learned begin vector
            torch.testing.assert_close(spliced[i, t + counts[c]], eos)  # </audio>: end vector
        other = (ids != tok.audio_pad_id) & (ids != tok.audio_start_id) & (ids != tok.audio_end_id)
        assert torch.equal(spliced[other], text[other])
        # a text-only batch (no clips at all) is the LM's own embeddings
        none = net.embed(ids[3:], x[:0], lens[:0])
        assert torch.equal(none, text[3:])
        bad = ids.clone()
        bad[0, 1] = 7  # one pad fewer than the clips' pooled frames
        with pytest.raises(ValueError, match="audio pads in the batch"):
            net.embed(bad, x, lens)


def test_encoder_pools_then_norms_like_the_release(tok: QwenAudioTokenizer) -> None:
    """audio.py: layers -> AvgPool1d(2) -> ln_post -> proj (not norm before pooling)."""
    net = _net(tok).eval()
    _, x, lens = _clips([16000])
    w = net.encoder.whisper
    with torch.no_grad():
        h = torch.nn.functional.gelu(w.conv2(torch.nn.functional.gelu(w.conv1(x))))
        h = h.permute(0, 2, 1) + w.embed_positions.weight[: h.shape[-1]]
        for layer in w.layers:
            h = layer(h, None, layer_head_mask=None)[0]
        pooled = torch.nn.functional.avg_pool1d(h.transpose(1, 2), 2, 2).transpose(1, 2)
        expected = net.projector(w.layer_norm(pooled))
        torch.testing.assert_close(net.projector(net.encoder(x, lens)), expected)
        assert not torch.allclose(expected, net.projector(
            torch.nn.functional.avg_pool1d(w.layer_norm(h).transpose(1, 2), 2, 2).transpose(1, 2)))


def test_tiny_model_memorizes_eight_samples(tok: QwenAudioTokenizer, pairs: list) -> None:
    torch.set_num_threads(1)
    net = _net(tok)
    batch = Collator(tok)(pairs[:8])
    assert len({p.task for p in pairs[:8]}) >= 2
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    first = None
    for _ in range(120):
        losses, _ = net(batch)
        loss = losses.mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 4.0
    assert loss.item() < 0.05


def test_freeze_and_bad_parts(tok: QwenAudioTokenizer) -> None:
    net = build_model(tok, WhisperConfig(**ENC), Qwen2Config(**LM), freeze=["lm"])
    assert not any(p.requires_grad for p in net.lm.parameters())
    assert net.encoder.whisper.conv1.weight.requires_grad and net.projector.weight.requires_grad
    with pytest.raises(ValueError, match="cannot freeze"):
        build_model(tok, WhisperConfig(**ENC), Qwen2Config(**LM), freeze=["decoder"])
    with pytest.raises(FileNotFoundError, match="local folder"):
        build_model(tok, None, Qwen2Config(**LM), encoder_path=str(Path("/nonexistent/w")))


def test_whisper_style_30s_padding_changes_only_the_feature_width(
    tok: QwenAudioTokenizer, pairs: list
) -> None:
    cut = Collator(tok)(pairs[:4])
    padded = Collator(tok, pad_to_30s=True)(pairs[:4])
    assert padded["input_features"].shape[-1] == 3000 > cut["input_features"].shape[-1]
    for key in ("input_ids", "labels", "attention_mask", "feature_lens"):
        assert torch.equal(padded[key], cut[key]), key
    for i, n in enumerate(cut["feature_lens"].tolist()):
        # the clip's own frames are equal, but the last, whose STFT window reaches past the
        # clip (reflection of the clip vs zeros of the padding)
        a, b = padded["input_features"][i, :, : n - 1], cut["input_features"][i, :, : n - 1]
        assert torch.allclose(a, b, atol=1e-5)


def synthetic_batch(tok: QwenAudioTokenizer, seed: int, rows: int = 3) -> dict:
    """A training batch without shards: random clips, one task entry per row."""
    rng = np.random.default_rng(seed)
    lengths = [int(n) for n in rng.integers(1600, 24000, rows)]
    _, x, lens = _clips(lengths)
    seqs = [encode_pair(tok, "<|startoftranscript|><|en|><|transcribe|>",
                        ["MISTER QUILTER", "a dog barks", "rain falls"][i % 3],
                        audio_token_count(n)) for i, n in enumerate(lengths)]
    width = max(len(s) for s, _ in seqs)
    ids = torch.full((rows, width), tok.eot_id)
    labels = torch.full((rows, width), IGNORE)
    mask = torch.zeros((rows, width), dtype=torch.long)
    for i, (s, lab) in enumerate(seqs):
        ids[i, : len(s)], labels[i, : len(s)], mask[i, : len(s)] = (
            torch.tensor(s), torch.tensor(lab), 1)
    return {"input_features": x, "feature_lens": lens, "input_ids": ids, "labels": labels,
            "attention_mask": mask, "task_ids": torch.arange(rows) % 3,
            "durations": torch.tensor(lengths, dtype=torch.float32) / 16000,
            "weight": torch.ones(rows)}


def test_loss_gathers_scored_positions_like_a_boolean_mask(tok: QwenAudioTokenizer) -> None:
    batch = synthetic_batch(tok, 0)
    labels = batch["labels"]
    hidden = torch.randn(*labels.shape, 8)
    head = torch.nn.Linear(8, tok.vocab_size)
    keep = labels[:, 1:] != IGNORE
    expected = torch.nn.functional.cross_entropy(
        head(hidden[:, :-1][keep]), labels[:, 1:][keep], reduction="none")
    scored = scored_index(labels)
    assert scored.tolist() == keep.flatten().nonzero()[:, 0].tolist()
    for given in (scored, None):
        losses, rows = masked_lm_loss(hidden, labels, head, given)
        torch.testing.assert_close(losses, expected, rtol=0, atol=0)
        assert rows.tolist() == keep.nonzero()[:, 0].tolist()


def test_activation_checkpointing_gives_the_same_loss_and_gradients(
    tok: QwenAudioTokenizer,
) -> None:
    """Issue 9.1: the LM runs without a KV cache, so recomputed layers see the same input."""
    batch = synthetic_batch(tok, 1)
    results = []
    for ac in (False, True):
        net = parallelize(_net(tok).train(), None, activation_checkpointing=ac)
        losses, _ = net(batch)
        loss = losses.mean()
        loss.backward()
        grads = {k.replace("._checkpoint_wrapped_module", ""): p.grad
                 for k, p in net.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads))
    (a, ga), (b, gb) = results
    assert "_checkpoint_wrapped_module" in str(dict(net.named_modules()).keys())
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert ga.keys() == gb.keys() and len(ga) > 20
    for k in ga:
        torch.testing.assert_close(ga[k], gb[k], rtol=0, atol=1e-6, msg=k)


def test_param_groups_skip_decay_on_norms_biases_embeddings(tok: QwenAudioTokenizer) -> None:
    net = _net(tok)
    names = {id(p): n for n, p in net.named_parameters()}
    decay, flat = param_groups(net, 0.1)
    assert decay["weight_decay"] == 0.1 and flat["weight_decay"] == 0.0
    flat_names = {names[id(p)] for p in flat["params"]}
    decay_names = {names[id(p)] for p in decay["params"]}
    assert flat_names.isdisjoint(decay_names)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert flat_names | decay_names == trainable  # each once (the tied head is the embedding)
    assert "encoder.whisper.embed_positions.weight" not in trainable  # fixed sinusoids
    for n in ("lm.model.embed_tokens.weight", "projector.bos_eos", "projector.bias",
              "lm.model.norm.weight",
              "lm.model.layers.0.input_layernorm.weight", "lm.model.layers.0.self_attn.q_proj.bias",
              "encoder.whisper.layers.1.fc1.bias", "encoder.whisper.conv1.bias"):
        assert n in flat_names, n
    for n in ("projector.weight", "lm.model.layers.0.self_attn.q_proj.weight",
              "lm.model.layers.1.mlp.gate_proj.weight", "encoder.whisper.conv2.weight",
              "encoder.whisper.layers.0.self_attn.k_proj.weight"):
        assert n in decay_names, n
    assert "weight_decay" not in param_groups(net)[0]  # the optimizer's own default
    opt = adamw(param_groups(net), lr=1e-3, weight_decay=0.01)
    assert opt.defaults["fused"] is False  # CPU parameters: the fused kernel is CUDA's
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]


def test_lm_attention_is_sdpa_on_cpu_and_eager_gives_the_same_loss(
    tok: QwenAudioTokenizer,
) -> None:
    batch = synthetic_batch(tok, 4)
    net = _net(tok).eval()
    with torch.no_grad():
        auto, _ = net(batch)
        assert net.lm.config._attn_implementation == "sdpa"
        assert lm_attention_for(torch.zeros(1, dtype=torch.bfloat16)) == "sdpa"  # not CUDA
        net.lm_attention = "eager"
        eager, _ = net(batch)
        assert net.lm.model.layers[0].self_attn.config._attn_implementation == "eager"
    torch.testing.assert_close(auto, eager, rtol=1e-5, atol=1e-5)
