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
    ("srwt", (("lang", "en"),)):  # evaluate_srwt.py: the prompt ends with <|0.00|>
        "<|startoftranscript|><|en|><|transcribe|><|en|><|timestamps|><|0.00|>",
    ("srwt", (("lang", "zh"),)):
        "<|startoftranscript|><|zh|><|transcribe|><|zh|><|timestamps|><|0.00|>",
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
    # EVALUATION.md's gt "<|0.00|><|sil|><|0.54|>面...": its <|0.00|> ends the prompt
    assert target == "<|sil|><|0.54|>面<|0.86|>条<|1.17|>机<|1.46|><|sil|><|2.01|>"
    assert tags.srwt_prompt("zh").endswith(tags.SRWT_START) and tags.SRWT_START == "<|0.00|>"
    back = tags.parse_srwt(target)
    assert back == [("<|sil|>", 0.0, 0.54), ("面", 0.54, 0.86), ("条", 0.86, 1.17),
                    ("机", 1.17, 1.46), ("<|sil|>", 1.46, 2.01)]
    parsed = tags.parse(tags.srwt_prompt("zh") + target)
    assert parsed.tags[-2:] == ("<|timestamps|>", "<|0.00|>") and parsed.target == target


def test_srwt_shares_boundaries_and_keeps_as_many_time_tokens_as_words():
    words = [("hello", 0.05, 0.50), ("big", 0.56, 0.80), ("world", 1.30, 1.90)]
    target = tags.srwt_target(words, duration=2.0, sil_threshold=0.2)
    # leading 0.05 s pause -> the first word starts at the prompt's 0.00; short gap
    # 0.50-0.56 -> shared boundary at 0.53; long gap 0.80-1.30 -> <|sil|>; 0.10 s at the end
    # is kept by the last word
    assert target == "hello<|0.53|>big<|0.80|><|sil|><|1.30|>world<|1.90|>"
    n_time = target.count("<|") - target.count("<|sil|>")
    assert n_time == len(tags.parse_srwt(target)) == 4
    assert tags.parse_srwt(target)[0] == ("hello", 0.0, 0.53)


def test_srwt_leading_pause_up_to_the_threshold_belongs_to_the_first_word():
    at = tags.srwt_target([("a", 0.20, 0.60)], duration=0.6, sil_threshold=0.2)
    over = tags.srwt_target([("a", 0.21, 0.60)], duration=0.6, sil_threshold=0.2)
    assert at == "a<|0.60|>"
    assert over == "<|sil|><|0.21|>a<|0.60|>"


def test_srwt_rejects_bad_times_and_the_old_leading_time_token():
    with pytest.raises(tags.TagError, match="outside the clip"):
        tags.srwt_target([("a", 0.0, 3.0)], duration=2.0)
    with pytest.raises(tags.TagError, match="before the previous word"):
        tags.srwt_target([("a", 0.5, 1.0), ("b", 0.2, 1.5)], duration=2.0)
    with pytest.raises(tags.TagError, match=r"must end with a time token"):
        tags.parse_srwt("hello")
    with pytest.raises(tags.TagError, match=r"prompt already ends with <\|0.00\|>"):
        tags.parse_srwt("<|0.05|>hello<|0.50|>")
    with pytest.raises(tags.TagError, match="no word between"):
        tags.parse_srwt("hello<|0.50|><|0.60|>")
    with pytest.raises(tags.TagError, match=r"expected <\|0.00\|> after <\|timestamps\|>"):
        tags.parse("<|startoftranscript|><|en|><|transcribe|><|en|><|timestamps|>hi<|0.50|>")


@pytest.mark.parametrize(("text", "lang", "spoken"), [
    ("MISTER QUILTER IS THE APOSTLE", "en", "mister quilter is the apostle"),
    ("The museum is closed today.", "en", "the museum is closed today"),
    ("Il fait beau aujourd\u2019hui.", "fr", "il fait beau aujourd'hui"),
    ('"Don\'t!" she said - a well-known, 50% & more', "en",
     "don't she said a well known 50% & more"),
    ("'Tis the fathers' day", "en", "tis the fathers day"),  # only inner apostrophes stay
    ("博物馆今天关门。", "zh", "博物馆今天关门"),
    ("你好， 世界！ Hello, World", "zh", "你好世界hello world"),
    ("Er kam um 3 Uhr.", "de", "er kam um 3 uhr"),  # digits stay as written
])
def test_spoken_form_is_the_wo_itn_style(text, lang, spoken):
    assert tags.spoken_form(text, lang) == spoken
    assert tags.spoken_form(spoken, lang) == spoken  # idempotent
