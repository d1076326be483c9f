"""The Qwen-Audio hierarchical tag format, as released.

Token list and prompts follow the released tokenizer (``tokenization_qwen.py``) and
evaluation scripts of Qwen-Audio (arXiv 2311.07919); see ``docs/qwen-audio-format.md``.
Only tokens of :data:`AUDIO_SPECIAL_TOKENS` are ever emitted: :func:`check_tokens`
refuses anything else that looks like a ``<|...|>`` token.

Tasks the released scripts do not show use the closest existing output instruction;
each such choice is marked ``documented choice`` in :data:`TASKS` and in the dataset card.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from pipeline.format import MAX_SECONDS

# ---------------------------------------------------------------- token list (as data)
#: Spoken/text languages that have a token, in the released order.
LANGUAGES: tuple[str, ...] = ("en", "zh", "de", "es", "ko", "fr", "ja", "it")

#: Qwen's own special tokens; they follow the 151,643 BPE ranks of the Qwen-7B vocabulary.
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    *(f"<|extra_{i}|>" for i in range(205)),
)

#: Time tokens ``<|0.00|>`` ... ``<|30.00|>`` (spelled exactly as the release spells them).
TIME_TOKENS: tuple[str, ...] = tuple(f"<|{i * 0.01:.2f}|>" for i in range(3001))

AUDIO_PAD = "[[[AUDIO:modality]]]"
AUDIO_START = "<audio>"
AUDIO_END = "</audio>"

#: Output instructions that may close a prompt (the "Output Instruction" group).
OUTPUT_INSTRUCTIONS: tuple[str, ...] = (
    "<|caption_audiocaps|>",
    "<|caption_clotho|>",
    "<|audioset_ontology|>",
    "<|caption_plain|>",
    "<|itn|>",
    "<|wo_itn|>",
    "<|named_entity_recognition|>",
    "<|audio_grounding|>",
    "<|emotion_recognition|>",
    "<|music_description|>",
    "<|note_analysis|>",
    "<|speaker_meta|>",
    "<|song_meta|>",
    "<|scene|>",
    "<|event|>",
    "<|vocal_classification|>",
    "<|speech_understanding|>",
    "<|speech_edit|>",
)

#: Qwen-Audio's tokens in the released order; with Qwen-7B's vocabulary the first one,
#: the audio pad, has id 151851 and ``<|0.00|>`` has id 151871.
AUDIO_SPECIAL_TOKENS: tuple[str, ...] = (
    AUDIO_PAD,
    "<|startoftranscript|>",
    "<|startofanalysis|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|caption|>",
    "<|keyword|>",
    "<|unknown|>",
    *(f"<|{lang}|>" for lang in LANGUAGES),
    "<|zh_tr|>",
    "<|notimestamps|>",
    "<|sil|>",
    "<|timestamps|>",
    *TIME_TOKENS,
    "<|caption_audiocaps|>",
    "<|caption_clotho|>",
    "<|audioset_ontology|>",
    "<|caption_plain|>",
    "<|itn|>",
    "<|wo_itn|>",
    "<|startofentityvalue|>",
    "<|endofentityvalue|>",
    "<|startofentitytype|>",
    "<|endofentitytype|>",
    "<|named_entity_recognition|>",
    "<|audio_grounding|>",
    "<|startofword|>",
    "<|endofword|>",
    "<|delim|>",
    "<|emotion_recognition|>",
    "<|music_description|>",
    "<|note_analysis|>",
    "<|pitch|>",
    *(f"<|midi_pitch_{i}|>" for i in range(128)),
    "<|velocity|>",
    *(f"<|midi_velocity_{i}|>" for i in range(128)),
    "<|sonic|>",
    "<|instrument|>",
    "<|speaker_meta|>",
    "<|song_meta|>",
    "<|question|>",
    "<|answer|>",
    "<|choice|>",
    "<|scene|>",
    "<|event|>",
    "<|vocal_classification|>",
    "<|speech_understanding|>",
    "<|scenario|>",
    "<|action|>",
    "<|entities|>",
    "<|speech_edit|>",
    AUDIO_START,
    AUDIO_END,
)

#: The last token of the SRWT prompt: every timed transcript starts at 0.00.
SRWT_START = TIME_TOKENS[0]

_TOKEN_SET = frozenset(AUDIO_SPECIAL_TOKENS) - {AUDIO_PAD, AUDIO_START, AUDIO_END}
_LANG_TAGS = frozenset(["<|unknown|>", "<|zh_tr|>", *(f"<|{lang}|>" for lang in LANGUAGES)])
_TOKEN_RE = re.compile(r"<\|[^<>]*?\|>")
_TIME_RE = re.compile(r"<\|(\d{1,2}\.\d{2})\|>")

#: Audio longer than this is never fed whole to Qwen-Audio (480,000 samples at 16 kHz).
MAX_AUDIO_SECONDS = MAX_SECONDS


class TagError(ValueError):
    """A prompt or target that is not valid in the released tag format."""


def check_tokens(text: str) -> None:
    """Raise :class:`TagError` if ``text`` holds a ``<|...|>`` token the release lacks.

    Audio placeholders (``<audio>``, ``</audio>``, the pad) are refused too: they are the
    trainer's to insert, never part of a stored prompt or target.
    """
    bad = sorted({t for t in _TOKEN_RE.findall(text) if t not in _TOKEN_SET})
    if bad:
        raise TagError(f"tokens not in the released Qwen-Audio list: {', '.join(bad)}")
    for placeholder in (AUDIO_PAD, AUDIO_START, AUDIO_END):
        if placeholder in text:
            raise TagError(f"{placeholder!r} is inserted by the trainer, not stored in text")


def lang_tag(lang: str) -> str:
    """Return the language token for ``lang`` (``"unknown"`` for no speech)."""
    tag = f"<|{lang}|>"
    if tag not in _LANG_TAGS:
        choices = ", ".join(["unknown", *LANGUAGES, "zh_tr"])
        raise TagError(f"language {lang!r} has no Qwen-Audio token; choose one of {choices}")
    return tag


# ---------------------------------------------------------------- prompt builders
def _analysis(audio_lang: str, task: str, instruction: str) -> str:
    return (
        f"<|startofanalysis|>{lang_tag(audio_lang)}{task}<|en|><|notimestamps|>{instruction}"
    )


def asr_prompt(lang: str) -> str:
    """Speech recognition (LibriSpeech, Aishell), as in the released eval scripts."""
    tag = lang_tag(lang)
    return f"<|startoftranscript|>{tag}<|transcribe|>{tag}<|notimestamps|><|wo_itn|>"


def srwt_prompt(lang: str) -> str:
    """Speech recognition with word timestamps, as in the released ``evaluate_srwt.py``.

    The prompt ends with :data:`SRWT_START` (``<|0.00|>``): every timed transcript starts
    at 0.00, and the target (:func:`srwt_target`) is its continuation.
    """
    tag = lang_tag(lang)
    return f"<|startoftranscript|>{tag}<|transcribe|>{tag}<|timestamps|>{SRWT_START}"


def s2tt_prompt(src_lang: str, tgt_lang: str) -> str:
    """Speech-to-text translation (CoVoST 2)."""
    return (
        f"<|startoftranscript|>{lang_tag(src_lang)}<|translate|>{lang_tag(tgt_lang)}"
        "<|notimestamps|><|itn|>"
    )


def aac_prompt() -> str:
    """Automatic audio captioning, Clotho style."""
    return _analysis("unknown", "<|caption|>", "<|caption_clotho|>")


def asc_prompt() -> str:
    """Acoustic scene classification (TUT2017, CochlScene)."""
    return _analysis("unknown", "<|keyword|>", "<|scene|>")


def ser_prompt() -> str:
    """Speech emotion recognition (MELD)."""
    return _analysis("en", "<|keyword|>", "<|emotion_recognition|>")


def vsc_prompt() -> str:
    """Vocal sound classification (VocalSound)."""
    return _analysis("en", "<|keyword|>", "<|vocal_classification|>")


def mna_prompt() -> str:
    """Music note analysis (NSynth)."""
    return _analysis("unknown", "<|keyword|>", "<|note_analysis|>")


def aqa_prompt(question: str) -> str:
    """Audio question answering (Clotho-AQA): the question sits inside the prompt."""
    question = " ".join(question.split())
    if not question:
        raise TagError("AQA needs a non-empty question")
    check_tokens(question)
    return f"<|startofanalysis|><|en|><|question|>{question}<|answer|>"


def sec_prompt() -> str:
    """Sound event classification (ESC-50, AudioSet); documented choice: ``<|event|>``."""
    return _analysis("unknown", "<|keyword|>", "<|event|>")


def music_caption_prompt() -> str:
    """Music captioning (MusicCaps); documented choice: ``<|music_description|>``."""
    return _analysis("unknown", "<|caption|>", "<|music_description|>")


def genre_prompt() -> str:
    """Music genre recognition (GTZAN); documented choice: ``<|song_meta|>``."""
    return _analysis("unknown", "<|keyword|>", "<|song_meta|>")


@dataclass(frozen=True)
class TaskSpec:
    """A task: its prompt builder, a description, and whether the prompt is released."""

    build: Callable[..., str]
    description: str
    released: bool


#: Every task the project emits. ``released=False`` marks a documented choice.
TASKS: dict[str, TaskSpec] = {
    "asr": TaskSpec(asr_prompt, "speech recognition", True),
    "srwt": TaskSpec(srwt_prompt, "speech recognition with word timestamps", True),
    "s2tt": TaskSpec(s2tt_prompt, "speech-to-text translation", True),
    "aac": TaskSpec(aac_prompt, "audio captioning (Clotho style)", True),
    "asc": TaskSpec(asc_prompt, "acoustic scene classification", True),
    "ser": TaskSpec(ser_prompt, "speech emotion recognition", True),
    "vsc": TaskSpec(vsc_prompt, "vocal sound classification", True),
    "mna": TaskSpec(mna_prompt, "music note analysis", True),
    "aqa": TaskSpec(aqa_prompt, "audio question answering", True),
    "sec": TaskSpec(sec_prompt, "sound event classification (<|event|>)", False),
    "mc": TaskSpec(music_caption_prompt, "music captioning (<|music_description|>)", False),
    "mgr": TaskSpec(genre_prompt, "music genre recognition (<|song_meta|>)", False),
}


def build_prompt(task: str, **args: str) -> str:
    """Return the prompt string of ``task`` with its arguments (``lang``, ``question``...)."""
    try:
        spec = TASKS[task]
    except KeyError:
        raise TagError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}") from None
    try:
        return spec.build(**args)
    except TypeError as err:
        raise TagError(f"task {task!r}: bad prompt arguments {args}: {err}") from None


def make_entry(task: str, target: str, **args: str) -> dict[str, str]:
    """A sample's task entry ``{"task", "prompt", "target"}``, checked against the token list."""
    target = target.strip()
    if not target:
        raise TagError(f"task {task!r}: empty target")
    check_tokens(target)
    prompt = build_prompt(task, **args)
    return {"task": task, "prompt": prompt, "target": target}


# ---------------------------------------------------------------- target text style
#: Languages written without spaces between words.
UNSPACED_LANGUAGES = frozenset({"zh", "ja", "zh_tr"})
#: The target text style each inverse-text-normalization instruction asks for.
ITN_STYLES: dict[str, str] = {
    "<|wo_itn|>": "spoken form: lower case, no punctuation (apostrophes inside words kept), "
    "as the released model answers; the words of SRWT targets are the ASR target's words",
    "<|itn|>": "written form: the corpus's text with its casing, punctuation and digits",
}
#: Punctuation characters that stand for words (per cent, and, at): kept as written.
_SPOKEN_SIGNS = frozenset("%&@\u2030")


class _SpokenMap(dict):
    """``str.translate`` table of :func:`spoken_form`, filled per character on first sight.

    Punctuation (Unicode category P) becomes a space, the ``\\0`` that marks an inner
    apostrophe becomes ``'``, everything else maps to itself; translate runs in C, so a
    transcript costs one pass instead of a Python call per character.
    """

    def __missing__(self, code: int) -> str | int:
        ch = chr(code)
        value: str | int = code
        if ch == "\0":
            value = "'"
        elif ch not in _SPOKEN_SIGNS and unicodedata.category(ch)[0] == "P":
            value = " "
        self[code] = value
        return value


_SPOKEN_MAP = _SpokenMap()
#: The map's ASCII part, lower-cased, as a ``bytes.translate`` table: an ASCII transcript
#: (most are) is mapped and lower-cased in one pass, without a dict lookup per character.
#: Its whitespace (what ``str.split`` splits at) becomes a space, which changes nothing
#: once whitespace is collapsed, so that a mapped text holding no two spaces in a row and
#: none at an end is collapsed already.
_SPOKEN_ASCII = bytes(
    32 if chr(code).isspace() else
    ord((v if isinstance(v := _SPOKEN_MAP[code], str) else chr(v)).lower())
    for code in range(128)
) + bytes(range(128, 256))
_INNER_APOSTROPHE = re.compile(r"(?<=\w)['\u2019](?=\w)")
_CJK_SPACE = re.compile(r"(?<=[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]) +"
                        r"| +(?=[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff])")


def spoken_form(text: str, lang: str) -> str:
    """A transcript in the ``<|wo_itn|>`` style: lower case, no punctuation.

    The released model answers ``<|wo_itn|>`` prompts in this style (its README's base
    model example: LibriSpeech 1272-128104-0000 -> ``mister quilting is the apostle of the
    middle classes and we are glad to welcome his gospel``).  Rules: lower case; every
    Unicode punctuation character becomes a space, except an apostrophe between two
    letters (``don't``, ``aujourd'hui``; ``’`` is written ``'``); whitespace collapsed; for
    Chinese and Japanese no space is left next to a CJK character.  Digits, symbols
    (``$``, ``+``, ``°``) and the signs ``% & @`` that stand for words stay as written:
    spelling them out is language-specific and lossy, and the corpora that use this style
    write numbers as words (LibriSpeech, Aishell, Common Voice's sentence rules), so a
    digit is rare.
    """
    if "'" in text or "\u2019" in text:  # (the regex scan costs more than both checks)
        text = _INNER_APOSTROPHE.sub("\0", text)
    if text.isascii():
        out = text.encode("ascii").translate(_SPOKEN_ASCII).decode("ascii")
        if not out or "  " in out or out[0] == " " or out[-1] == " ":  # (else collapsed)
            out = " ".join(out.split())
    else:
        out = " ".join(text.translate(_SPOKEN_MAP).lower().split())
    if lang in UNSPACED_LANGUAGES:
        out = _CJK_SPACE.sub("", out)
    return out


# ---------------------------------------------------------------- parser
@dataclass(frozen=True)
class Parsed:
    """A prompt+target split back into its parts."""

    tags: tuple[str, ...]
    question: str | None
    target: str


def parse(text: str) -> Parsed:
    """Split ``prompt + target`` into the prompt's tags, the AQA question and the target.

    The prompt grammar is the release's: transcription tag, audio language, then either
    ``<|question|>`` text ``<|answer|>`` or a task tag, text language, timestamps tag
    (``<|timestamps|>`` is always followed by ``<|0.00|>``) and output instructions.
    Raises :class:`TagError` on anything else.
    """
    check_tokens(text)
    pos = 0

    def take(allowed: Iterable[str], what: str) -> str:
        nonlocal pos
        m = _TOKEN_RE.match(text, pos)
        if not m or m.group(0) not in allowed:
            found = m.group(0) if m else repr(text[pos : pos + 20])
            raise TagError(f"expected {what} at offset {pos}, found {found}")
        pos = m.end()
        return m.group(0)

    tags = [take(("<|startoftranscript|>", "<|startofanalysis|>"), "a transcription tag")]
    tags.append(take(_LANG_TAGS, "an audio language tag"))
    task_tags = ("<|transcribe|>", "<|translate|>", "<|caption|>", "<|keyword|>", "<|question|>")
    tags.append(take(task_tags, "a task tag"))
    if tags[-1] == "<|question|>":
        end = text.find("<|answer|>", pos)
        if end < 0:
            raise TagError("AQA prompt has <|question|> but no <|answer|>")
        question = text[pos:end]
        pos = end + len("<|answer|>")
        return Parsed(tuple([*tags, "<|answer|>"]), question, text[pos:])
    tags.append(take(_LANG_TAGS, "a text language tag"))
    tags.append(take(("<|timestamps|>", "<|notimestamps|>"), "a timestamps tag"))
    if tags[-1] == "<|timestamps|>":  # the released SRWT prompt ends with <|0.00|>
        tags.append(take((SRWT_START,), f"{SRWT_START} after <|timestamps|>"))
    while True:
        m = _TOKEN_RE.match(text, pos)
        if not m or m.group(0) not in OUTPUT_INSTRUCTIONS:
            break
        tags.append(m.group(0))
        pos = m.end()
    return Parsed(tuple(tags), None, text[pos:])


# ---------------------------------------------------------------- word timestamps (SRWT)
SIL = "<|sil|>"


def time_token(seconds: float) -> str:
    """The time token nearest to ``seconds`` (0.01 s steps, 0.00 to 30.00)."""
    i = round(seconds * 100)
    if not 0 <= i <= 3000:
        raise TagError(f"time {seconds:.3f} s is outside 0.00-30.00")
    return TIME_TOKENS[i]


def srwt_target(
    words: Sequence[tuple[str, float, float]],
    duration: float,
    sil_threshold: float = 0.2,
) -> str:
    """Write timed words as the target of :func:`srwt_prompt` (the continuation of its
    final ``<|0.00|>``).

    The timed transcript ``<|0.00|>`` + target starts at 0.00, as the released prompt
    does: a pause before the first word of at most ``sil_threshold`` seconds belongs to
    the first word, a longer one is ``<|sil|>``.  Neighbouring words share one boundary
    (the middle of any short gap between them); a gap longer than ``sil_threshold``
    between words or after the last one becomes ``<|sil|>`` between two time tokens, as in the
    released example ``<|0.00|><|sil|><|0.54|>面<|0.86|>条<|1.17|>`` (target:
    ``<|sil|><|0.54|>面<|0.86|>条<|1.17|>``).  The target has exactly as many time tokens
    as words (silences counted) and ends with one.
    """
    if not words:
        raise TagError("SRWT needs at least one word")
    end_of_clip = min(duration, MAX_AUDIO_SECONDS)
    cuts: list[float] = [0.0]  # boundaries, the prompt's 0.00 first; segments between them
    labels: list[str] = []
    prev_end = 0.0
    for i, (word, start, end) in enumerate(words):
        if not word.strip() or _TOKEN_RE.search(word):
            raise TagError(f"bad SRWT word {word!r}")
        if not (0.0 <= start <= end <= end_of_clip + 0.01):
            raise TagError(f"word {word!r} has times {start:.3f}-{end:.3f} outside the clip")
        if i and start < prev_end - 0.01:
            raise TagError(f"word {word!r} starts before the previous word ends")
        if start - prev_end > sil_threshold:  # a pause, the leading one included
            labels.append(SIL)
            cuts.append(start)
        elif i:
            cuts[-1] = (prev_end + start) / 2  # share one boundary with the previous word
        labels.append(word.strip())  # the first word takes a short leading pause
        cuts.append(end)
        prev_end = end
    if end_of_clip - prev_end > sil_threshold:
        labels.append(SIL)
        cuts.append(end_of_clip)
    ticks = [min(round(c * 100), round(end_of_clip * 100), 3000) for c in cuts]
    for j in range(1, len(ticks)):
        ticks[j] = max(ticks[j], ticks[j - 1])  # rounding never reverses order
    return "".join(f"{label}{TIME_TOKENS[tick]}"
                   for label, tick in zip(labels, ticks[1:], strict=True))


def parse_srwt(target: str) -> list[tuple[str, float, float]]:
    """Parse an SRWT target into ``(word, start, end)``; silences come back as ``<|sil|>``.

    ``target`` continues the prompt's ``<|0.00|>``, so the first segment starts at 0.00.
    Raises :class:`TagError` unless the target starts with a word (or ``<|sil|>``), ends
    with a time token, has a word between every two time tokens and times never
    decrease: the shape the released scorer reads.
    """
    check_tokens(target)
    if _TIME_RE.match(target.lstrip()):
        raise TagError("SRWT target starts with a time token, but the prompt already ends "
                       f"with {SRWT_START}: drop the leading time token (old format?)")
    parts = _TIME_RE.split(SRWT_START + target)
    # parts: ["", "0.00", seg0, t1, seg1, ..., tn, after]
    if len(parts) < 5 or parts[-1].strip():
        raise TagError(f"SRWT target must end with a time token: {target[-60:]!r}")
    times = [float(t) for t in parts[1::2]]
    segs = parts[2:-1:2]
    if any(not s.strip() for s in segs):
        raise TagError("SRWT target has two time tokens with no word between them")
    if any(b < a for a, b in pairwise(times)):
        raise TagError("SRWT times decrease")
    return [(s.strip(), times[i], times[i + 1]) for i, s in enumerate(segs)]
