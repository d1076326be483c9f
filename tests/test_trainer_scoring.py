"""Per-task scorers, each checked against values worked out by hand from the release's rules
(``eval_audio/evaluate_*.py`` of QwenLM/Qwen-Audio); the working is in the comments."""

from __future__ import annotations

import math
import random

import pytest

from pipeline.tags import asr_prompt, s2tt_prompt, srwt_prompt
from trainer.scoring import (
    _binary_ap,
    accuracy,
    accuracy_normalized,
    average_shift,
    bleu,
    bleu_tokenizer,
    match_words,
    note_fields,
    release_text,
    score_task,
    srwt_shift,
    wer,
)


# ---------------------------------------------------------------- ASR (evaluate_asr.py)
def test_release_text_handling() -> None:
    # special tokens -> spaces, spaces collapsed, no space before !,.?;: , lstrip
    assert release_text("<|en|>hello <|endoftext|>world , ok .", "en") == "hello world, ok."
    assert release_text("面 条<|0.50|>机", "zh") == "面条机"  # Chinese: no spaces at all


def test_wer_is_corpus_level_words_lower_cased_punctuation_kept() -> None:
    # ref -> mister quilter is the apostle.  (5 units)
    # hyp "quilter , is" -> "quilter, is" -> mister quilter, is apostle.  (4 units)
    # quilter -> quilter, (substitution), the (deletion): 2 edits / 5
    assert wer(["Mister Quilter is the apostle."], ["mister quilter , is apostle ."],
               ["en"]) == pytest.approx(0.4)
    # no Whisper normalizer in the release: "Mr." is not "mister"
    assert wer(["Mr. Quilter"], ["mister quilter"], ["en"]) == pytest.approx(0.5)
    # Chinese per character: 面条机 vs 面条 -> 1 deletion / 3
    assert wer(["面条机"], ["面 条"], ["zh"]) == pytest.approx(1 / 3)
    # summed over utterances: (1 + 0) edits / (2 + 4) units, not the mean of 0.5 and 0
    assert wer(["a b", "d e f g"], ["a c", "d e f g"], ["en", "en"]) == pytest.approx(1 / 6)


def test_asr_task_reads_the_language_from_the_prompt() -> None:
    rows = [{"key": "1", "reference": "面条机", "prediction": "面条", "prompt": asr_prompt("zh")},
            {"key": "2", "reference": "a b", "prediction": "a b", "prompt": asr_prompt("en")}]
    # all: 1 edit / (3 chars + 2 words); each corpus apart as the release reports them
    assert score_task("asr", rows) == {"wer": pytest.approx(0.2), "wer_en": 0.0,
                                       "wer_zh": pytest.approx(1 / 3)}


# ---------------------------------------------------------------- S2TT (evaluate_st.py)
def test_bleu_tokenizer_per_target_language() -> None:
    assert [bleu_tokenizer(lang) for lang in ("ja", "zh", "en", "de")] == [
        "ja-mecab", "zh", "13a", "13a"]


def test_s2tt_bleu_per_pair_with_the_release_tokenizers() -> None:
    # BLEU = BP * (p1 p2 p3 p4)^(1/4); equal lengths -> BP = 1; sacrebleu's default "exp"
    # smoothing turns a zero n-gram count into 1 / (2 * total) for the first such order.
    # ja-mecab: 今日 は 良い 天気 です 。 vs 今日 は 悪い 天気 です 。
    #   p1 5/6, p2 3/5, p3 1/4, p4 0/3 -> 1/6: (15/720)^(1/4) = 37.9918
    # zh (one token per character): 今天天气很好 vs 今天天气不好
    #   p1 5/6, p2 3/5, p3 2/4, p4 1/3: (1/12)^(1/4) = 53.7285
    # 13a: The cat sat on the mat . vs The cat sat on a mat .
    #   p1 6/7, p2 4/6, p3 2/5, p4 1/4: (2/35)^(1/4) = 48.8923
    rows = [
        {"key": "j", "reference": "今日は良い天気です。", "prediction": "今日は悪い天気です。",
         "prompt": s2tt_prompt("en", "ja")},
        {"key": "z", "reference": "今天天气很好", "prediction": "今天天气不好",
         "prompt": s2tt_prompt("en", "zh")},
        {"key": "f", "reference": "The cat sat on the mat.", "prediction": " The cat sat on a mat.",
         "prompt": s2tt_prompt("fr", "en")},
    ]
    assert score_task("s2tt", rows) == {"bleu_en_ja": pytest.approx(37.9918, abs=1e-4),
                                        "bleu_en_zh": pytest.approx(53.7285, abs=1e-4),
                                        "bleu_fr_en": pytest.approx(48.8923, abs=1e-4)}
    # without prompts the script of each reference decides: kana -> ja-mecab, CJK -> zh
    assert bleu([["今日は良い天気です。"]], ["今日は悪い天気です。"]) == pytest.approx(37.9918,
                                                                                  abs=1e-4)
    bare = [{k: v for k, v in r.items() if k != "prompt"} for r in rows]
    assert score_task("s2tt", bare) == {"bleu_13a": pytest.approx(48.8923, abs=1e-4),
                                        "bleu_ja-mecab": pytest.approx(37.9918, abs=1e-4),
                                        "bleu_zh": pytest.approx(53.7285, abs=1e-4)}
    assert score_task("s2tt", bare[:1]) == {"bleu": pytest.approx(37.9918, abs=1e-4)}


def test_caption_bleu_multi_reference() -> None:
    assert bleu([["a dog barks at the cat"]], ["a dog barks at the cat"]) == pytest.approx(100)
    assert bleu([["a dog barks"]], ["rain"]) == 0.0
    caps = [{"key": "k", "reference": r, "prediction": "a dog barks loudly now"}
            for r in ("rain falls", "a dog barks loudly now")]
    assert score_task("aac", caps) == {"bleu4": pytest.approx(100)}


# ---------------------------------------------------------------- label tasks and AQA
def test_label_accuracy_is_exact_match_with_a_normalized_column() -> None:
    refs, hyps = ["bus", "Park", "yes"], [" bus\n", "park", "Yes."]
    assert accuracy(refs, hyps) == pytest.approx(1 / 3)  # only "bus" (predictions stripped)
    assert accuracy_normalized(refs, hyps) == 1.0
    rows = [{"key": str(i), "reference": r, "prediction": h}
            for i, (r, h) in enumerate(zip(refs, hyps, strict=True))]
    assert score_task("asc", rows) == {"accuracy": pytest.approx(1 / 3),
                                       "accuracy_normalized": 1.0}


def test_aqa_adds_the_yes_no_accuracy() -> None:
    rows = [{"key": str(i), "reference": r, "prediction": h}
            for i, (r, h) in enumerate([("yes", "yes"), ("no", "No"), ("a dog", "a dog")])]
    # exact: 2/3; yes/no questions only: yes ok, "No" != "no" -> 1/2
    assert score_task("aqa", rows) == {"accuracy": pytest.approx(2 / 3),
                                       "accuracy_normalized": 1.0, "accuracy_yes_no": 0.5}


# ---------------------------------------------------------------- MNA
def _note(pitch: int, velocity: int, instrument: str, sonic: str) -> str:
    return (f"<|pitch|><|midi_pitch_{pitch}|><|velocity|><|midi_velocity_{velocity}|>"
            f"<|instrument|>{instrument}<|sonic|>{sonic}")


def test_note_analysis_as_evaluate_note_analysis() -> None:
    refs = [_note(60, 100, "keyboard", "bright, percussive"), _note(62, 50, "guitar", "dark"),
            _note(64, 127, "flute", "none")]
    hyps = [_note(60, 75, "keyboard", "bright"), _note(74, 50, "guitar", "bright"), "flute"]
    # row 3 has no tags: pitch 128, velocity 128, instrument "", no sonic label
    # pitches seen {60, 62, 64, 74, 128} -> columns 0..4; chroma compares columns mod 12:
    # 60/60 -> 0/0 yes; 62/74 -> 1/3 no (an octave apart, yet no: the release's way); 64/128 no
    # sonic labels seen: bright, dark, percussive ("none" is not one)
    #   bright: truth 1 0 0, said 1 1 0 -> recall 1 * precision 1/2 = 0.5
    #   dark: truth 0 1 0, never said -> positives / rows = 1/3; percussive likewise 1/3
    #   macro: (1/2 + 1/3 + 1/3) / 3 = 7/18
    assert note_fields(refs, hyps) == {
        "pitch_acc": pytest.approx(1 / 3), "pitch_chroma_acc": pytest.approx(1 / 3),
        "velocity_acc": pytest.approx(1 / 3), "instrument_acc": pytest.approx(2 / 3),
        "sonic_map": pytest.approx(7 / 18)}


def test_binary_average_precision_equals_scikit_learns() -> None:
    from sklearn.metrics import average_precision_score

    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 8)
        truth = [rng.randint(0, 1) for _ in range(n)]
        pred = [rng.randint(0, 1) for _ in range(n)]
        if sum(truth):  # scikit-learn warns and gives 0 with no positive, as _binary_ap
            assert _binary_ap(truth, pred) == pytest.approx(average_precision_score(truth, pred))
    assert _binary_ap([0, 0], [1, 0]) == 0.0


# ---------------------------------------------------------------- SRWT (evaluate_srwt.py)
def test_words_are_paired_as_the_edit_distance_package_pairs_them() -> None:
    assert match_words(["a", "b", "c"], ["b", "c"]) == [(1, 0), (2, 1)]
    # a b / b a: distance 2 either way; substitution is preferred on ties -> no pair at all
    assert match_words(["a", "b"], ["b", "a"]) == []


def test_average_shift_counts_start_plus_end_per_word() -> None:
    ref = [("a", 0.0, 1.0), ("b", 1.0, 2.0)]
    hyp = [("a", 0.1, 1.0), ("b", 1.0, 2.2)]
    assert average_shift(ref, hyp) == pytest.approx((0.1 + 0.2) / 2)  # not halved per bound
    assert math.isnan(average_shift(ref, [("x", 0.0, 1.0)]))  # no word matches


def test_srwt_aas_over_matched_words_and_wer() -> None:
    refs = ["<|sil|><|0.54|>面<|0.86|>条<|1.17|>机<|1.46|><|sil|><|2.01|>",
            "hello<|0.50|>world<|1.00|>", "a<|0.40|>"]
    hyps = ["面<|0.90|>条<|1.20|>饭<|1.50|><|sil|><|2.01|>", "hello<|0.50|>world<|1.00|>",
            "garbage"]
    # both read after the prompt's <|0.00|>.  1: sil 面 条 机 sil vs 面 条 饭 sil -> sil deleted,
    # 机/饭 substituted; pairs 面 (|0.54-0| + |0.86-0.90| = 0.58), 条 (0.04 + 0.03 = 0.07),
    # sil (0.04 + 0) -> 0.69 s over 3.  2: exact, 0 over 2.  3: no time token after
    # "garbage", so no word: left out.  AAS = 0.69 / 5 = 138 ms, coverage 2/3.
    # WER: 面条机/面条饭 1 of 3 chars; hello world 0 of 2; a/garbage 1 of 1 -> 2/6
    out = srwt_shift(refs, hyps, ["zh", "en", "en"])
    assert out == {"aas_ms": pytest.approx(138.0), "coverage": pytest.approx(2 / 3),
                   "wer": pytest.approx(1 / 3)}
    rows = [{"key": str(i), "reference": r, "prediction": h, "prompt": srwt_prompt(lang)}
            for i, (r, h, lang) in enumerate(zip(refs, hyps, ["zh", "en", "en"], strict=True))]
    assert score_task("srwt", rows) == out
