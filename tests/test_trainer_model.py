"""Label masking, audio splicing and an overfit check of the tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from trainer_shards import write_mixture
from transformers import Qwen2Config, WhisperConfig

from trainer.features import IGNORE, Collator, audio_token_count, encode_pair
from trainer.model import build_model, masked_lm_loss
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


def test_splice_places_each_clip_once_and_ignores_batch_padding(tok: QwenAudioTokenizer) -> None:
    net = _net(tok).eval()
    collate = Collator(tok)
    lengths = [800, 16000, 16161, 37123]  # 0.05 s .. 2.3 s: odd and even frame counts
    feats = [collate.mel(np.random.default_rng(i).standard_normal(n).astype(np.float32) * 0.1)
             for i, n in enumerate(lengths)]
    width = max(f.shape[1] for f in feats)
    x = torch.zeros(len(feats), 80, width)
    for i, f in enumerate(feats):
        x[i, :, : f.shape[1]] = torch.from_numpy(f)
    lens = torch.tensor([f.shape[1] for f in feats])
    counts = [audio_token_count(n) for n in lengths]
    ids = torch.full((len(lengths), 2 + max(counts)), tok.eot_id)
    for i, c in enumerate(counts):
        ids[i, 0], ids[i, 1 : 1 + c], ids[i, 1 + c] = tok.audio_start_id, tok.audio_pad_id, 7
    with torch.no_grad():
        spliced = net.embed(ids, x, lens)
        for i, f in enumerate(feats):  # alone, unpadded: the same audio embeddings
            alone = net.projector(net.encoder(torch.from_numpy(f)[None], lens[i : i + 1]))
            assert alone.shape[1] == counts[i]
            torch.testing.assert_close(spliced[i, 1 : 1 + counts[i]], alone[0], atol=1e-5, rtol=0)
        text = net.lm.get_input_embeddings()(ids)
        torch.testing.assert_close(spliced[:, 0], text[:, 0])
        bad = ids.clone()
        bad[0, 1] = 7  # one pad fewer than the clip's pooled frames
        with pytest.raises(ValueError, match="audio pads per row"):
            net.embed(bad, x, lens)


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
