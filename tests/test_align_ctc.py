"""The whisperx (wav2vec2 CTC) backend, run on a tiny randomly initialised model.

The weights are random, so the times mean nothing; what is tested is the code path a real
model takes: offline loading from a local directory, vocabulary mapping, CTC forced
alignment, spans per word (per character for Chinese), and the errors.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.align import AlignConfig, AlignConfigError, Aligner, AlignmentError, make_aligner
from pipeline.align.ctc import resolve_model

VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"abcdefghijklmnopqrstuvwxyz'", "面", "条", "机"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random wav2vec2 CTC model + processor saved with save_pretrained."""
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    out = tmp_path_factory.mktemp("tiny-wav2vec2")
    (out / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(VOCAB)}))
    tokenizer = Wav2Vec2CTCTokenizer(str(out / "vocab.json"), word_delimiter_token="|")
    processor = Wav2Vec2Processor(Wav2Vec2FeatureExtractor(), tokenizer)
    torch.manual_seed(0)
    cfg = Wav2Vec2Config(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, conv_dim=(32,) * 7, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, pad_token_id=0,
    )
    Wav2Vec2ForCTC(cfg).save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _aligner(model: Path, lang: str = "en") -> Aligner:
    cfg = AlignConfig(backends={lang: "whisperx"}, whisperx_models={lang: str(model)})
    return make_aligner(cfg)


def _noise(seconds: float) -> np.ndarray:
    return (np.random.default_rng(1).normal(0, 0.1, int(16000 * seconds))).astype(np.float32)


def test_english_words_come_back_original_and_ordered(tiny_model: Path) -> None:
    aligner = _aligner(tiny_model)
    aligner.check({"en"})
    words = aligner.align(_noise(2.0), "Hello, World! It's 3 o'clock.", "en")
    assert [w.word for w in words] == ["Hello,", "World!", "It's", "3", "o'clock."]
    assert words[0].start >= 0.0 and words[-1].end <= 2.0
    for a, b in itertools.pairwise(words):
        assert a.start < a.end <= b.start < b.end


def test_chinese_aligns_per_character(tiny_model: Path) -> None:
    words = _aligner(tiny_model, "zh").align(_noise(1.5), "面条机。", "zh")
    assert [w.word for w in words] == ["面", "条", "机。"]
    assert all(w.end > w.start for w in words)


def test_model_loaded_once_per_aligner(tiny_model: Path) -> None:
    aligner = _aligner(tiny_model)
    first = aligner.backend("en")
    aligner.align(_noise(1.0), "abc", "en")
    assert aligner.backend("en") is first


def test_char_outside_vocabulary_is_an_alignment_error(tiny_model: Path) -> None:
    with pytest.raises(AlignmentError, match="no character"):
        _aligner(tiny_model, "zh").align(_noise(1.0), "好", "zh")


def test_audio_too_short_for_transcript(tiny_model: Path) -> None:
    with pytest.raises(AlignmentError, match="too short"):
        _aligner(tiny_model).align(_noise(0.2), "a very long transcript for a short clip", "en")


def test_missing_model_fails_check_with_what_to_fetch(tmp_path: Path) -> None:
    cfg = AlignConfig(
        backends={"zh": "whisperx"}, whisperx_models={"zh": "someone/not-cached"},
        hf_cache=str(tmp_path),
    )
    with pytest.raises(AlignConfigError) as err:
        make_aligner(cfg).check({"zh"})
    msg = str(err.value)
    assert "huggingface-cli download someone/not-cached" in msg and str(tmp_path) in msg


def test_model_dir_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AlignConfigError, match=r"no config\.json"):
        resolve_model(str(tmp_path), "en")
