"""The tag format: token list, released prompts, parser and SRWT targets."""

import pytest

from pipeline import tags


def test_token_ids_match_the_release():
    base = 151643 + len(tags.QWEN_SPECIAL_TOKENS)  # Qwen-7B ranks, then Qwen's specials
    ids = {t: base + i for i, t in enumerate(tags.AUDIO_SPECIAL_TOKENS)}
    assert ids["[[[AUDIO:modality]]]"] == 151851
    assert ids["<|startoftranscript|>"] == 151852
    assert ids["<|0.00|>"] == 151871
    assert tags.AUDIO_SPECIAL_TOKENS[-2:] == ("<audio>", "</audio>")
    assert len(tags.TIME_TOKENS) == 3001 and tags.TIME_TOKENS[-1] == "<|30.00|>"
    assert len(set(tags.AUDIO_SPECIAL_TOKENS)) == len(tags.AUDIO_SPECIAL_TOKENS)


# The prompts of the released evaluation scripts (qwen-audio-format.md), verbatim.
RELEASED = {
    ("asr", (("lang", "en"),)):
        "<|startoftranscript|><|en|><|transcribe|><|en|><|notimestamps|><|wo_itn|>",
    ("asr", (("lang", "zh"),)):
        "<|startoftranscript|><|zh|><|transcribe|><|zh|><|notimestamps|><|wo_itn|>",
    ("s2tt", (("src_lang", "fr"), ("tgt_lang", "en"))):
        "<|startoftranscript|><|fr|><|translate|><|en|><|notimestamps|><|itn|>",
    ("srwt", (("lang", "en"),)): "<|startoftranscript|><|en|><|transcribe|><|en|><|timestamps|>",
    ("aac", ()):
        "<|startofanalysis|><|unknown|><|caption|><|en|><|notimestamps|><|caption_clotho|>",
    ("asc", ()): "<|startofanalysis|><|unknown|><|keyword|><|en|><|notimestamps|><|scene|>",
    ("ser", ()):
        "<|startofanalysis|><|en|><|keyword|><|en|><|notimestamps|><|emotion_recognition|>",
    ("vsc", ()):
        "<|startofanalysis|><|en|><|keyword|><|en|><|notimestamps|><|vocal_classification|>",
    ("mna", ()):
        "<|startofanalysis|><|unknown|><|keyword|><|en|><|notimestamps|><|note_analysis|>",
    ("aqa", (("question", "Is it raining?"),)):
        "<|startofanalysis|><|en|><|question|>Is it raining?<|answer|>",
}


@pytest.mark.parametrize("key", list(RELEASED))
def test_prompts_equal_the_released_ones(key):
    task, args = key
    assert tags.build_prompt(task, **dict(args)) == RELEASED[key]


def test_every_prompt_uses_only_released_tokens_and_parses_back():
    for task in tags.TASKS:
        args = {"lang": "en", "src_lang": "de", "tgt_lang": "en", "question": "why?"}
        import inspect

        params = inspect.signature(tags.TASKS[task].build).parameters
        prompt = tags.build_prompt(task, **{k: v for k, v in args.items() if k in params})
        tags.check_tokens(prompt)
        parsed = tags.parse(prompt + "some target")
        assert parsed.target == "some target"
        joined = "".join(parsed.tags)
        assert joined.replace("<|question|><|answer|>", "<|question|>why?<|answer|>") == prompt


def test_unknown_tokens_are_refused():
    with pytest.raises(tags.TagError, match="<\\|startoftranscripts\\|>"):
        tags.check_tokens("<|startoftranscripts|>hello")
    with pytest.raises(tags.TagError, match="analysis"):
        tags.make_entry("asr", "x <|analysis|>", lang="en")
    with pytest.raises(tags.TagError, match="inserted by the trainer"):
        tags.check_tokens("<audio>")
    with pytest.raises(tags.TagError, match="no Qwen-Audio token"):
        tags.asr_prompt("pt")
    with pytest.raises(tags.TagError, match="unknown task"):
        tags.build_prompt("nope")


def test_parser_splits_aqa_and_note_analysis():
    p = tags.parse("<|startofanalysis|><|en|><|question|>What is heard?<|answer|>a dog barking")
    assert p.question == "What is heard?" and p.target == "a dog barking"
    target = "<|pitch|><|midi_pitch_60|><|velocity|><|midi_velocity_100|><|instrument|>keyboard"
    p = tags.parse(tags.mna_prompt() + target)
    assert p.tags[-1] == "<|note_analysis|>" and p.target == target
    with pytest.raises(tags.TagError, match="task tag"):
        tags.parse("<|startoftranscript|><|en|><|en|>")


def test_srwt_target_reproduces_the_released_example():
    words = [("面", 0.54, 0.86), ("条", 0.86, 1.17), ("机", 1.17, 1.46)]
    target = tags.srwt_target(words, duration=2.01, sil_threshold=0.2)
    assert target == "<|0.00|><|sil|><|0.54|>面<|0.86|>条<|1.17|>机<|1.46|><|sil|><|2.01|>"
    back = tags.parse_srwt(target)
    assert [w for w, _, _ in back] == ["<|sil|>", "面", "条", "机", "<|sil|>"]
    assert back[1] == ("面", 0.54, 0.86)


def test_srwt_shares_boundaries_and_keeps_one_more_time_token_than_words():
    words = [("hello", 0.05, 0.50), ("big", 0.56, 0.80), ("world", 1.30, 1.90)]
    target = tags.srwt_target(words, duration=2.0, sil_threshold=0.2)
    # short gap 0.50-0.56 -> shared boundary at 0.53; long gap 0.80-1.30 -> <|sil|>
    assert target == "<|0.05|>hello<|0.53|>big<|0.80|><|sil|><|1.30|>world<|1.90|>"
    n_time = target.count("<|") - target.count("<|sil|>")
    assert n_time == len(tags.parse_srwt(target)) + 1


def test_srwt_rejects_bad_times():
    with pytest.raises(tags.TagError, match="outside the clip"):
        tags.srwt_target([("a", 0.0, 3.0)], duration=2.0)
    with pytest.raises(tags.TagError, match="before the previous word"):
        tags.srwt_target([("a", 0.5, 1.0), ("b", 0.2, 1.5)], duration=2.0)
    with pytest.raises(tags.TagError, match=r"start and end"):
        tags.parse_srwt("hello<|0.50|>")
