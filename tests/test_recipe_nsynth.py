"""NSynth recipe: note-analysis targets, JSON rejects with lines, sample at true pitch, build."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from recipe_helpers import download, parse_corpus, record_downloads

from dataset_recipes import RECIPES
from dataset_recipes.nsynth import RECIPE
from pipeline.build import run_build
from pipeline.recipe import CorpusNotFound
from pipeline.stages import BuildOptions
from pipeline.tags import make_entry

FIXTURE = Path(__file__).parent / "fixtures" / "nsynth"
MNA = "<|startofanalysis|><|unknown|><|keyword|><|en|><|notimestamps|><|note_analysis|>"


def test_registered() -> None:
    assert RECIPES["nsynth"] is RECIPE


def test_fixture_targets_and_prompt() -> None:
    records, _ = parse_corpus(RECIPE, FIXTURE)
    assert [(r.split, r.key, r.labels[0].target) for r in records] == [
        ("nsynth-valid", "bass_synthetic_033-022-050",
         "<|pitch|><|midi_pitch_22|><|velocity|><|midi_velocity_50|><|instrument|>bass"
         "<|sonic|>dark"),
        ("nsynth-valid", "brass_acoustic_004-058-127",
         "<|pitch|><|midi_pitch_58|><|velocity|><|midi_velocity_127|><|instrument|>brass"
         "<|sonic|>none"),
        ("nsynth-valid", "synth_lead_synthetic_003-072-100",
         "<|pitch|><|midi_pitch_72|><|velocity|><|midi_velocity_100|><|instrument|>synth_lead"
         "<|sonic|>bright, distortion"),
    ]
    assert records[0].source == "nsynth-valid/audio/bass_synthetic_033-022-050.wav"
    label = records[2].labels[0]
    entry = make_entry(label.task, label.target, **label.kwargs)
    assert entry["prompt"] == MNA and entry["target"] == label.target


def test_bad_inputs_are_rejects_naming_file_and_line() -> None:
    _, rejects = parse_corpus(RECIPE, FIXTURE)
    assert [(r.split, r.source, r.line, r.reason) for r in rejects] == [
        ("nsynth-valid", "nsynth-valid/examples.json", 56,
         "kazoo_acoustic_000-060-100: unknown instrument family 'kazoo'; known: bass, brass, "
         "flute, guitar, keyboard, mallet, organ, reed, string, synth_lead, vocal"),
        ("nsynth-valid", "nsynth-valid/examples.json", 82,
         "organ_electronic_005-130-100: pitch 130 is not a MIDI value 0-127"),
        ("nsynth-valid", "nsynth-valid/audio/flute_acoustic_002-076-050.wav", 110,
         "listed in examples.json line 110 but the audio file is missing"),
        ("nsynth-valid", "nsynth-valid/audio/vocal_acoustic_000-060-050.wav", None,
         "audio file has no entry in examples.json"),
        ("nsynth-test", "nsynth-test/examples.json", 7,
         "malformed JSON (Expecting property name enclosed in double quotes, column 9); "
         "no note of this split can be read: re-extract the archive"),
    ]


def test_an_entry_keyed_empty_is_a_reject_even_beside_a_file_named_dot_wav(
        tmp_path: Path) -> None:
    """A key of "" would name the audio file ``.wav``: the entry is a reject (naming its
    line) whether or not such a file exists, and the other notes are read."""
    import json

    split = tmp_path / "nsynth-valid"
    (split / "audio").mkdir(parents=True)
    good = json.loads((FIXTURE / "nsynth-valid" / "examples.json").read_text())
    key, entry = next(iter(good.items()))
    empty = {**entry, "note_str": ""}
    (split / "examples.json").write_text(json.dumps({"": empty, key: entry}, indent=1))
    for name in (".wav", f"{key}.wav"):
        sf.write(split / "audio" / name, np.zeros(1600, dtype="float32"), 16000, format="WAV")
    records, rejects = parse_corpus(RECIPE, tmp_path)
    assert [(r.split, r.source, r.line, r.reason) for r in rejects] == [
        ("nsynth-valid", "nsynth-valid/examples.json", 2,
         ": the entry's key is empty: it names no audio file"),
    ]  # (.wav is the file that entry names: it is not reported again as unlisted)
    assert [r.key for r in records] == [key]


def test_locate(tmp_path: Path) -> None:
    assert RECIPE.locate(FIXTURE / "nsynth-valid") == FIXTURE
    with pytest.raises(CorpusNotFound, match="RECIPE=nsynth SOURCE=sample"):
        RECIPE.locate(tmp_path)


def test_download_fetches_the_three_archives(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls = record_downloads(monkeypatch)
    assert download(RECIPE, tmp_path) == tmp_path
    assert download(RECIPE, tmp_path, ["nsynth-valid"]) == tmp_path
    base = "http://download.magenta.tensorflow.org/datasets/nsynth/"
    assert calls[1] == [(base + "nsynth-valid.jsonwav.tar.gz",
                         {"md5": "87e94a00a19b6dbc99cf6d4c0c0cae87"})]
    assert calls[:1] == [[
        (base + "nsynth-train.jsonwav.tar.gz", {"md5": "fde6665a93865503ba598b9fac388660"}),
        (base + "nsynth-valid.jsonwav.tar.gz", {"md5": "87e94a00a19b6dbc99cf6d4c0c0cae87"}),
        (base + "nsynth-test.jsonwav.tar.gz", {"md5": "5e6f8719bf7e16ad0a00d518b78af77d"}),
    ]]


def test_sample_notes_sound_at_their_pitch_and_build(tmp_path: Path) -> None:
    root = RECIPE.locate(RECIPE.make_sample(tmp_path / "raw"))
    records, rejects = parse_corpus(RECIPE, tmp_path / "raw")
    assert rejects == []
    assert [sum(r.split == s for r in records) for s in RECIPE.info.splits] == [6, 2, 2]
    for rec in records:
        x, sr = sf.read(rec.audio)
        assert len(x) == 4 * sr == 64000
        pitch = int(rec.labels[0].target.split("<|midi_pitch_")[1].split("|")[0])
        spectrum = np.abs(np.fft.rfft(x[:sr]))
        f0 = 440 * 2 ** ((pitch - 69) / 12)
        assert abs(np.argmax(spectrum) - f0) < max(2.0, 0.03 * f0)  # 1 Hz bins
    report = run_build(RECIPE, root, tmp_path / "out", BuildOptions(shard_size=4),
                       runner="local", progress=False)
    assert (report["rejects"], report["samples"]) == (0, 10)
