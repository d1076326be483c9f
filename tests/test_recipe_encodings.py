"""Label files that are not UTF-8, and records spanning lines (issue 11, items 3 and 4).

Each recipe with a label file reads one whose second item holds the byte ``0xE9`` (latin-1
``é``) where UTF-8 needs a continuation byte.  Recipes whose targets come from that text
reject the row, naming file, line and the bytes; the others decode it with their
documented fallback (Clotho-AQA: latin-1, as its authors' loader reads it; ESC-50, MELD,
AudioSet, TUT 2017: fields from a closed vocabulary, checked anyway) and keep it.  The
build never stops half-way.  (CochlScene and GTZAN have no label file.)
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from recipe_helpers import parse_corpus

from dataset_recipes import RECIPES
from pipeline.errors import InputError
from pipeline.record import Label

E = b"\xe9"  # latin-1 e-acute: never valid UTF-8 on its own
BAD = "not valid utf-8: bytes b'\\xe9' at byte"


def _write(raw: Path, files: dict[str, bytes], audio: list[str]) -> None:
    for rel, data in files.items():
        (raw / rel).parent.mkdir(parents=True, exist_ok=True)
        (raw / rel).write_bytes(data)
    for rel in audio:
        (raw / rel).parent.mkdir(parents=True, exist_ok=True)
        (raw / rel).touch()


CAPTIONS = b"file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
LS = "LibriSpeech/dev-clean/1/2/"
CV = "cv-corpus-4/en/"
NSYNTH = b'"%s": {"note_str": "%s", "pitch": 60, "velocity": 100, ' \
         b'"instrument_family_str": "bass", "qualities_str": []}'

#: recipe -> (files, audio, records kept, the reject (file, line), and for recipes that
#: report unlisted audio, the audio of the unreadable row, which is then unlisted too)
STRICT = {
    "clotho": ({"clotho_captions_development.csv": CAPTIONS + b"a.wav,x,x,x,x,x\n"
                b"b.wav,caf" + E + b",x,x,x,x\n"}, ["development/a.wav", "development/b.wav"],
               1, ("clotho_captions_development.csv", 3)),
    "musiccaps": ({"musiccaps-public.csv": b"ytid,start_s,end_s,audioset_positive_labels,"
                   b"aspect_list,caption,author_id,is_balanced_subset,is_audioset_eval\n"
                   b"a,0,10,/m/1,[],Calm.,1,False,False\nb,0,10,/m/1,[],Caf" + E
                   + b".,1,False,False\n"}, ["audio/a.wav", "audio/b.wav"], 1,
                  ("musiccaps-public.csv", 3), "audio/b.wav"),
    "librispeech": ({LS + "1-2.trans.txt": b"1-2-0000 HELLO\n1-2-0001 CAF" + E + b"\n"},
                    [LS + "1-2-0000.flac", LS + "1-2-0001.flac"], 1,
                    ("dev-clean/1/2/1-2.trans.txt", 2), "dev-clean/1/2/1-2-0001.flac"),
    "aishell1": ({"data_aishell/transcript/aishell_transcript_v0.8.txt":
                  "BAC009S0002W0122 而 对\n".encode() + b"BAC009S0002W0123 " + E + b"\n"},
                 ["data_aishell/wav/train/S0002/BAC009S0002W0122.wav",
                  "data_aishell/wav/train/S0002/BAC009S0002W0123.wav"], 1,
                 ("transcript/aishell_transcript_v0.8.txt", 2),
                 "wav/train/S0002/BAC009S0002W0123.wav"),
    "covost2": ({CV + "validated.tsv": b"client_id\tpath\tsentence\nc\ta.mp3\tHello.\n"
                 b"c\tb.mp3\tCaf" + E + b".\n",
                 CV + "covost_v2.en_de.tsv": b"path\tsentence\ttranslation\tsplit\n"
                 b"a.mp3\tHello.\tHallo.\ttrain\n"}, [CV + "clips/a.mp3", CV + "clips/b.mp3"],
                1, ("en/validated.tsv", 3)),
    "manifest": ({"manifest.jsonl": b'{"audio": "a.wav", "task": "asr", "text": "hi", '
                  b'"language": "en"}\n{"audio": "b.wav", "task": "asr", "text": "caf' + E
                  + b'", "language": "en"}\n'}, ["a.wav", "b.wav"], 1, ("manifest.jsonl", 2)),
    "nsynth": ({"nsynth-valid/examples.json": b"{\n" + NSYNTH % (b"a", b"a") + b",\n"
                + NSYNTH.replace(b"bass", b"bass" + E) % (b"b", b"b") + b"\n}\n"},
               ["nsynth-valid/audio/a.wav", "nsynth-valid/audio/b.wav"], 1,
               ("nsynth-valid/examples.json", 3)),
    "vocalsound": ({"vocalsound_16k/datafiles/tr.json": b'{"data": [\n {"wav": '
                    b'"f1_0_cough.wav", "labels": "/m/01b_21"},\n {"wav": "f2_0_cough.wav", '
                    b'"labels": "/m/01b_21", "note": "' + E + b'"}\n]}'},
                   ["vocalsound_16k/audio_16k/f1_0_cough.wav",
                    "vocalsound_16k/audio_16k/f2_0_cough.wav"], 1, ("datafiles/tr.json", 3)),
}


@pytest.mark.parametrize("name", sorted(STRICT))
def test_a_line_that_is_not_utf8_is_a_reject_quoting_the_bytes(name: str,
                                                               tmp_path: Path) -> None:
    files, audio, kept, (source, line), *unlisted = STRICT[name]
    _write(tmp_path, files, audio)
    records, rejects = parse_corpus(RECIPES[name], tmp_path)
    assert len(records) == kept
    assert [(r.source, r.line) for r in rejects] == [(source, line)] + [
        (u, None) for u in unlisted]
    assert BAD in rejects[0].reason and "re-save the file as utf-8" in rejects[0].reason


def test_lhotse_line_that_is_not_utf8_is_a_reject(tmp_path: Path) -> None:
    rec = {"id": "r", "sources": [{"type": "file", "channels": [0], "source": "r.wav"}],
           "sampling_rate": 16000, "num_samples": 16000, "duration": 1.0}
    sup = {"id": "r", "recording_id": "r", "start": 0.0, "duration": 1.0, "channel": 0,
           "text": "HELLO", "language": "English"}
    with gzip.open(tmp_path / "x_recordings_train.jsonl.gz", "wb") as f:
        f.write(json.dumps(rec).encode() + b"\n")
    with gzip.open(tmp_path / "x_supervisions_train.jsonl.gz", "wb") as f:
        f.write(json.dumps(sup).encode() + b"\n" + json.dumps({**sup, "id": "s"}).encode()
                .replace(b"HELLO", b"CAF" + E) + b"\n")
    (tmp_path / "r.wav").touch()
    records, rejects = parse_corpus(RECIPES["lhotse"], tmp_path)
    assert [r.key for r in records] == ["r"]
    assert [(r.source, r.line) for r in rejects] == [("x_supervisions_train.jsonl.gz", 2)]
    assert BAD in rejects[0].reason


TUT = "TUT-acoustic-scenes-2017-development/"
#: recipe -> (files, audio, {record source: target of the row with the byte})
FALLBACK = {
    "clotho_aqa": ({"clotho_aqa_train.csv": b"file_name,QuestionText,answer,confidence\n"
                    b"a.wav,Is it a caf" + E + b"?,yes,yes\n"}, ["audio_files/a.wav"],
                   ("aqa", "yes", "Is it a caf\u00e9?")),
    "esc50": ({"ESC-50-master/meta/esc50.csv": b"filename,fold,target,category,esc10,"
               b"src_file,take\n1-2-A-0.wav,1,0,dog,True,2,A\n1-3-A-0.wav,1,0,dog,True,3" + E
               + b",A\n"}, ["ESC-50-master/audio/1-2-A-0.wav", "ESC-50-master/audio/1-3-A-0.wav"],
              ("sec", "dog", None)),
    "meld": ({"MELD.Raw/train_sent_emo.csv": b"Sr No.,Utterance,Speaker,Emotion,Sentiment,"
              b"Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n1,I\x92m fine,Ross,"
              b"joy,positive,0,0,1,1,a,b\n"}, ["MELD.Raw/train_splits/dia0_utt0.mp4"],
             ("ser", "joy", None)),
    "audioset": ({"class_labels_indices.csv": b'index,mid,display_name\n0,/m/1,"Speech"\n',
                  "eval_segments.csv": b'# YTID, start, end, labels\nab' + E
                  + b'c, 0.0, 10.0, "/m/1"\n'}, ["audio/eval/ab\u00e9c.wav"],
                 ("sec", "Speech", None)),
    "tut2017": ({TUT + "meta.txt": b"audio/a.wav\tbeach\tloc" + E + b"\n",
                 TUT + "evaluation_setup/fold1_train.txt": b"audio/a.wav\tbeach\n",
                 TUT + "evaluation_setup/fold1_evaluate.txt": b""}, [TUT + "audio/a.wav"],
                ("asc", "beach", None)),
}


@pytest.mark.parametrize("name", sorted(FALLBACK))
def test_documented_fallback_keeps_the_row(name: str, tmp_path: Path) -> None:
    files, audio, (task, target, question) = FALLBACK[name]
    _write(tmp_path, files, audio)
    records, rejects = parse_corpus(RECIPES[name], tmp_path)
    assert rejects == []
    assert len(records) == len(audio)
    args = {"question": question} if question else {}
    assert records[-1].labels[0] == Label.make(task, target, **args)


def test_audioset_display_names_must_decode(tmp_path: Path) -> None:
    _write(tmp_path, {"class_labels_indices.csv": b"index,mid,display_name\n0,/m/1,Caf" + E
                      + b"\n", "eval_segments.csv": b'x, 0.0, 10.0, "/m/1"\n'},
           ["audio/eval/x.wav"])
    with pytest.raises(InputError, match=r"class_labels_indices\.csv line 2: not"):
        parse_corpus(RECIPES["audioset"], tmp_path)


def test_records_spanning_lines_report_the_line_they_start_on(tmp_path: Path) -> None:
    head = (b"ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,"
            b"is_balanced_subset,is_audioset_eval\n")
    rows = (b'a,0,10,/m/1,[],"Calm.\nSlow.\nQuiet.",1,False,False\n'  # lines 2-4
            b'b,0,10,/m/1,[],"Loud.\nFast.",1,False,True\n'  # lines 5-6, clip missing
            b"c,0,10,/m/1,[],Soft.,1,False,maybe\n")  # line 7
    _write(tmp_path, {"musiccaps-public.csv": head + rows}, ["audio/a.wav"])
    records, rejects = parse_corpus(RECIPES["musiccaps"], tmp_path)
    assert [(r.key, r.line, r.labels[0].target) for r in records] == [
        ("a", 2, "Calm. Slow. Quiet.")]
    assert [(r.source, r.line) for r in rejects] == [("audio/b.wav", 5),
                                                     ("musiccaps-public.csv", 7)]
    assert rejects[0].reason.startswith("clip missing (line 5 of musiccaps-public.csv)")
