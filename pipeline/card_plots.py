"""Pictures and per-corpus tables for the dataset card (``README.md``).

:func:`card_section` reads the JSON members of the finished shards (audio is not decoded),
draws a histogram of clip durations and the audio hours per task and language as PNG files
under ``images/`` of the output directory, and returns the Markdown that shows them, plus
tables of hours per task and language and of counts, licences and citations per source
corpus.  Drawing uses matplotlib's Agg canvas directly (no pyplot, no global state), and
the PNGs carry no timestamp or version, so the same shards give the same bytes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.reader import open_shards
from pipeline.recipe import CorpusInfo

IMAGES_DIR = "images"
DURATION_PNG = "duration_histogram.png"
HOURS_PNG = "hours_per_task_language.png"


@dataclass
class CardStats:
    """What the card pictures show, gathered from the samples' JSON."""

    durations: list[float] = field(default_factory=list)
    #: (task, audio language) -> seconds of clips that carry the task (each clip once)
    seconds: Counter[tuple[str, str]] = field(default_factory=Counter)
    clips: Counter[tuple[str, str]] = field(default_factory=Counter)
    corpus_samples: Counter[str] = field(default_factory=Counter)
    corpus_seconds: Counter[str] = field(default_factory=Counter)


#: What the card needs of one sample: duration, its tasks (sorted, each once), its audio
#: language and its source recipe.
SampleFacts = tuple[float, tuple[str, ...], str, str]


def shard_facts(shard: Path) -> list[SampleFacts]:
    """The :data:`SampleFacts` of the samples of one shard, in order (JSON members only)."""
    return [(s.duration, tuple(sorted({e["task"] for e in s.tasks})), s.language,
             s.source.get("recipe", "?"))
            for s in open_shards([shard], decode_audio=False)]


def gather(shards: Sequence[Path],
           facts: Callable[[Path], Sequence[SampleFacts]] = shard_facts) -> CardStats:
    """Durations and hours per task/language/corpus of the samples in ``shards``.

    ``facts`` reads one shard's :data:`SampleFacts` (a cache of them, for the picture
    helper that reads shards as they are written); the sums are taken in shard and sample
    order either way, so the figures are the same to the last bit."""
    stats = CardStats()
    for shard in shards:
        for duration, tasks, language, corpus in facts(shard):
            stats.durations.append(duration)
            for task in tasks:
                stats.seconds[(task, language)] += duration
                stats.clips[(task, language)] += 1
            stats.corpus_samples[corpus] += 1
            stats.corpus_seconds[corpus] += duration
    return stats


def _save(fig: object, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # type: ignore[arg-type]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})  # type: ignore[attr-defined]
    tmp.replace(path)


def plot_durations(durations: Sequence[float], path: Path) -> None:
    """Histogram of clip durations (0 to 30 s in 1 s bins) as a PNG at ``path``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.2))
    ax = fig.add_subplot()
    ax.hist(list(durations), bins=list(range(31)), color="#4477aa", edgecolor="white")
    ax.set_xlabel("clip duration (s)")
    ax.set_ylabel("clips")
    ax.set_title(f"Clip durations ({len(durations)} clips)")
    fig.tight_layout()
    _save(fig, path)


def plot_hours(seconds: Mapping[tuple[str, str], float], path: Path) -> None:
    """Horizontal bars of audio hours per task, one colour per audio language."""
    from matplotlib.figure import Figure

    tasks = sorted({t for t, _ in seconds})
    langs = sorted({lang for _, lang in seconds})
    fig = Figure(figsize=(6, 1.2 + 0.45 * len(tasks) * max(1, len(langs)) ** 0.5))
    ax = fig.add_subplot()
    height = 0.8 / max(1, len(langs))
    for j, lang in enumerate(langs):
        ys = [i + j * height for i in range(len(tasks))]
        ax.barh(ys, [seconds.get((t, lang), 0.0) / 3600 for t in tasks], height=height,
                label=lang)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(tasks))], tasks)
    ax.set_xlabel("audio hours")
    ax.set_title("Hours per task and audio language")
    ax.legend(title="language", fontsize="small")
    fig.tight_layout()
    _save(fig, path)


def _citation_key(citation: str) -> str:
    match = re.search(r"@\w+\{([^,\s]+),", citation)
    return f"`{match.group(1)}`" if match else "-"


def _tables(stats: CardStats, corpora: Mapping[str, CorpusInfo]) -> list[str]:
    lines = ["## Hours per task and language", "",
             "Audio hours of the clips that carry each task (a clip counts once per task, "
             "however many entries it has); language is the audio language.", "",
             "| task | language | clips | hours |", "|---|---|---|---|"]
    for task, lang in sorted(stats.seconds):
        lines.append(f"| {task} | {lang} | {stats.clips[(task, lang)]} | "
                     f"{stats.seconds[(task, lang)] / 3600:.4f} |")
    lines += ["", "## Source corpora", "", "| corpus | samples | hours | licence | citation |",
              "|---|---|---|---|---|"]
    for name in sorted(stats.corpus_samples):
        info = corpora.get(name)
        licence = info.licence if info else "unknown"
        cite = _citation_key(info.citation) if info else "-"
        lines.append(f"| {info.title if info else name} | {stats.corpus_samples[name]} | "
                     f"{stats.corpus_seconds[name] / 3600:.4f} | {licence} | {cite} |")
    return lines


def card_section(out_dir: Path, shards: Sequence[Path],
                 corpora: Mapping[str, CorpusInfo], draw: bool = True,
                 facts: Callable[[Path], Sequence[SampleFacts]] = shard_facts) -> list[str]:
    """Draw the card's PNGs into ``out_dir/images`` and return the Markdown lines for them.

    ``shards`` are the finished shard files; ``corpora`` maps a recipe name (the samples'
    ``source.recipe``) to its :class:`CorpusInfo` for licences and citations.  With
    ``draw=False`` (``card_pictures=false``) only the tables are made (no matplotlib).
    ``facts``: see :func:`gather`.
    """
    stats = gather(shards, facts)
    if not stats.durations:
        return ["## Pictures", "", "No samples were written, so there is nothing to draw.", ""]
    total = sum(stats.durations) / 3600
    head = [f"{len(stats.durations)} clips, {total:.4f} h of audio.", ""]
    if draw:
        images = out_dir / IMAGES_DIR
        plot_durations(stats.durations, images / DURATION_PNG)
        plot_hours(stats.seconds, images / HOURS_PNG)
        head = ["## Pictures", "",
                f"![Histogram of clip durations]({IMAGES_DIR}/{DURATION_PNG})", "",
                f"![Audio hours per task and language]({IMAGES_DIR}/{HOURS_PNG})", "", *head]
    return [*head, *_tables(stats, corpora), ""]
