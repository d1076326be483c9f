"""Facts about one clip, read from its shard labels, for the chat stage (:mod:`pipeline.chat`).

A :class:`Fact` is what a question can be asked about: a kind (``transcript``, ``word_time``,
``scene``, ...), the project task it comes from (for per-task loss logs) and the fields its
templates fill in.  Every answer comes from the labels of the sample JSON (FORMAT.md): the
task entries' targets (and the AQA question inside the prompt), ``language`` and the word
alignment ``words`` (or, for older shards without it, the SRWT target's timed words).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from pipeline.tags import SIL, TagError, parse, parse_srwt, time_token

#: English names of the release's languages (its tokenizer's LANGUAGES table).
LANGUAGE_NAMES: dict[str, str] = {
    "en": "English", "zh": "Chinese", "de": "German", "es": "Spanish", "ko": "Korean",
    "fr": "French", "ja": "Japanese", "it": "Italian",
}

#: Fact kind -> the fields its templates may name.
FIELDS: dict[str, frozenset[str]] = {
    "transcript": frozenset({"text"}),
    "language": frozenset({"language"}),
    "translation": frozenset({"text", "target_language"}),
    "word_time": frozenset({"word", "start", "end"}),
    "word_at": frozenset({"time", "word"}),
    "caption": frozenset({"text", "text_lc"}),
    "scene": frozenset({"label", "label_lc"}),
    "event": frozenset({"label", "label_lc"}),
    "emotion": frozenset({"label", "label_lc"}),
    "vocal_sound": frozenset({"label", "label_lc"}),
    "genre": frozenset({"label", "label_lc"}),
    "music_caption": frozenset({"text", "text_lc"}),
    "instrument": frozenset({"instrument"}),
    "pitch": frozenset({"pitch"}),
    "aqa": frozenset({"question", "answer"}),
}

#: Label tasks whose target is one label or one caption, and the fact kind they give.
_LABEL_KINDS = {"asc": "scene", "sec": "event", "ser": "emotion", "vsc": "vocal_sound",
                "mgr": "genre"}
_TEXT_KINDS = {"aac": "caption", "mc": "music_caption"}
_SPEECH_TASKS = ("asr", "srwt", "s2tt")
_NOTE_RE = re.compile(
    r"<\|pitch\|><\|midi_pitch_(\d+)\|><\|velocity\|><\|midi_velocity_\d+\|>"
    r"<\|instrument\|>([^<]+)<\|sonic\|>"
)
_TOKEN_RE = re.compile(r"<\|[^<>]*?\|>")


@dataclass(frozen=True)
class Fact:
    """Something a question can be asked about one clip, with its answer's fields."""

    kind: str
    task: str
    fields: tuple[tuple[str, str], ...]

    def values(self) -> dict[str, str]:
        """The template fields as a dict."""
        return dict(self.fields)


def _fact(kind: str, task: str, **fields: str) -> Fact:
    return Fact(kind, task, tuple(sorted(fields.items())))


def lower_first(text: str) -> str:
    """``A dog barks.`` -> ``a dog barks`` (for a description inside a sentence)."""
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:] if text[:1].isupper() and text[1:2].islower() else text


def timed_words(meta: dict[str, Any]) -> list[tuple[str, float, float]]:
    """``(word, start, end)`` of the clip: the ``words`` field, else the SRWT target's words
    (``<|sil|>`` left out, read by :func:`pipeline.tags.parse_srwt`); empty when the clip
    has neither or its target does not parse."""
    words = meta.get("words")
    if words:
        return [(str(w["word"]), float(w["start"]), float(w["end"])) for w in words]
    for entry in meta.get("tasks", []):
        if entry.get("task") == "srwt":
            try:
                return [w for w in parse_srwt(entry["target"]) if w[0] != SIL]
            except TagError:
                return []
    return []


def word_facts(words: list[tuple[str, float, float]], rng: random.Random) -> list[Fact]:
    """A ``word_time`` fact (one or two consecutive words said once in the clip) and a
    ``word_at`` fact (the word under a time strictly inside it), when the words allow."""
    words = [(w, s, e) for w, s, e in words if e > s and w.strip() and not _TOKEN_RE.search(w)]
    if not words:
        return []
    facts: list[Fact] = []
    texts = [w for w, _, _ in words]
    spans = [
        (i, n) for n in (1, 2) for i in range(len(words) - n + 1)
        if _count(texts, texts[i : i + n]) == 1
    ]
    if spans:
        i, n = rng.choice(spans)
        facts.append(_fact("word_time", "srwt", word=" ".join(texts[i : i + n]),
                           start=time_token(words[i][1]), end=time_token(words[i + n - 1][2])))
    inside = []
    for w, s, e in words:
        t = round((s + e) / 2, 2)
        if s < t < e:  # a time token strictly inside the word names only that word
            inside.append((w, t))
    if inside:
        word, t = rng.choice(inside)
        facts.append(_fact("word_at", "srwt", time=time_token(t), word=word))
    return facts


def _count(seq: list[str], sub: list[str]) -> int:
    n = len(sub)
    return sum(seq[i : i + n] == sub for i in range(len(seq) - n + 1))


def _entry_facts(entry: dict[str, str], rng: random.Random) -> list[Fact]:
    task, target = entry["task"], entry["target"].strip()
    if task == "asr":
        return [_fact("transcript", task, text=target)]
    if task == "s2tt":
        tags = parse(entry["prompt"]).tags  # [start, audio lang, task, text lang, ...]
        code = tags[3][2:-2]
        if code not in LANGUAGE_NAMES:
            return []
        return [_fact("translation", task, text=target, target_language=LANGUAGE_NAMES[code])]
    if task in _TEXT_KINDS:
        return [_fact(_TEXT_KINDS[task], task, text=target, text_lc=lower_first(target))]
    if task in _LABEL_KINDS:
        return [_fact(_LABEL_KINDS[task], task, label=target, label_lc=target.lower())]
    if task == "mna":
        m = _NOTE_RE.match(target)
        if not m:
            return []
        instrument = m.group(2).strip().replace("_", " ")
        return [_fact("instrument", task, instrument=instrument),
                _fact("pitch", task, pitch=m.group(1))]
    if task == "aqa":
        question = parse(entry["prompt"] + target).question
        return [_fact("aqa", task, question=(question or "").strip(), answer=target)]
    return []  # srwt: its words are read once per clip (word_facts)


def sample_facts(meta: dict[str, Any], rng: random.Random) -> list[Fact]:
    """Every fact the clip's labels support, the clip's main task first.

    A clip with several entries of one task (five Clotho captions) gives one fact of that
    task, its entry drawn with ``rng``; a speech clip also gives its language and, when
    aligned, word facts.  Entries whose label cannot be read are left out.
    """
    by_task: dict[str, list[dict[str, str]]] = {}
    for entry in meta.get("tasks", []):
        by_task.setdefault(entry["task"], []).append(entry)
    facts: list[Fact] = []
    for task in sorted(by_task, key=_task_order):
        try:
            facts += _entry_facts(rng.choice(by_task[task]), rng)
        except (TagError, IndexError, KeyError):
            continue
    if any(t in by_task for t in _SPEECH_TASKS):
        lang = str(meta.get("language", ""))
        if lang in LANGUAGE_NAMES:
            facts.append(_fact("language", "asr" if "asr" in by_task else "s2tt",
                               language=LANGUAGE_NAMES[lang]))
        facts += word_facts(timed_words(meta), rng)
    return facts


def _task_order(task: str) -> tuple[int, str]:
    order = ("asr", "s2tt", "aac", "mc", "asc", "sec", "ser", "vsc", "mgr", "mna", "aqa")
    return (order.index(task) if task in order else len(order), task)
