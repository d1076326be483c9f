"""Sample keys are one to one with source items (issue 11, item 1).

Every recipe that makes keys by sanitizing a name (``dataset_recipes.common.source_key``)
gets two items whose names sanitize alike (Clotho's ``Car Keys.wav`` and ``Car_Keys.wav``):
both become records with distinct keys, the name that is already a key keeps it, the other
gets the documented hash suffix.  An item listed twice stays a duplicate-key reject of the
build, naming the label file and the line of both listings.  (VocalSound, GTZAN, MELD,
LibriSpeech and AISHELL-1 take only names of a fixed pattern that is already key-safe, or
make the key from it, so nothing can collide there.)
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from recipe_helpers import parse_corpus

from dataset_recipes import RECIPES
from dataset_recipes.common import source_key
from pipeline.build import collect
from pipeline.record import Reject


def _h(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:8]


def _touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def _csv(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _clotho(raw: Path, names: list[str]) -> None:
    _csv(raw / "clotho_captions_development.csv", ["file_name,caption_1,caption_2,caption_3,"
         "caption_4,caption_5", *(f"{n},a,b,c,d,e" for n in names)])
    _touch(*(raw / "development" / n for n in names))


def _clotho_aqa(raw: Path, names: list[str]) -> None:
    _csv(raw / "clotho_aqa_train.csv", ["file_name,QuestionText,answer,confidence",
                                        *(f"{n},Is it loud?,yes,yes" for n in names)])
    _touch(*(raw / "audio_files" / n for n in names))


def _nsynth(raw: Path, names: list[str]) -> None:
    entry = ('{{"note_str": "{0}", "pitch": 60, "velocity": 100, "instrument_family_str": '
             '"bass", "qualities_str": []}}')
    body = ",\n".join(f'  "{n}": {entry.format(n)}' for n in names)
    _csv(raw / "nsynth-valid" / "examples.json", ["{", body, "}"])
    _touch(*(raw / "nsynth-valid" / "audio" / f"{n}.wav" for n in names))


def _esc50(raw: Path, names: list[str]) -> None:
    root = raw / "ESC-50-master"
    _csv(root / "meta" / "esc50.csv", ["filename,fold,target,category,esc10,src_file,take",
                                       *(f"{n},1,0,dog,True,1,A" for n in names)])
    _touch(*(root / "audio" / n for n in names))


def _segments(raw: Path, names: list[str]) -> None:  # AudioSet
    _csv(raw / "class_labels_indices.csv", ["index,mid,display_name", '0,/m/09x0r,"Speech"'])
    _csv(raw / "eval_segments.csv", ["# YTID, start_seconds, end_seconds, positive_labels",
                                     *(f'{n}, 0.000, 10.000, "/m/09x0r"' for n in names)])
    _touch(*(raw / "audio" / "eval" / f"{n}.wav" for n in names))


def _musiccaps(raw: Path, names: list[str]) -> None:
    _csv(raw / "musiccaps-public.csv", ["ytid,start_s,end_s,audioset_positive_labels,"
         "aspect_list,caption,author_id,is_balanced_subset,is_audioset_eval",
         *(f"{n},0,10,/m/04rlf,[],A calm song.,1,False,False" for n in names)])
    _touch(*(raw / "audio" / f"{n}.wav" for n in names))


def _cochlscene(raw: Path, names: list[str]) -> None:
    _touch(*(raw / "CochlScene" / "Train" / "Bus" / n for n in names))


def _tut2017(raw: Path, names: list[str]) -> None:
    dev = raw / "TUT-acoustic-scenes-2017-development"
    _csv(dev / "meta.txt", [f"audio/{n}\tbeach\tx" for n in dict.fromkeys(names)])
    _csv(dev / "evaluation_setup" / "fold1_train.txt", [f"audio/{n}\tbeach" for n in names])
    _csv(dev / "evaluation_setup" / "fold1_evaluate.txt", [])
    _touch(*(dev / "audio" / n for n in names))


def _covost2(raw: Path, names: list[str]) -> None:
    lang = raw / "en"
    _csv(lang / "validated.tsv", ["client_id\tpath\tsentence", *(f"c\t{n}\tHello." for n in
                                                                 dict.fromkeys(names))])
    _csv(lang / "covost_v2.en_de.tsv", ["path\tsentence\ttranslation\tsplit",
                                         *(f"{n}\tHello.\tHallo.\ttrain" for n in names)])
    _touch(*(lang / "clips" / n for n in names))


def _lhotse(raw: Path, names: list[str]) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    with gzip.open(raw / "x_recordings_train.jsonl.gz", "wt") as f:
        for i in range(len(names)):
            f.write(json.dumps({"id": f"r{i}", "sources": [{"type": "file", "channels": [0],
                    "source": f"audio/r{i}.wav"}], "sampling_rate": 16000,
                    "num_samples": 16000, "duration": 1.0}) + "\n")
    with gzip.open(raw / "x_supervisions_train.jsonl.gz", "wt") as f:
        for i, n in enumerate(names):
            f.write(json.dumps({"id": n, "recording_id": f"r{i}", "start": 0.0,
                                "duration": 1.0, "channel": 0, "text": "HELLO",
                                "language": "English"}) + "\n")
    _touch(*(raw / "audio" / f"r{i}.wav" for i in range(len(names))))


def _manifest(raw: Path, names: list[str]) -> None:
    rows = [json.dumps({"audio": n, "task": "asr", "text": "hello", "language": "en"})
            for n in names]
    _csv(raw / "manifest.jsonl", rows)
    _touch(*(raw / n for n in names))


Writer = Callable[[Path, list[str]], None]
#: recipe -> (corpus writer, two names that sanitize alike, the item name each key hashes)
CASES: dict[str, tuple[Writer, list[str], list[str]]] = {
    "clotho": (_clotho, ["Car Keys.wav", "Car_Keys.wav"], ["Car Keys", "Car_Keys"]),
    "clotho_aqa": (_clotho_aqa, ["Car Keys.wav", "Car_Keys.wav"], ["Car Keys", "Car_Keys"]),
    "nsynth": (_nsynth, ["bass synth-060-100", "bass_synth-060-100"],
               ["bass synth-060-100", "bass_synth-060-100"]),
    "esc50": (_esc50, ["1-1ä2-A-0.wav", "1-1_2-A-0.wav"], ["1-1ä2-A-0", "1-1_2-A-0"]),
    "audioset": (_segments, ["ab.cd", "ab_cd"], ["ab.cd", "ab_cd"]),
    "musiccaps": (_musiccaps, ["ab.cd", "ab_cd"], ["ab.cd", "ab_cd"]),
    "cochlscene": (_cochlscene, ["Bus 1.wav", "Bus_1.wav"], ["Bus 1", "Bus_1"]),
    "tut2017": (_tut2017, ["a b.wav", "a_b.wav"], ["a b", "a_b"]),
    "covost2": (_covost2, ["common voice.mp3", "common_voice.mp3"],
                ["common voice", "common_voice"]),
    "lhotse": (_lhotse, ["utt 1", "utt_1"], ["utt 1", "utt_1"]),
    "manifest": (_manifest, ["clips/a.wav", "clips_a.wav"], ["clips/a.wav", "clips_a.wav"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_names_that_sanitize_alike_keep_two_keys(name: str, tmp_path: Path) -> None:
    write, names, hashed = CASES[name]
    write(tmp_path, names)
    records, rejects = parse_corpus(RECIPES[name], tmp_path)
    assert rejects == []
    keys = sorted(r.key for r in records)
    assert keys == sorted(source_key(h, readable=h.rsplit(".", 1)[0] if name == "manifest"
                                     else None) for h in hashed)
    assert len(set(keys)) == 2 == len(collect(records)[0])
    changed = hashed[0]  # the first name is not key-safe: sanitized, then its hash
    assert f"-{_h(changed)}" in keys[0] + keys[1]
    if name != "manifest":  # a manifest key drops the extension, which counts as a change
        assert hashed[1] in keys  # already a key: kept as it is


def test_hash_suffix_is_the_documented_one() -> None:
    assert source_key("Car Keys") == f"Car_Keys-{_h('Car Keys')}"
    assert source_key("Car_Keys") == "Car_Keys"
    assert source_key("clips/a.wav", readable="clips/a") == f"clips_a-{_h('clips/a.wav')}"


def test_manifest_same_stem_other_extension_keeps_two_keys(tmp_path: Path) -> None:
    _manifest(tmp_path, ["a.wav", "a.flac"])
    records, _ = parse_corpus(RECIPES["manifest"], tmp_path)
    assert sorted(r.key for r in records) == sorted([f"a-{_h('a.flac')}", f"a-{_h('a.wav')}"])


#: recipe -> (writer, names with one item listed twice, label file, lines of the listings)
DUPLICATES = {
    "clotho": (_clotho, ["x.wav", "y.wav", "x.wav"], "clotho_captions_development.csv", 2, 4),
    "nsynth": (_nsynth, ["x", "y", "x"], "nsynth-valid/examples.json", 2, 4),
    "esc50": (_esc50, ["1-2-A-0.wav", "1-2-A-0.wav"], "meta/esc50.csv", 2, 3),
    "audioset": (_segments, ["x", "x"], "eval_segments.csv", 2, 3),
    "musiccaps": (_musiccaps, ["x", "x"], "musiccaps-public.csv", 2, 3),
    "tut2017": (_tut2017, ["x.wav", "x.wav"], "TUT-acoustic-scenes-2017-development/"
                "evaluation_setup/fold1_train.txt", 1, 2),
    "lhotse": (_lhotse, ["x", "x"], "x_supervisions_train.jsonl.gz", 1, 2),
}


@pytest.mark.parametrize("name", sorted(DUPLICATES))
def test_an_item_listed_twice_is_a_reject_naming_file_and_lines(name: str,
                                                                tmp_path: Path) -> None:
    write, names, listing, first, again = DUPLICATES[name]
    write(tmp_path, names)
    records, rejects = collect(RECIPES[name].prepare(RECIPES[name].locate(tmp_path)))
    assert len(records) == len(set(names))
    dup = [r for r in rejects if "duplicate sample key" in r.reason]
    assert len(dup) == 1 and isinstance(dup[0], Reject), rejects
    assert (dup[0].source, dup[0].line) == (listing, again)
    assert dup[0].reason.endswith(f"(first: {listing} line {first})")
