"""Chat-stage conversations (Qwen-Audio-Chat) built from shard labels.

The release's supervised fine-tuning format (``assets/sft_sample.txt`` of QwenLM/Qwen-Audio)
is ChatML; the audios of a dialogue are named in its first user turn::

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\n
    Audio 1: <audio>PATH</audio>\\nwhat does the person say?<|im_end|>\\n<|im_start|>assistant\\n
    The person says: "...".<|im_end|>\\n<|im_start|>user\\nFind the start time ...<|im_end|> ...

Token ids follow the release's ``make_context`` (``qwen_generation_utils.py``): each turn is
``<|im_start|>`` + role + ``\\n`` + content + ``<|im_end|>``, turns joined by ``\\n``, the
role, the newline and the content encoded apart; inside the content the tokenizer replaces
``<audio>PATH</audio>`` with ``<audio>`` + one ``[[[AUDIO:modality]]]`` per pooled encoder
frame + ``</audio>`` (``tokenization_qwen.py``).  :func:`encode` does the same from any
tokenizer with ``encode`` / ``token_to_id`` (``trainer.tokenizer.QwenAudioTokenizer``).

Labels score the assistant turns' content and their ``<|im_end|>`` only (system, user
text, audio and the other ChatML markers are ``-100``).  Qwen-Audio released no fine-tuning
script; Qwen's ``finetune.py`` (QwenLM/Qwen) also scores every turn's ``<|im_start|>``,
``<|im_end|>`` and the newline after it, which this project does not.

Questions and answers come from a YAML file of templates (``conf/chat/templates.yaml``,
replaceable) filled with facts read from the labels (:mod:`pipeline.chat_facts`).  A
conversation is a pure function of its samples, the templates and a ``random.Random``.
"""

from __future__ import annotations

import functools
import math
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from pipeline.chat_facts import FIELDS, Fact, sample_facts
from pipeline.format import SAMPLE_RATE
from pipeline.tags import AUDIO_END, AUDIO_PAD, AUDIO_START

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
IGNORE = -100
_MARK = "\x00"  # stands for an audio while a user turn is split around its audios
DEFAULT_TEMPLATES = Path(__file__).resolve().parents[1] / "conf" / "chat" / "templates.yaml"
#: Qwen-Audio's context (``seq_length`` of the released config) and tokens of a 30 s clip.
DEFAULT_MAX_TOKENS = 2048
HOP, MIN_SAMPLES, MAX_SAMPLES = 160, 640, 480000


def audio_pad_count(num_samples: int) -> int:
    """Audio pads of a clip of ``num_samples`` (25 per second; 750 for 30 s).

    The release's arithmetic (``process_audio``: mel frames -> conv stride 2 -> pooling 2),
    the same as ``trainer.features.audio_token_count`` (a test keeps them equal).
    """
    mel = max(min(num_samples, MAX_SAMPLES), MIN_SAMPLES) // HOP
    return ((mel - 1) // 2 + 1 - 2) // 2 + 1


def pads_for_duration(seconds: float) -> int:
    """An upper bound of :func:`audio_pad_count` for a clip of ``seconds`` (JSON duration)."""
    return audio_pad_count(math.ceil(seconds * SAMPLE_RATE) + 1)


# ---------------------------------------------------------------- templates
class TemplateError(ValueError):
    """A templates file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Templates:
    """The parsed templates file (see ``conf/chat/templates.yaml``)."""

    data: dict[str, Any]
    path: str

    @staticmethod
    def load(path: str | Path | None = None) -> Templates:
        """Read and check a templates file (default: ``conf/chat/templates.yaml``)."""
        path = Path(path) if path else DEFAULT_TEMPLATES
        if not path.is_file():
            raise TemplateError(f"chat templates not found: {path}; give an existing YAML "
                                f"file (see {DEFAULT_TEMPLATES} for the layout)")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        t = Templates(data if isinstance(data, dict) else {}, str(path))
        t.check()
        return t

    def check(self) -> None:
        """Refuse missing entries, wrong types and templates naming fields their kind does
        not have: every problem of the file in one :class:`TemplateError`."""
        problems: list[str] = []
        d = self.data
        for key in ("system", "audio_label", "kinds", "compare", "which"):
            if key not in d:
                problems.append(f"{key}: missing (see {DEFAULT_TEMPLATES})")
        for key in ("kinds", "compare", "which"):
            if key in d and not isinstance(d[key], dict):
                problems.append(f"{key}: must be a mapping")
        for key in ("max_turns", "max_audios"):
            value = d.get(key, 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{key}: must be an integer >= 1, not {value!r}")
        share = d.get("multi_share", 0)
        if not isinstance(share, (int, float)) or not 0 <= share <= 1:
            problems.append(f"multi_share: must be a number from 0 to 1, not {share!r}")
        if "system" in d and not isinstance(d["system"], str):
            problems.append("system: must be a string")
        if "audio_label" in d:
            problems += _names("audio_label", [d["audio_label"]], {"n"})
        kinds = d.get("kinds") if isinstance(d.get("kinds"), dict) else {}
        for kind, spec in kinds.items():
            if kind not in FIELDS:
                problems.append(f"kinds.{kind}: unknown kind; choose from {sorted(FIELDS)}")
                continue
            spec = spec if isinstance(spec, dict) else {}
            for part in ("ask", "answer", "describe"):
                if part != "describe" or part in spec:
                    problems += _names(f"kinds.{kind}.{part}", spec.get(part), FIELDS[kind])
        c = d.get("compare") if isinstance(d.get("compare"), dict) else None
        w = d.get("which") if isinstance(d.get("which"), dict) else None
        for where, spec, key, allowed in (
            ("compare", c, "ask", set()), ("compare", c, "ask_many", {"count"}),
            ("compare", c, "answer", {"d1", "d2"}), ("compare", c, "answer_many", {"items"}),
            ("which", w, "ask", {"description", "n"}),
            ("which", w, "answer", {"description", "n"}),
        ):
            if spec is not None:
                problems += _names(f"{where}.{key}", spec.get(key), allowed)
        if c is not None:
            problems += _names("compare.item", [c.get("item")], {"n", "description"})
        if problems:
            raise TemplateError(f"{self.path}: " + "; ".join(problems))

    def kind(self, kind: str) -> dict[str, list[str]] | None:
        """The templates of a fact kind, or ``None`` when the file leaves it out."""
        return self.data["kinds"].get(kind)


def _names(where: str, variants: Any, allowed: set[str] | frozenset[str]) -> list[str]:
    """Problems of a list of template variants (empty when it is fine)."""
    if not isinstance(variants, list) or not variants or not all(
        isinstance(v, str) and v for v in variants
    ):
        return [f"{where}: must be a non-empty list of strings"]
    problems = []
    for v in variants:
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(v) if f is not None}
        except ValueError as err:
            problems.append(f"{where}: {v!r}: {err}")
            continue
        bad = sorted(names - set(allowed))
        if bad:
            problems.append(f"{where}: {v!r} names {bad}; allowed: {sorted(allowed)}")
    return problems


# ---------------------------------------------------------------- conversations
@dataclass(frozen=True)
class Clip:
    """One audio of a conversation: the sample it is (``(set, split, key)``) and its length."""

    set_name: str
    split: str
    key: str
    duration: float


@dataclass(frozen=True)
class ChatSample:
    """A shard sample as the generator sees it: where it is and its JSON."""

    clip: Clip
    meta: dict[str, Any]


@dataclass(frozen=True)
class Conversation:
    """Question/answer pairs about ``clips``; the first question follows the audio lines."""

    id: str
    clips: tuple[Clip, ...]
    pairs: tuple[tuple[str, str], ...]
    task: str  # the task the first question comes from (per-task loss logs)
    system: str
    audio_label: str

    def truncated(self, n_pairs: int) -> Conversation:
        """The same conversation with its first ``n_pairs`` question/answer pairs."""
        return Conversation(self.id, self.clips, self.pairs[:n_pairs], self.task, self.system,
                            self.audio_label)


def user_text(conv: Conversation, i: int, audio: Callable[[int], str]) -> str:
    """Content of user turn ``i``; turn 0 starts with one line per audio (``audio(n)``)."""
    head = "".join(f"{conv.audio_label.format(n=n)}{audio(n)}\n"
                   for n in range(1, len(conv.clips) + 1)) if i == 0 else ""
    return head + conv.pairs[i][0]


def chatml(conv: Conversation, paths: Sequence[str]) -> str:
    """The release's ChatML text, each audio as ``<audio>PATH</audio>``."""
    parts = [f"{IM_START}system\n{conv.system}{IM_END}"]
    for i, (_, answer) in enumerate(conv.pairs):
        content = user_text(conv, i, lambda n: f"{AUDIO_START}{paths[n - 1]}{AUDIO_END}")
        parts.append(f"{IM_START}user\n{content}{IM_END}")
        parts.append(f"{IM_START}assistant\n{answer}{IM_END}")
    return "\n".join(parts)


def messages(conv: Conversation, audio: Callable[[int], str]) -> list[dict[str, str]]:
    """``[{"role", "content"}, ...]``: system, then user/assistant turns; audio ``n`` of the
    first user turn is written ``audio(n)`` (e.g. ``"Audio 1: <audio>\\n"``)."""
    out = [{"role": "system", "content": conv.system}]
    for i, (question, answer) in enumerate(conv.pairs):
        head = "".join(audio(n) for n in range(1, len(conv.clips) + 1)) if i == 0 else ""
        out.append({"role": "user", "content": head + question})
        out.append({"role": "assistant", "content": answer})
    return out


@functools.lru_cache(maxsize=1 << 16)
def _encode_cached(tok: ChatTokenizer, text: str) -> tuple[int, ...]:
    # Roles, newlines, the system prompt and template questions repeat in every
    # conversation, and each encode call with every special token allowed costs ~1 ms.
    return tuple(tok.encode(text))


class ChatTokenizer(Protocol):
    """What :func:`encode` needs of a tokenizer (``trainer.tokenizer.QwenAudioTokenizer``)."""

    def encode(self, text: str) -> list[int]: ...
    def token_to_id(self, token: str) -> int: ...


def encode(
    conv: Conversation, tok: ChatTokenizer, pads: Sequence[int], prompt_only: bool = False
) -> tuple[list[int], list[int]]:
    """Token ids and labels of ``conv``; clip ``n`` gets ``pads[n - 1]`` audio pads.

    ``prompt_only`` stops before the last answer, after ``<|im_start|>assistant\\n`` (the
    generation prompt of the release's ``make_context``); its labels are all ``-100``.
    """
    if len(pads) != len(conv.clips):
        raise ValueError(f"{conv.id}: {len(pads)} pad counts for {len(conv.clips)} audios")
    im_start, im_end = tok.token_to_id(IM_START), tok.token_to_id(IM_END)
    a_start, a_pad, a_end = (tok.token_to_id(t) for t in (AUDIO_START, AUDIO_PAD, AUDIO_END))
    enc = functools.partial(_encode_cached, tok)
    nl = enc("\n")
    ids: list[int] = []
    labels: list[int] = []

    def add(seq: Sequence[int], scored: bool) -> None:
        ids.extend(seq)
        labels.extend(seq if scored else [IGNORE] * len(seq))

    add([im_start, *enc("system"), *nl, *enc(conv.system), im_end], False)
    for i, (_, answer) in enumerate(conv.pairs):
        add([*nl, im_start, *enc("user"), *nl], False)
        pieces = user_text(conv, i, lambda n: _MARK).split(_MARK)
        for n, piece in enumerate(pieces):
            add(enc(piece) if piece else [], False)
            if n < len(pieces) - 1:
                add([a_start, *[a_pad] * pads[n], a_end], False)
        add([im_end, *nl, im_start, *enc("assistant"), *nl], False)
        if prompt_only and i == len(conv.pairs) - 1:
            break
        add([*enc(answer), im_end], not prompt_only)
    return ids, labels


# ---------------------------------------------------------------- generation
def _fill(rng: random.Random, variants: list[str], **fields: Any) -> str:
    return rng.choice(variants).format(**fields)


def _qa(t: Templates, fact: Fact, rng: random.Random) -> tuple[str, str] | None:
    spec = t.kind(fact.kind)
    if spec is None:
        return None
    v = fact.values()
    return _fill(rng, spec["ask"], **v), _fill(rng, spec["answer"], **v)


def _description(t: Templates, facts: list[Fact], rng: random.Random) -> tuple[str, str] | None:
    """(task, description) of a clip from its first fact whose kind has ``describe``."""
    for fact in facts:
        spec = t.kind(fact.kind)
        if spec and spec.get("describe"):
            return fact.task, _fill(rng, spec["describe"], **fact.values())
    return None


def single(
    sample: ChatSample, t: Templates, rng: random.Random, conv_id: str
) -> Conversation | None:
    """A dialogue of 1..``max_turns`` questions about one clip (its main task first)."""
    qas = [(f, qa) for f in sample_facts(sample.meta, rng) if (qa := _qa(t, f, rng))]
    if not qas:
        return None
    n = rng.randint(1, min(int(t.data.get("max_turns", 3)), len(qas)))
    chosen = [qas[0], *rng.sample(qas[1:], n - 1)]
    return Conversation(conv_id, (sample.clip,), tuple(qa for _, qa in chosen), chosen[0][0].task,
                        t.data["system"], t.data["audio_label"])


def several(samples: Sequence[ChatSample], t: Templates, rng: random.Random,
            conv_id: str) -> Conversation | None:
    """A dialogue over 2+ clips: compare them, then (when their descriptions differ) ask
    which one is a given description."""
    described = [_description(t, sample_facts(s.meta, rng), rng) for s in samples]
    if len(samples) < 2 or any(d is None for d in described):
        return None
    descs = [d[1] for d in described if d]
    c, w = t.data["compare"], t.data["which"]
    if len(samples) == 2:
        pairs = [(_fill(rng, c["ask"]), _fill(rng, c["answer"], d1=descs[0], d2=descs[1]))]
    else:
        items = c.get("join", "; ").join(
            c["item"].format(n=n, description=d) for n, d in enumerate(descs, 1))
        pairs = [(_fill(rng, c["ask_many"], count=len(samples)),
                  _fill(rng, c["answer_many"], items=items))]
    if len(set(descs)) == len(descs) and int(t.data.get("max_turns", 3)) > 1:
        n = rng.randint(1, len(descs))
        fields = {"n": n, "description": descs[n - 1]}
        pairs.append((_fill(rng, w["ask"], **fields), _fill(rng, w["answer"], **fields)))
    task = described[0][0] if described[0] else "asr"
    return Conversation(conv_id, tuple(s.clip for s in samples), tuple(pairs), task,
                        t.data["system"], t.data["audio_label"])


def fit(conv: Conversation, length: Callable[[Conversation], int],
        max_tokens: int) -> Conversation | None:
    """``conv`` with trailing pairs dropped until ``length`` fits ``max_tokens`` (or None)."""
    for n in range(len(conv.pairs), 0, -1):
        cut = conv.truncated(n)
        if length(cut) <= max_tokens:
            return cut
    return None


def converse(
    primary: ChatSample, pool: Sequence[ChatSample], t: Templates, rng: random.Random,
    length: Callable[[Conversation], int], max_tokens: int,
) -> Conversation | str:
    """One conversation led by ``primary``; with probability ``multi_share`` over it and
    1..``max_audios - 1`` other samples drawn from ``pool`` (samples of other clips).

    Returns the conversation, fitted to ``max_tokens``, or the reason there is none.
    """
    c = primary.clip
    conv_id = f"{c.set_name}-{c.split}-{c.key}"
    others = list({s.clip: s for s in pool if s.clip != c}.values())  # each clip once
    max_audios = int(t.data.get("max_audios", 3))
    if others and max_audios > 1 and rng.random() < float(t.data.get("multi_share", 0)):
        partners = rng.sample(others, rng.randint(1, min(max_audios - 1, len(others))))
        for k in range(len(partners), 0, -1):  # fewer audios while they do not fit
            conv = several([primary, *partners[:k]], t, rng, conv_id)
            fitted = fit(conv, length, max_tokens) if conv else None
            if fitted:
                return fitted
    conv = single(primary, t, rng, conv_id)
    if conv is None:
        tasks = sorted({e.get("task", "?") for e in primary.meta.get("tasks", [])})
        return f"no chat template answers the labels of tasks {tasks}"
    fitted = fit(conv, length, max_tokens)
    if fitted is None:
        return f"does not fit the context of {max_tokens} tokens"
    return fitted


def token_length(tok: ChatTokenizer) -> Callable[[Conversation], int]:
    """A ``length`` for :func:`fit`: tokens of the conversation, pads from the durations."""
    def length(conv: Conversation) -> int:
        return len(encode(conv, tok, [pads_for_duration(c.duration) for c in conv.clips])[0])

    return length


def sample_rng(seed: int | str, clip: Clip) -> random.Random:
    """The generator of the conversation led by ``clip`` (same seed, same conversation)."""
    return random.Random(f"{seed}:{clip.set_name}:{clip.split}:{clip.key}")


def conversations_of(
    samples: Sequence[ChatSample], t: Templates, seed: int | str,
    length: Callable[[Conversation], int], max_tokens: int,
) -> list[Conversation | str]:
    """One conversation (or the reason there is none) per sample, in order; other audios
    are drawn from ``samples`` (e.g. one shard).  Deterministic for ``seed``."""
    return [converse(s, samples, t, sample_rng(seed, s.clip), length, max_tokens)
            for s in samples]
