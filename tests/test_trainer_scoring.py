"""Per-task scorers: WER, BLEU, accuracy, SRWT shift, note-analysis fields."""

from __future__ import annotations

import pytest

from trainer.scoring import accuracy, bleu, note_fields, score_task, srwt_shift, wer


def test_wer_counts_edits_after_normalization() -> None:
    assert wer(["Mister Quilter is the apostle"], ["mister quilter, is apostle"]) == 0.2
    assert wer(["面条机"], ["面条"]) == pytest.approx(1 / 3)  # characters for Chinese


def test_bleu_perfect_partial_and_empty() -> None:
    assert bleu([["a dog barks at the cat"]], ["a dog barks at the cat"]) == pytest.approx(100)
    partial = bleu([["a dog barks at the cat"]], ["a dog barks at a cat"])
    assert 0 < partial < 100
    assert bleu([["a dog barks"]], ["rain"]) == 0.0
    multi = bleu([["rain on a roof", "a dog barks at the cat"]], ["a dog barks at the cat"])
    assert multi == pytest.approx(100)


def test_accuracy_and_task_dispatch() -> None:
    assert accuracy(["Bus", "park"], ["bus.", "street"]) == 0.5
    rows = [{"key": "k", "reference": "Bus", "prediction": "bus"}]
    assert score_task("asc", rows) == {"accuracy": 1.0}
    caps = [{"key": "k", "reference": r, "prediction": "a dog barks loudly now"}
            for r in ("rain falls", "a dog barks loudly now")]
    assert score_task("aac", caps) == {"bleu4": pytest.approx(100)}


def test_srwt_average_shift() -> None:
    ref = "<|0.00|>HELLO<|0.50|>WORLD<|1.00|>"
    hyp = "<|0.10|>HELLO<|0.50|>WORLD<|0.90|>"
    out = srwt_shift([ref, ref], [hyp, "garbage"])
    assert out["aas_ms"] == pytest.approx(50.0)  # shifts 100, 0, 0, 100 ms
    assert out["coverage"] == 0.5


def test_note_analysis_fields() -> None:
    head = "<|pitch|><|midi_pitch_60|><|velocity|>"
    ref = head + "<|midi_velocity_100|><|instrument|>keyboard<|sonic|>bright, percussive"
    hyp = head + "<|midi_velocity_75|><|instrument|>keyboard<|sonic|>bright"
    out = note_fields([ref], [hyp])
    assert out == {"pitch_acc": 1.0, "velocity_acc": 0.0, "instrument_acc": 1.0,
                   "sonic_f1": pytest.approx(2 / 3)}


def test_bleu_tokenizes_chinese_by_character() -> None:
    # one "word" under 13a tokenization (BLEU 0); sacrebleu's zh tokenizer splits characters
    assert bleu([["今天天气很好"]], ["今天天气很好"]) == pytest.approx(100)
    assert 0 < bleu([["今天天气很好"]], ["今天天气不好"]) < 100


def test_wer_uses_whispers_english_normalizer() -> None:
    # Whisper's normalizer spells out "Mr." and ignores case and punctuation: no errors
    assert wer(["Mr. Quilter is the apostle."], ["mister quilter is the apostle"]) == 0.0
