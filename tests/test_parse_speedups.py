"""The parse speed-ups of issue 11 item 5 give exactly what the generic code gives:
spoken_form's and sanitize_key's ASCII tables, the manifest's orjson reading (json decides
wherever orjson would differ), json_members' key pattern and NSynth's target checks."""

from __future__ import annotations

import json
import random
import re

import pytest

from dataset_recipes import nsynth
from dataset_recipes.jsonfiles import json_members
from dataset_recipes.manifest import _json_row
from pipeline import tags
from pipeline.record import Record, sanitize_key

_ASCII = [chr(c) for c in range(128)]


def _spoken_reference(text: str, lang: str) -> str:
    """spoken_form as written before the ASCII table: regex, dict translate, lower."""
    text = tags._INNER_APOSTROPHE.sub("\0", text).translate(tags._SPOKEN_MAP)
    out = " ".join(text.lower().split())
    return tags._CJK_SPACE.sub("", out) if lang in tags.UNSPACED_LANGUAGES else out


def test_spoken_form_ascii_table_matches_the_generic_path() -> None:
    rng = random.Random(0)
    pool = [*_ASCII, "\u2019", "\u00e9", "\u4e2d", "\u00a0", "\u0130"]
    texts = ["Hello, World! Don't stop\u2019n.", "It's  A\tTEST\x1c ok", "'quoted'", ""]
    texts += ["".join(rng.choice(pool if i % 2 else _ASCII) for _ in range(rng.randint(0, 12)))
              for i in range(20_000)]
    for text in texts:
        for lang in ("en", "zh"):
            assert tags.spoken_form(text, lang) == _spoken_reference(text, lang), repr(text)
    assert tags.spoken_form("Hello, World! It's 5%.", "en") == "hello world it's 5%"


def test_sanitize_key_ascii_table_matches_the_regex() -> None:
    bad = re.compile(r"[^A-Za-z0-9_\-]")
    for text in [*_ASCII, "a b.c/d", " Car Keys ", "x\u00e9y", "-_09azAZ", "\t\n"]:
        expected = bad.sub("_", text.strip())
        if expected:
            assert sanitize_key(text) == expected
        else:
            with pytest.raises(ValueError, match="empty sample key"):
                sanitize_key(text)


_LINES = [
    '{"audio": "a.wav", "task": "asr", "text": "hi", "language": "en"}',
    '{"a": NaN}', '{"a": Infinity}', '{"a": 1e400}', '{"a": "\\ud800x"}',
    '{"a": 123456789012345678901234567890}', '{"a": -9223372036854775809}',
    '{"a": 18446744073709551616}', '{"a": [18446744073709551616]}', '{"a": 0.1}',
    '{"a": -0}', '{"a": 1.0E+2}', '{"a": "dup", "a": "dup2"}', '\ufeff{"a": "bom"}',
    '{"a": 1} x', '{"a": "t\x01"}', '{"a": 1,}', "{bad", "[1, 2]", '"s"', "null", "5",
    '{"a": {"b": 99999999999999999999}}', '{"a": true, "b": null}', '{"\\u00e9": "\\/"}',
]


@pytest.mark.parametrize("line", _LINES)
def test_manifest_json_row_reads_as_json_loads(line: str) -> None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        assert _json_row(line) == f"malformed JSON line: {err.msg}"
        return
    row = _json_row(line)
    if isinstance(value, dict):
        assert repr(row) == repr(value)
    else:
        assert row == "JSON line is not an object"


def test_json_members_keys_lines_and_errors() -> None:
    text = '{\n  "a\\"b": {"x": 1},\n  "k\\u00e9" :\n [1],\n  "a\\"b": 2 , "c":3\n}'
    got = [(line, key, value, text[start:end]) for line, key, value, start, end
           in json_members(text)]
    assert got == [(2, 'a"b', {"x": 1}, '"a\\"b": {"x": 1}'),
                   (3, "k\u00e9", [1], '"k\\u00e9" :\n [1]'),
                   (5, 'a"b', 2, '"a\\"b": 2'), (5, "c", 3, '"c":3')]
    for bad in ('{"a": 1 "b": 2}', '{"a": 1, }', '{"a" 1}', '{"a": }', '{"a\x01": 1}'):
        with pytest.raises(json.JSONDecodeError) as ours:
            list(json_members(bad))
        with pytest.raises(json.JSONDecodeError) as theirs:
            json.loads(bad)
        assert (ours.value.msg, ours.value.pos) == (theirs.value.msg, theirs.value.pos), bad


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("pitch", True, "pitch True is not a MIDI value 0-127"),
    ("pitch", 60.0, "pitch 60.0 is not a MIDI value 0-127"),
    ("velocity", 128, "velocity 128 is not a MIDI value 0-127"),
    ("velocity", "5", "velocity '5' is not a MIDI value 0-127"),
    ("qualities_str", [{"a": 1}], "unknown sonic quality in [{'a': 1}]"),
    ("qualities_str", "dark", "unknown sonic quality in 'dark'"),
    ("instrument_family_str", ["bass"], "unknown instrument family ['bass']"),
])
def test_nsynth_target_reasons(field: str, value: object, reason: str) -> None:
    entry = {"note_str": "k", "pitch": 60, "velocity": 100, "instrument_family_str": "bass",
             "qualities_str": ["dark"], field: value}
    with pytest.raises(ValueError, match=re.escape(reason)):
        nsynth.target(entry)
    del entry["pitch"], entry["qualities_str"]
    with pytest.raises(ValueError, match=re.escape("missing field(s) ['pitch', 'qualities_str']")):
        nsynth.target(entry)


def test_nsynth_target_accepts_int_subclasses_as_before() -> None:
    import enum

    class Midi(enum.IntEnum):
        C4 = 60

    entry = {"note_str": "k", "pitch": Midi.C4, "velocity": 100,
             "instrument_family_str": "synth_lead", "qualities_str": []}
    assert nsynth.target(entry) == ("<|pitch|><|midi_pitch_60|><|velocity|>"
                                    "<|midi_velocity_100|><|instrument|>synth_lead<|sonic|>none")


_VALUES = ['{"a": 1, "b": [1, 2]}', '{"a": {"b": 1}}', '{"a": "}"}', '{"a": "x}", "b": 2}',
           '{"a": NaN}', '{"a": 123456789012345678901234567890}', '{"a": "\\ud800"}',
           '{"a": 1, "a": 2}', '{}', '{"a": 1e400}', '{"a": -0, "b": 0.1}', '[1]', '"s"',
           '{"a": "\\u00e9\\n"}', '{"a": 1 }', '{"a": 1,}']


@pytest.mark.parametrize("value", _VALUES)
def test_json_members_quick_gives_json_values_where_it_takes_orjson(value: str) -> None:
    text = '{\n "k": ' + value + ',\n "z": {"n": 1}\n}'
    seen: list[object] = []

    def quick(key: str, obj: object) -> object:
        seen.append((key, obj))
        return obj

    try:
        expected = [(line, key, value, start, end) for line, key, value, start, end
                    in json_members(text)]
    except json.JSONDecodeError as err:
        with pytest.raises(json.JSONDecodeError) as ours:
            list(json_members(text, quick=quick))
        assert (ours.value.msg, ours.value.pos) == (err.msg, err.pos)
        return
    got = list(json_members(text, quick=quick))
    assert [g[:2] + g[3:] for g in got] == [e[:2] + e[3:] for e in expected]
    for (_, key, ours, _, _), (_, _, theirs, _, _) in zip(got, expected, strict=True):
        if (key, ours) in seen:  # orjson's reading, taken: json's but for huge integers
            assert ours == theirs or "1234567890" in value
        else:
            assert repr(ours) == repr(theirs)
    # a quick that declines everything leaves json's values
    assert repr(list(json_members(text, quick=lambda k, v: None))) == repr(expected)


def test_nsynth_records_and_rejects_as_without_quick(tmp_path, monkeypatch) -> None:
    """Entries orjson reads differently (huge integers, NaN, nested objects, braces in
    strings, duplicate fields) give the same records and rejects as json's reading."""
    good = {"note_str": "k", "pitch": 60, "velocity": 100, "instrument_family_str": "bass",
            "qualities_str": ["dark"], "qualities": [0, 1, 0]}
    variants = ['"pitch": 123456789012345678901234567890', '"velocity": 18446744073709551616',
                '"pitch": NaN', '"x": {"y": 1}', '"s": "a}b"', '"pitch": 61, "pitch": 62',
                '"note_str": "other"', '"qualities_str": [1e400]', '"pitch": 60.0', '"z": 1']
    members = []
    for i, extra in enumerate(variants):
        body = json.dumps({**good, "note_str": f"k{i}"}, indent=2)[:-1] + f", {extra}}}"
        members.append(f'"k{i}": {body}')
    members += ['"s": "text"', '"n": 5', f'"k{len(variants)}": ' + json.dumps(
        {**good, "note_str": f"k{len(variants)}"})]
    split = tmp_path / "nsynth-train"
    (split / "audio").mkdir(parents=True)
    for i in (0, 2, 4, 5, 6, 8, 10):
        (split / "audio" / f"k{i}.wav").write_bytes(b"")
    (split / "examples.json").write_text("{\n  " + ",\n  ".join(members) + "\n}\n")
    got = [repr(item) for item in nsynth.prepare(tmp_path)]
    plain = nsynth.json_members
    monkeypatch.setattr(nsynth, "json_members", lambda text, quick=None: plain(text))
    assert got == [repr(item) for item in nsynth.prepare(tmp_path)]
    records = [item for item in nsynth.prepare(tmp_path) if isinstance(item, Record)]
    assert [(r.key, r.labels[0].target[:26]) for r in records] == [
        ("k4", "<|pitch|><|midi_pitch_60|>"), ("k5", "<|pitch|><|midi_pitch_62|>"),
        ("k10", "<|pitch|><|midi_pitch_60|>")]
    assert "k0: pitch 123456789012345678901234567890 is not a MIDI value" in got[0]
