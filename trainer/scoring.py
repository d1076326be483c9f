"""Per-task scores computed the way Qwen-Audio's released scorers (``eval_audio/*.py``) do.

Each scorer follows one release script, so its figures can be set beside the paper's:

* ASR (``evaluate_asr.py``): special tokens become spaces, spaces collapse, no space is
  left before ``!,.?;:``; then the text is lower-cased and split on whitespace (the
  release's ``EvaluationTokenizer(tokenizer_type="none", lowercase=True)``: with the
  sacrebleu 1.5.1 that its EVALUATION.md pins, ``none`` leaves the text as it is; no
  punctuation removal, no Whisper normalizer).  Chinese is scored per character with all
  spaces removed.  WER = edit distances (``editdistance``) summed / reference units summed.
* S2TT (``evaluate_st.py``): ``sacrebleu.corpus_bleu`` per language pair, tokenized
  ``ja-mecab`` for Japanese, ``zh`` for Chinese and ``13a`` otherwise (by target language).
* Label tasks and AQA (``evaluate_scene.py``, ``evaluate_emotion.py``,
  ``evaluate_vocal_sound.py``, ``evaluate_aqa.py``): exact string match of the stripped
  prediction (``accuracy``); ``accuracy_normalized`` (case and punctuation ignored) is ours,
  a second column.  AQA adds the release's accuracy over yes/no questions.
* MNA (``evaluate_note_analysis.py``): see :func:`note_fields`.
* SRWT (``evaluate_srwt.py``): see :func:`srwt_shift` and :func:`average_shift`.
* Captions (AAC, music captions): multi-reference BLEU-4, a documented substitute for the
  release's SPIDEr (CIDEr + SPICE need Java).

Rows passed to :func:`score_task` hold ``key``, ``reference`` and ``prediction``, and may
hold the ``prompt``: its language tags choose the ASR units and the BLEU tokenizer, and
S2TT is scored per language pair (``bleu_<src>_<tgt>``) as the release reports it.  Without
it the reference's script decides (kana -> ``ja``, other CJK -> ``zh``), and S2TT is
scored per tokenizer (``bleu``, or ``bleu_13a``/``bleu_zh``/``bleu_ja-mecab`` when mixed).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

import editdistance
import sacrebleu

from pipeline.tags import SRWT_START, TagError, parse

_PUNCT = re.compile(r"[^\w\s']|_")
_CJK = re.compile(r"[\u3400-\u9fff]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_SPECIAL = re.compile(r"<\|.*?\|>")
_SPACE_BEFORE_PUNC = re.compile(r" ?([!,.?;:])")

LABEL_TASKS = ("asc", "ser", "vsc", "sec", "mgr", "aqa")
CAPTION_TASKS = ("aac", "mc")


def normalize(text: str) -> str:
    """Lower case, no punctuation, single spaces (the ``accuracy_normalized`` column)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


# ---------------------------------------------------------------- ASR
def release_text(text: str, lang: str) -> str:
    """``evaluate_asr.py``'s ``remove_sp``: special tokens -> spaces, spaces collapsed, no
    space before ``!,.?;:``, leading spaces dropped; for Chinese no spaces at all."""
    text = _SPECIAL.sub(" ", text)
    text = re.sub(r"\s+", " ", text)
    text = _SPACE_BEFORE_PUNC.sub(r"\1", text).lstrip(" ")
    return re.sub(r"\s+", "", text) if lang == "zh" else text


def _units(text: str, lang: str) -> list[str]:
    """Scoring units of ``compute_wer``: lower-cased words; characters for Chinese."""
    items = text.lower().split()
    return list("".join(items)) if lang == "zh" else items


def _script_lang(text: str) -> str:
    """Language guessed from the script when no prompt says it: ``ja``, ``zh`` or ``en``."""
    return "ja" if _KANA.search(text) else "zh" if _CJK.search(text) else "en"


def wer(refs: Sequence[str], hyps: Sequence[str], langs: Sequence[str] | None = None) -> float:
    """Corpus WER as ``evaluate_asr.py`` computes it (characters for ``zh``).

    ``langs``: the audio language of each row (default: guessed from the reference).
    """
    langs = list(langs) if langs is not None else [_script_lang(r) for r in refs]
    edits = units = 0
    for r, h, lang in zip(refs, hyps, langs, strict=True):
        ru, hu = _units(release_text(r, lang), lang), _units(release_text(h, lang), lang)
        edits += editdistance.eval(ru, hu)
        units += len(ru)
    return edits / units if units else float("nan")


# ---------------------------------------------------------------- S2TT and captions
def bleu_tokenizer(tgt_lang: str) -> str:
    """``evaluate_st.py``'s sacrebleu tokenizer for a target language."""
    return {"ja": "ja-mecab", "zh": "zh"}.get(tgt_lang, "13a")


def bleu(refs: Sequence[Sequence[str]], hyps: Sequence[str], tokenize: str | None = None
         ) -> float:
    """Corpus BLEU-4 (0-100) with sacrebleu; several references per line allowed.

    ``tokenize`` defaults to the tokenizer of the references' script (kana -> ``ja-mecab``,
    other CJK -> ``zh``, else ``13a``).
    """
    if not hyps:
        return 0.0
    if tokenize is None:
        tokenize = bleu_tokenizer(_script_lang(" ".join(r for rs in refs for r in rs)))
    width = max(len(rs) for rs in refs)
    streams = [[rs[i] if i < len(rs) else None for rs in refs] for i in range(width)]
    return float(sacrebleu.corpus_bleu(list(hyps), streams, tokenize=tokenize).score)


# ---------------------------------------------------------------- label tasks and AQA
def accuracy(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """The release's ``accuracy_score``: exact string match (predictions stripped)."""
    ok = sum(r == h.strip() for r, h in zip(refs, hyps, strict=True))
    return ok / len(refs) if refs else float("nan")


def accuracy_normalized(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Share of matches after :func:`normalize` (ours; case and punctuation ignored)."""
    ok = sum(normalize(r) == normalize(h) for r, h in zip(refs, hyps, strict=True))
    return ok / len(refs) if refs else float("nan")


# ---------------------------------------------------------------- SRWT
def _timed_words(text: str) -> list[tuple[str, float, float]]:
    """``evaluate_srwt.py``'s ``read_timestamps`` of one full timed transcript: the segments
    between time tokens, each with its two times (text before the first and after the
    last time token is ignored)."""
    times = [float(t[2:-2]) for t in re.findall(r"<\|\d{1,2}\.\d+\|>", text)]
    words = re.split(r"<\|\d{1,2}\.\d+\|>", text)[1:-1]
    return [(w, times[i], times[i + 1]) for i, w in enumerate(words)]


def match_words(ref: Sequence[str], hyp: Sequence[str]) -> list[tuple[int, int]]:
    """Index pairs of equal words on a minimum edit-distance path, ties broken as the
    ``edit_distance`` package's ``SequenceMatcher`` breaks them (match or substitution,
    then insertion, then deletion), which the release uses to pair words."""
    m, n = len(ref), len(hyp)
    cost = [[i + j if i == 0 or j == 0 else 0 for j in range(n + 1)] for i in range(m + 1)]
    move = [["d" if j == 0 else "i" for j in range(n + 1)] for i in range(m + 1)]
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            diag = cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1])
            best = min(diag, cost[i][j - 1] + 1, cost[i - 1][j] + 1)
            cost[i][j] = best
            move[i][j] = "s" if diag == best else "i" if cost[i][j - 1] + 1 == best else "d"
    pairs, i, j = [], m, n
    while i or j:
        step = move[i][j]
        if step == "s":
            if ref[i - 1] == hyp[j - 1]:
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif step == "i":
            j -= 1
        else:
            i -= 1
    return pairs[::-1]


def shift_totals(ref_words: Sequence[tuple[str, float, float]],
                 hyp_words: Sequence[tuple[str, float, float]]) -> tuple[float, int]:
    """Summed shift (s) and number of matched words: per matched word (``<|sil|>``
    segments included, as the release counts them) ``|start error| + |end error|``."""
    pairs = match_words([w for w, _, _ in ref_words], [w for w, _, _ in hyp_words])
    total = sum(abs(ref_words[i][1] - hyp_words[j][1]) + abs(ref_words[i][2] - hyp_words[j][2])
                for i, j in pairs)
    return total, len(pairs)


def average_shift(ref_words: Sequence[tuple[str, float, float]],
                  hyp_words: Sequence[tuple[str, float, float]]) -> float:
    """The release's average shift (seconds) of one word list against another: words are
    paired by edit distance, and each pair counts ``|start error| + |end error|``; the
    mean over pairs (NaN when no word matches)."""
    total, n = shift_totals(ref_words, hyp_words)
    return total / n if n else float("nan")


def srwt_shift(refs: Sequence[str], hyps: Sequence[str], langs: Sequence[str] | None = None
               ) -> dict[str, float]:
    """``evaluate_srwt.py``'s AAS (in ms) and WER of SRWT targets and predictions.

    Both are continuations of the prompt's ``<|0.00|>``, which is put back in front of
    each, so the first segment keeps its start (the release's script reads its decoded
    continuation alone and so loses the first predicted word: the one place this differs).
    AAS sums the shifts of all utterances and divides by all matched words; an utterance
    without a matched word is left out, and ``coverage`` is the share of utterances used.
    """
    total, words, used = 0.0, 0, 0
    for r, h in zip(refs, hyps, strict=True):
        shift, n = shift_totals(_timed_words(SRWT_START + r), _timed_words(SRWT_START + h))
        if n:
            total, words, used = total + shift, words + n, used + 1
    return {"aas_ms": 1000 * total / words if words else float("nan"),
            "coverage": used / len(refs) if refs else float("nan"),
            "wer": wer(refs, hyps, langs)}


# ---------------------------------------------------------------- MNA
#: NSynth's sonic qualities, the labels ``evaluate_note_analysis.py`` keeps.
SONIC_LABELS = frozenset({"bright", "dark", "distortion", "fast_decay", "long_release",
                          "multiphonic", "nonlinear_env", "percussive", "reverb",
                          "tempo-synced"})


def note_info(text: str) -> tuple[int, int, str, list[str]]:
    """Pitch, velocity (128 when absent or unreadable), instrument (text after
    ``<|instrument|>`` up to the next ``<``) and known sonic labels (``", "``-separated)."""
    def number(tag: str) -> int:
        m = re.search(rf"<\|{tag}\|><\|midi_{tag}_(.*?)\|>", text)
        try:
            return int(m.group(1)) if m else 128
        except ValueError:
            return 128

    def after(tag: str) -> str:
        m = re.search(rf"<\|{tag}\|>(.*)", text)
        return m.group(1).split("<")[0] if m else ""

    sonic = [q for q in after("sonic").split(", ") if q in SONIC_LABELS]
    return number("pitch"), number("velocity"), after("instrument"), sonic


def _binary_ap(truth: Sequence[int], pred: Sequence[int]) -> float:
    """scikit-learn's average precision of 0/1 scores: two thresholds, or none positive."""
    pos = sum(truth)
    if not pos:
        return 0.0
    hit = sum(t and p for t, p in zip(truth, pred, strict=True))
    said = sum(pred)
    if said == 0 or said == len(pred):
        return pos / len(truth)
    recall = hit / pos
    return recall * hit / said + (1 - recall) * pos / len(truth)


def note_fields(refs: Sequence[str], hyps: Sequence[str]) -> dict[str, float]:
    """``evaluate_note_analysis.py``'s scores of note analysis.

    ``pitch_acc``: exact pitch (top-1 over one-hot pitches).  ``pitch_chroma_acc``: as the
    release computes it, on the index of each pitch among the distinct pitches seen in
    references and predictions (``MultiLabelBinarizer`` columns) modulo 12, which equals
    the musical chroma when the pitches seen form one unbroken range.  ``velocity_acc``,
    ``instrument_acc``: exact match.  ``sonic_map``: macro average precision of the 0/1
    sonic-quality labels over every label seen in references or predictions.
    """
    if not refs:
        return {}
    r_info, h_info = [note_info(r) for r in refs], [note_info(h) for h in hyps]
    n = len(refs)
    rank = {p: i for i, p in enumerate(sorted({x[0] for x in r_info + h_info}))}
    labels = sorted({q for x in r_info + h_info for q in x[3]})
    aps = [_binary_ap([int(q in r[3]) for r in r_info], [int(q in h[3]) for h in h_info])
           for q in labels]
    return {
        "pitch_acc": sum(r[0] == h[0] for r, h in zip(r_info, h_info, strict=True)) / n,
        "pitch_chroma_acc": sum(rank[r[0]] % 12 == rank[h[0]] % 12
                                for r, h in zip(r_info, h_info, strict=True)) / n,
        "velocity_acc": sum(r[1] == h[1] for r, h in zip(r_info, h_info, strict=True)) / n,
        "instrument_acc": sum(r[2] == h[2] for r, h in zip(r_info, h_info, strict=True)) / n,
        "sonic_map": sum(aps) / len(aps) if aps else float("nan"),
    }


# ---------------------------------------------------------------- dispatch
def _prompt_langs(row: dict[str, str]) -> tuple[str, str] | None:
    """``(audio language, text language)`` from the row's prompt, if it has one."""
    try:
        tags = parse(row["prompt"]).tags if row.get("prompt") else None
    except TagError:
        return None
    if not tags or tags[0] != "<|startoftranscript|>":
        return None
    return tags[1][2:-2], tags[3][2:-2]


def score_task(task: str, rows: Sequence[dict[str, str]]) -> dict[str, float]:
    """Scores of one task; ``rows`` hold ``key``, ``reference``, ``prediction`` and
    optionally ``prompt``."""
    refs = [r["reference"] for r in rows]
    hyps = [r["prediction"] for r in rows]
    langs = [_prompt_langs(r) for r in rows]
    audio = [lg[0] if lg else _script_lang(r) for lg, r in zip(langs, refs, strict=True)]
    if task == "asr":
        out = {"wer": wer(refs, hyps, audio)}
        if len(set(audio)) > 1:  # the release reports each corpus (language) apart
            for lang in sorted(set(audio)):
                pick = [i for i, a in enumerate(audio) if a == lang]
                out[f"wer_{lang}"] = wer([refs[i] for i in pick], [hyps[i] for i in pick],
                                         [lang] * len(pick))
        return out
    if task == "s2tt":  # per language pair; without a prompt, per tokenizer of the script
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, (lg, r) in enumerate(zip(langs, refs, strict=True)):
            groups[lg or ("", bleu_tokenizer(_script_lang(r)))].append(i)
        out = {}
        for (src, tgt), pick in sorted(groups.items()):
            name = (f"bleu_{src}_{tgt}" if src else "bleu" if len(groups) == 1
                    else f"bleu_{tgt}")
            out[name] = bleu([[refs[i]] for i in pick], [hyps[i].strip() for i in pick],
                             bleu_tokenizer(tgt) if src else tgt)
        return out
    if task == "srwt":
        return srwt_shift(refs, hyps, audio)
    if task == "mna":
        return note_fields(refs, hyps)
    if task in CAPTION_TASKS:  # one prediction per clip against all its captions
        by_key: dict[str, list[str]] = defaultdict(list)
        pred: dict[str, str] = {}
        for r in rows:
            by_key[r["key"]].append(r["reference"])
            pred.setdefault(r["key"], r["prediction"])
        return {"bleu4": bleu([by_key[k] for k in pred], list(pred.values()))}
    out = {"accuracy": accuracy(refs, hyps), "accuracy_normalized": accuracy_normalized(refs, hyps)}
    yes_no = [i for i, r in enumerate(refs) if r.lower() in ("yes", "no")]
    if task == "aqa" and yes_no:
        out["accuracy_yes_no"] = accuracy([refs[i] for i in yes_no], [hyps[i] for i in yes_no])
    return out

