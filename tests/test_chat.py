"""Chat-stage conversations: the release's ChatML text and ids, the label mask, templates,
facts from labels, determinism and the context limit (pipeline/chat.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from pipeline.chat import (
    DEFAULT_TEMPLATES,
    IGNORE,
    ChatSample,
    Clip,
    Conversation,
    TemplateError,
    Templates,
    audio_pad_count,
    chatml,
    conversations_of,
    encode,
    messages,
    pads_for_duration,
    single,
    token_length,
)
from pipeline.tags import (
    aac_prompt,
    aqa_prompt,
    asc_prompt,
    asr_prompt,
    s2tt_prompt,
    ser_prompt,
    vsc_prompt,
)
from trainer.tokenizer import QwenAudioTokenizer

SYSTEM = "You are a helpful assistant."
ANSWER = ('The person says: "mister quilter is the apostle of the middle classes and we are '
          'glad to welcome his gospel".')
GROUNDING = ('The word "middle classes" starts at <|2.33|> seconds and ends at <|3.26|> '
             "seconds.")


@pytest.fixture(scope="module")
def tok() -> QwenAudioTokenizer:
    return QwenAudioTokenizer.from_tiktoken(None)  # Qwen-7B's qwen.tiktoken (package)


def conv(*pairs: tuple[str, str], clips: int = 1) -> Conversation:
    return Conversation("c", tuple(Clip("s", "train", f"k{i}", 5.0) for i in range(clips)),
                        pairs, "asr", SYSTEM, "Audio {n}: ")


def test_chatml_text_is_the_releases_sft_sample() -> None:
    # The first conversation of QwenLM/Qwen-Audio assets/sft_sample.txt (its "\n" escapes read
    # as newlines).
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "Audio 1: <audio>assets/audio/1272-128104-0000.flac</audio>\nwhat does the person "
        "say?<|im_end|>\n<|im_start|>assistant\nThe person says: \"mister quilter is the "
        "apostle of the middle classes and we are glad to welcome his gospel\".<|im_end|>"
    )
    c = conv(("what does the person say?", ANSWER))
    assert chatml(c, ["assets/audio/1272-128104-0000.flac"]) == expected


def test_ids_and_label_mask_token_by_token(tok: QwenAudioTokenizer) -> None:
    # Ids of the released tokenizer: Qwen's specials follow the 151,643 BPE ranks.
    im_start, im_end, nl = 151644, 151645, 198
    assert (tok.token_to_id("<|im_start|>"), tok.token_to_id("<|im_end|>")) == (im_start, im_end)
    assert tok.encode("\n") == [nl] and tok.encode("system") == [8948]
    assert tok.encode("user") == [872] and tok.encode("assistant") == [77091]
    a_start, pad, a_end = tok.audio_start_id, tok.audio_pad_id, tok.audio_end_id
    assert pad == 151851 and (a_start, a_end) == (155163, 155164)
    c = conv(("what does the person say?", ANSWER),
             ('Find the start time and end time of the word "middle classes"', GROUNDING))
    ids, labels = encode(c, tok, [3])

    def masked(seq: list[int]) -> list[tuple[int, bool]]:
        return [(i, False) for i in seq]

    def scored(seq: list[int]) -> list[tuple[int, bool]]:
        return [(i, True) for i in seq]

    e = tok.encode
    expected = (
        masked([im_start, 8948, nl, *e(SYSTEM), im_end])
        + masked([nl, im_start, 872, nl, *e("Audio 1: "), a_start, pad, pad, pad, a_end,
                  *e("\nwhat does the person say?"), im_end])
        + masked([nl, im_start, 77091, nl]) + scored([*e(ANSWER), im_end])
        + masked([nl, im_start, 872, nl,
                  *e('Find the start time and end time of the word "middle classes"'), im_end])
        + masked([nl, im_start, 77091, nl]) + scored([*e(GROUNDING), im_end])
    )
    assert ids == [i for i, _ in expected]
    assert labels == [i if s else IGNORE for i, s in expected]
    # the time tokens of the answer are single special tokens, scored
    assert tok.token_to_id("<|2.33|>") in labels and tok.token_to_id("<|3.26|>") in labels
    assert sum(lab != IGNORE for lab in labels) == len(e(ANSWER)) + len(e(GROUNDING)) + 2


def test_prompt_only_ends_with_the_assistant_header(tok: QwenAudioTokenizer) -> None:
    c = conv(("q1", "a1"), ("q2", "a2"))
    full, _ = encode(c, tok, [2])
    ids, labels = encode(c, tok, [2], prompt_only=True)
    assert ids[-4:] == [198, 151644, 77091, 198] and set(labels) == {IGNORE}
    assert full[: len(ids)] == ids and full[len(ids):] == [*tok.encode("a2"), 151645]


def test_several_audios_are_listed_in_the_first_user_turn(tok: QwenAudioTokenizer) -> None:
    c = conv(("what is the difference of the two recordings?", "x"), ("and?", "y"), clips=2)
    text = chatml(c, ["a.flac", "b.flac"])
    assert "user\nAudio 1: <audio>a.flac</audio>\nAudio 2: <audio>b.flac</audio>\nwhat is" in text
    assert text.count("<audio>") == 2
    ids, _ = encode(c, tok, [4, 2])
    runs = [ids[i + 1 : ids.index(tok.audio_end_id, i)] for i, t in enumerate(ids)
            if t == tok.audio_start_id]
    assert [len(r) for r in runs] == [4, 2] and {t for r in runs for t in r} == {tok.audio_pad_id}
    msgs = messages(c, lambda n: "<audio>")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    assert msgs[1]["content"] == "<audio><audio>what is the difference of the two recordings?"


def test_audio_pad_count_matches_the_trainer() -> None:
    from trainer.features import audio_token_count

    for n in (1, 639, 640, 16000, 16001, 16160, 160000, 479999, 480000):
        assert audio_pad_count(n) == audio_token_count(n), n
    assert audio_pad_count(480000) == 750 and pads_for_duration(30.0) == 750


def one_variant_templates(tmp_path: Path, **changes: object) -> Templates:
    """The default templates with only their first variant of each list (fixed text)."""
    data = yaml.safe_load(DEFAULT_TEMPLATES.read_text())
    for spec in [*data["kinds"].values(), data["compare"], data["which"]]:
        for key, value in spec.items():
            if isinstance(value, list):
                spec[key] = value[:1]
    data.update(changes)
    path = tmp_path / "templates.yaml"
    path.write_text(yaml.safe_dump(data))
    return Templates.load(path)


WORDS = [{"word": "mister", "start": 0.5, "end": 0.9}, {"word": "quilter", "start": 0.9,
         "end": 1.4}, {"word": "is", "start": 1.4, "end": 1.6}, {"word": "the", "start": 1.6,
         "end": 1.7}]


def sample(key: str, tasks: list[dict[str, str]], duration: float = 2.0, lang: str = "en",
           **extra: object) -> ChatSample:
    meta = {"key": key, "duration": duration, "language": lang, "tasks": tasks, **extra}
    return ChatSample(Clip("set", "train", key, duration), meta)


def speech(key: str, text: str = "mister quilter is the", duration: float = 2.0) -> ChatSample:
    return sample(key, [{"task": "asr", "prompt": asr_prompt("en"), "target": text}],
                  duration, words=WORDS)


def test_answers_come_from_the_labels(tmp_path: Path) -> None:
    t = one_variant_templates(tmp_path, max_turns=9)
    seen = set()
    for seed in range(30):  # dialogues of 1..4 questions, each answer checked
        c = single(speech("a"), t, random.Random(seed), "a")
        assert c is not None and c.task == "asr"
        assert c.pairs[0] == ("what does the person say?",
                              'The person says: "mister quilter is the".')
        for question, answer in c.pairs[1:]:
            if question.startswith("What language"):
                assert answer == "The person speaks English."
                seen.add("language")
            elif question.startswith("Find the start time"):
                word = question.split('"')[1]
                span = [w for w in WORDS if w["word"] in word.split()]
                assert answer == (f'The word "{word}" starts at <|{span[0]["start"]:.2f}|> '
                                  f'seconds and ends at <|{span[-1]["end"]:.2f}|> seconds.')
                seen.add("word_time")
            else:
                assert question.startswith("Which word is said at <|")
                t_at = float(question.split("<|")[1].split("|>")[0])
                (said,) = [w["word"] for w in WORDS if w["start"] < t_at < w["end"]]
                assert answer == f'The word said at <|{t_at:.2f}|> seconds is "{said}".'
                seen.add("word_at")
    assert seen == {"language", "word_time", "word_at"}


@pytest.mark.parametrize(("tasks", "question", "answer"), [
    ([{"task": "asc", "prompt": asc_prompt(), "target": "bus"}],
     "What is the acoustic scene?", "The acoustic scene is bus."),
    ([{"task": "vsc", "prompt": vsc_prompt(), "target": "Cough"}],
     "What vocal sound does the person make?", "The person makes a cough sound."),
    ([{"task": "ser", "prompt": ser_prompt(), "target": "neutral"}],
     "What emotion does the speaker express?", "The speaker sounds neutral."),
    ([{"task": "aac", "prompt": aac_prompt(), "target": "A dog barks."}],
     "Describe the audio.", "A dog barks."),
    ([{"task": "aqa", "prompt": aqa_prompt("is it raining?"), "target": "yes"}],
     "is it raining?", "yes"),
    ([{"task": "s2tt", "prompt": s2tt_prompt("fr", "en"), "target": "Hello."}],
     "Translate what the person says into English.", "Hello."),
    ([{"task": "mna", "prompt": "<|startofanalysis|><|unknown|><|keyword|><|en|>"
       "<|notimestamps|><|note_analysis|>", "target": "<|pitch|><|midi_pitch_60|><|velocity|>"
       "<|midi_velocity_100|><|instrument|>keyboard<|sonic|>bright"}],
     "Which instrument plays this note?", "The note is played on a keyboard."),
])
def test_first_question_per_task(tmp_path: Path, tasks: list, question: str, answer: str) -> None:
    t = one_variant_templates(tmp_path, max_turns=1)
    c = single(sample("x", tasks, lang="fr" if tasks[0]["task"] == "s2tt" else "unknown"),
               t, random.Random(3), "x")
    assert c is not None and c.pairs == ((question, answer),)
    assert c.task == tasks[0]["task"]


def shard_samples(n: int, duration: float = 2.0) -> list[ChatSample]:
    caps = ["A dog barks.", "Rain falls.", "A car passes by.", "Birds sing."]
    out = []
    for i in range(n):
        if i % 2:
            out.append(sample(f"k{i}", [{"task": "aac", "prompt": aac_prompt(),
                                         "target": caps[i % 4]}], duration, "unknown"))
        else:
            out.append(speech(f"k{i}", ["mister quilter", "is the apostle"][i % 4 // 2], duration))
    return out


def test_conversations_are_deterministic_for_a_seed(tok: QwenAudioTokenizer) -> None:
    t, samples, length = Templates.load(), shard_samples(24), token_length(tok)
    first = conversations_of(samples, t, 7, length, 2048)
    assert first == conversations_of(samples, t, 7, length, 2048)
    assert first != conversations_of(samples, t, 8, length, 2048)
    assert all(isinstance(c, Conversation) for c in first)
    assert {len(c.clips) for c in first} >= {1, 2}  # some dialogues over several audios
    assert len({c.id for c in first}) == 24


def test_every_conversation_fits_the_context(tok: QwenAudioTokenizer, tmp_path: Path) -> None:
    t = one_variant_templates(tmp_path, multi_share=1.0, max_audios=3, max_turns=3)
    samples, length = shard_samples(12, duration=30.0), token_length(tok)
    convs = conversations_of(samples, t, 0, length, 2048)
    # three 30 s clips are 3 x 752 audio tokens: never more than two fit in 2048
    assert {len(c.clips) for c in convs} == {2}
    assert all(length(c) <= 2048 for c in convs)
    small = conversations_of(samples, t, 0, length, 800)  # one 30 s clip + a short dialogue
    assert {len(c.clips) for c in small} == {1} and all(length(c) <= 800 for c in small)
    assert conversations_of(samples[:1], t, 0, length, 700) == [
        "does not fit the context of 700 tokens"]


def test_samples_without_templated_labels_are_reasons(tok: QwenAudioTokenizer) -> None:
    bad = sample("b", [{"task": "srwt", "prompt": "x", "target": "y"}], lang="unknown")
    (out,) = conversations_of([bad], Templates.load(), 0, token_length(tok), 2048)
    assert out == "no chat template answers the labels of tasks ['srwt']"


def test_templates_are_checked_on_load(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_TEMPLATES.read_text())
    data["kinds"]["scene"]["answer"] = ["It is {scene}."]
    data["kinds"]["chord"] = {"ask": ["?"], "answer": ["!"]}
    data["max_turns"] = 0
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TemplateError) as err:  # every problem at once, with the file
        Templates.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert "kinds.scene.answer: 'It is {scene}.' names ['scene']; allowed: ['label', " in message
    assert "kinds.chord: unknown kind" in message and "max_turns: must be an integer" in message
    with pytest.raises(TemplateError, match="chat templates not found"):
        Templates.load(tmp_path / "missing.yaml")
