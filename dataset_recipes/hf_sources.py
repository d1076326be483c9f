"""``SOURCE=hf``: corpora read from Hugging Face datasets instead of the original archives.

:data:`LAYOUTS` maps a recipe name to the column layout of the popular hub versions and
turns each row into the same :class:`~pipeline.record.Record` the raw recipe makes (same
key, split, labels, language), using the raw recipe's own label helpers.  Only ``source``
(``<hf>:<split>[<row>]``, to find the row) and ``audio`` differ.

Audio: the driver writes each row's stored audio bytes (no decoding) to
``<out>/.hf_audio/<split>/<key>.<ext>``; build workers decode those files like any corpus
file.  The Ray build already needs ``<out>`` on storage that every worker sees (they write
the shards there), so this works unchanged on a cluster.  Reruns reuse the files.

Column layouts (the popular hub versions; an unknown layout fails listing found/expected):

* librispeech - openslr/librispeech_asr: ``id, text, audio`` (also has ``file, speaker_id,
  chapter_id``); splits ``validation.clean`` (config ``all``) or ``validation`` in config
  folder ``clean`` become ``dev-clean``, ``train.clean.100`` -> ``train-clean-100``, ...
* clotho - copies keeping the official CSV columns: ``file_name, caption_1..caption_5,
  audio``; splits train/validation/test (or development/validation/evaluation).
* esc50 - ashraq/esc50: ``filename, fold, category, audio``; one split, rows go to
  ``fold<N>`` like the raw recipe.
* gtzan - marsyas/gtzan: ``file, genre`` (ClassLabel), ``audio``; the fault-filtered split.
* nsynth - conversions keeping examples.json's fields: ``note_str, pitch, velocity,
  instrument_family_str, qualities_str, audio``.
* covost2 - facebook/covost2 (loaded with its Common Voice folder, then ``save_to_disk``):
  ``file, sentence, translation, audio``; the pair comes from the config ``<src>_<tgt>``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dataset_recipes import clotho, covost2, esc50, get_recipe, gtzan, librispeech, nsynth
from dataset_recipes.common import source_key
from pipeline.hf import HFSourceError, HFSplit, open_hf, write_audio
from pipeline.recipe import Recipe
from pipeline.record import Label, Record, Reject

#: Folder of ``<out>`` where the audio of HF rows is written.
HF_AUDIO_DIR = ".hf_audio"


@dataclass(frozen=True)
class Row:
    """One dataset row with what a layout needs to map it."""

    data: dict[str, Any]
    split: str  # the recipe's split name
    hf_split: HFSplit
    source: str

    def name_of(self, column: str) -> str:
        """A string column, or the class name of a ``ClassLabel`` column."""
        value = self.data[column]
        names = self.hf_split.class_names(column)
        return names[value] if names is not None and isinstance(value, int) else str(value)


@dataclass(frozen=True)
class HFLayout:
    """Columns of a corpus's hub versions and how a row becomes a record (audio left empty)."""

    columns: tuple[str, ...]
    split: Callable[[HFSplit], str]
    record: Callable[[Row], Record | Reject]
    audio: str = "audio"
    hub_ids: tuple[str, ...] = ()


def _rec(name: str, row: Row, key: str, language: str, labels: tuple[Label, ...],
         **kw: Any) -> Record:
    """A record keyed as the raw recipe keys the same item (:func:`source_key`)."""
    return Record(name, row.split, source_key(key), "", row.source, language, labels, **kw)


# ------------------------------------------------------------------ per corpus
def _librispeech_split(s: HFSplit) -> str:
    parts = s.name.replace("validation", "dev").replace(".", "-").split("-")
    if len(parts) == 1 or parts[1] not in ("clean", "other"):
        cond = s.config if s.config in ("clean", "other") else None
        if cond is None and parts[1:] in (["100"], ["360"]):
            cond = "clean"
        elif cond is None and parts[1:] == ["500"]:
            cond = "other"
        if cond:
            parts.insert(1, cond)
    return "-".join(parts)


def _librispeech(row: Row) -> Record:
    text = librispeech.asr_text(str(row.data["text"]))  # the raw recipe's <|wo_itn|> style
    return _rec("librispeech", row, str(row.data["id"]), "en",
                (Label.make("asr", text, lang="en"),), align=True)


_CLOTHO_SPLITS = {"train": "development", "development": "development", "dev": "development",
                  "validation": "validation", "valid": "validation", "val": "validation",
                  "test": "evaluation", "evaluation": "evaluation", "eval": "evaluation"}


def _clotho(row: Row) -> Record | Reject:
    labels = tuple(Label.make("aac", " ".join(str(row.data[c] or "").split()))
                   for c in clotho.CAPTIONS if str(row.data[c] or "").strip())
    if not labels:
        return Reject("clotho", row.split, row.source, "all five captions are empty")
    return _rec("clotho", row, Path(str(row.data["file_name"])).stem, "unknown", labels)


def _esc50(row: Row) -> Record | Reject:
    fold = int(row.data["fold"])
    split = f"fold{fold}"
    category = row.name_of("category")
    if category not in esc50.CATEGORIES:
        return Reject("esc50", split, row.source, f"unknown category {category!r}")
    rec = _rec("esc50", row, Path(str(row.data["filename"])).stem, "unknown",
               (Label.make("sec", esc50.label_text(category)),), meta=(("fold", fold),))
    return dataclasses.replace(rec, split=split)


def _gtzan(row: Row) -> Record | Reject:
    genre = row.name_of("genre")
    stem = Path(str(row.data["file"])).stem  # e.g. blues.00012
    m = re.fullmatch(r"([a-z]+)\.(\d{5})", stem)
    if genre not in gtzan.GENRES or not m or m.group(1) != genre:
        return Reject("gtzan", "unknown", row.source,
                      f"file {stem!r} / genre {genre!r} is not '<genre>.000NN' of a GTZAN genre")
    split = gtzan.SPLIT_OF.get((genre, int(m.group(2))))
    if split is None:
        return Reject("gtzan", "excluded", row.source, "left out by the fault-filtered split "
                      "(Kereliuk et al. 2015: repetition, mislabeling or distortion)")
    rec = _rec("gtzan", row, f"{m.group(1)}_{m.group(2)}", "unknown",  # the raw recipe's key
               (Label.make("mgr", gtzan.LABELS[genre]),))
    return dataclasses.replace(rec, split=split)


def _nsynth(row: Row) -> Record | Reject:
    entry = {k: row.data[k] for k in ("note_str", "pitch", "velocity")}
    entry["instrument_family_str"] = row.name_of("instrument_family_str")
    entry["qualities_str"] = list(row.data["qualities_str"] or [])
    try:
        target = nsynth.target(entry)
    except ValueError as err:
        return Reject("nsynth", row.split, row.source, f"{entry['note_str']}: {err}")
    return _rec("nsynth", row, str(entry["note_str"]), "unknown", (Label.make("mna", target),))


def _covost2(row: Row) -> Record | Reject:
    pair = (row.hf_split.config or "").split("_")
    if len(pair) != 2:
        raise HFSourceError(f"covost2: cannot tell the language pair of split "
                            f"{row.hf_split.name!r}: its config is {row.hf_split.config!r}, "
                            "expected '<src>_<tgt>' (e.g. fr_en); save the dataset loaded with "
                            "that config, or put its parquet files in a folder named so")
    src, tgt = ("zh-CN" if p == "zh" else p for p in pair)
    if src not in covost2.TOKENS or tgt not in covost2.TOKENS:
        return Reject("covost2", row.split, row.source, f"language pair {src}_{tgt} has no "
                      f"Qwen-Audio token (tokens exist for {', '.join(covost2.TOKENS)})")
    lang, out = covost2.TOKENS[src], covost2.TOKENS[tgt]
    labels = (Label.make("asr", covost2.asr_text(str(row.data["sentence"]), lang), lang=lang),
              Label.make("s2tt", " ".join(str(row.data["translation"]).split()),
                         src_lang=lang, tgt_lang=out))
    return _rec("covost2", row, Path(str(row.data["file"])).stem, lang, labels)


def _named(table: dict[str, str]) -> Callable[[HFSplit], str]:
    return lambda s: table.get(s.name, s.name.replace(".", "-"))


#: Recipe name -> the column layout of its hub versions.
LAYOUTS: dict[str, HFLayout] = {
    "librispeech": HFLayout(("id", "text"), _librispeech_split, _librispeech,
                            hub_ids=("openslr/librispeech_asr",)),
    "clotho": HFLayout(("file_name", *clotho.CAPTIONS), _named(_CLOTHO_SPLITS), _clotho),
    "esc50": HFLayout(("filename", "fold", "category"), _named({}), _esc50,
                      hub_ids=("ashraq/esc50",)),
    "gtzan": HFLayout(("file", "genre"), _named({}), _gtzan, hub_ids=("marsyas/gtzan",)),
    "nsynth": HFLayout(("note_str", "pitch", "velocity", "instrument_family_str",
                        "qualities_str"), _named({"train": "nsynth-train",
                                                  "validation": "nsynth-valid",
                                                  "valid": "nsynth-valid",
                                                  "test": "nsynth-test"}), _nsynth),
    "covost2": HFLayout(("file", "sentence", "translation"),
                        _named({"validation": "dev"}), _covost2,
                        hub_ids=("facebook/covost2",)),
}


def _check_columns(name: str, layout: HFLayout, spec: str, split: HFSplit) -> None:
    wanted = (*layout.columns, layout.audio)
    missing = [c for c in wanted if c not in split.columns]
    if missing:
        hubs = f" (the layout of {', '.join(layout.hub_ids)})" if layout.hub_ids else ""
        raise HFSourceError(
            f"hf={spec}: split {split.name!r} has columns {list(split.columns)}; recipe {name} "
            f"expects {list(wanted)}{hubs}; missing {missing}. Rename the columns "
            "(ds.rename_column) or use a hub version with this layout.")


def _prepare(name: str, spec: str, audio_dir: Path) -> Iterator[Record | Reject]:
    layout = LAYOUTS[name]
    label, splits = open_hf(spec)
    for split in splits:
        _check_columns(name, layout, spec, split)
    for split in splits:
        recipe_split = layout.split(split)
        rows = tqdm(split.rows(), total=split.num_rows, unit="row", leave=False,
                    desc=f"{name} {split.name}: audio -> {audio_dir}")
        for i, data in enumerate(rows):
            row = Row(data, recipe_split, split, f"{label}:{split.name}[{i}]")
            item = layout.record(row)
            if isinstance(item, Reject):
                yield item
                continue
            try:
                path = write_audio(data[layout.audio], audio_dir / item.split / item.key)
            except HFSourceError as err:
                yield Reject(name, item.split, row.source, str(err), stage="audio", key=item.key)
                continue
            yield dataclasses.replace(item, audio=str(path.resolve()))


def hf_recipe(name: str, spec: str) -> Recipe:
    """Recipe ``name`` reading the Hugging Face dataset ``spec`` (hub id or local folder).

    Its ``prepare(audio_dir)`` writes each row's audio under ``audio_dir`` (pass
    ``<out>/.hf_audio``) and yields records like the raw recipe's.
    """
    base = get_recipe(name)
    if name not in LAYOUTS:
        raise HFSourceError(f"recipe {name} has no Hugging Face layout; source=hf works for "
                         f"{', '.join(sorted(LAYOUTS))}")
    return Recipe(info=base.info, locate=lambda p: Path(p),
                  prepare=lambda audio_dir: _prepare(name, spec, Path(audio_dir)),
                  make_sample=base.make_sample)
