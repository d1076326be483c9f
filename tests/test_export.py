"""`python -m pipeline.export`: ChatML, ms-swift and LLaMA-Factory files that validate
against their documented schemas, FLAC bytes as in the shards, byte-identical reruns,
resuming, and rejects with reasons.  Shards are built once from three sample corpora."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import soundfile as sf
import yaml
from recipe_helpers import build_sample

from pipeline.chat import DEFAULT_TEMPLATES, Templates, audio_pad_count
from pipeline.export import main, run_export, select
from pipeline.tags import AUDIO_PAD
from trainer.reader import read_shard
from trainer.tokenizer import QwenAudioTokenizer


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Built shards of librispeech (ASR + SRWT, aligned words), esc50 and clotho."""
    root, raw = tmp_path_factory.mktemp("shards"), tmp_path_factory.mktemp("raw")
    build_sample("librispeech", root / "librispeech", raw / "librispeech",
                 align={"enabled": True})
    build_sample("esc50", root / "esc50", raw / "esc50")
    build_sample("clotho", root / "clotho", raw / "clotho")
    return [root / "librispeech", root / "esc50", root / "clotho"]


@pytest.fixture(scope="module")
def tok() -> QwenAudioTokenizer:
    return QwenAudioTokenizer.from_tiktoken(None)


def export(shards: list[Path], fmt: str, out: Path, tok: QwenAudioTokenizer,
           templates: Templates | None = None) -> dict:
    return run_export(select(None, [str(s) for s in shards], "train", []), fmt, out,
                      templates or Templates.load(), tok, seed=3)


def rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "qwen_audio_chat.jsonl").read_text().splitlines()]


def tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def check_audios(out: Path, audios: list, shard_bytes: dict[str, bytes]) -> None:
    assert audios and all(isinstance(a, str) and not Path(a).is_absolute() for a in audios)
    for a in audios:  # relative to the export folder, the shard's FLAC bytes unchanged
        assert (out / a).read_bytes() == shard_bytes[Path(a).stem]


def flac_of(shards: list[Path]) -> dict[str, bytes]:
    out = {}
    for s in select(None, [str(p) for p in shards], "train", []):
        out.update({k: ref.data for k, _, ref in read_shard(s.path)})
    return out


# ms-swift's standard dataset format (https://swift.readthedocs.io/en/latest/Customization/
# Custom-dataset.html, "Standard Dataset Format" / "Multimodal"): keys among messages,
# rejected_response, label, images, videos, audios, tools, objects ('messages' required);
# messages are {"role", "content"} with an optional first system message; <audio> tags mark
# where audios go and their number equals len(audios); paths or URLs.
SWIFT_KEYS = {"messages", "rejected_response", "label", "images", "videos", "audios", "tools",
              "objects"}


def validate_swift(row: dict) -> None:
    assert set(row) <= SWIFT_KEYS and "messages" in row
    msgs = row["messages"]
    assert all(set(m) == {"role", "content"} and isinstance(m["content"], str) for m in msgs)
    roles = [m["role"] for m in msgs]
    body = roles[1:] if roles[0] == "system" else roles
    assert "system" not in body and body[-1] == "assistant"  # supervised fine-tuning
    assert body == ["user", "assistant"] * (len(body) // 2)
    tags = sum(m["content"].count("<audio>") for m in msgs)
    assert tags == len(row.get("audios", [])) and tags > 0


# LLaMA-Factory's sharegpt format with OpenAI-style tags
# (https://github.com/hiyouga/LLaMA-Factory/blob/main/data/README.md, "Multimodal Audio
# Dataset" and "OpenAI Format"; its converter src/llamafactory/data/converter.py): an
# optional first system message, then user (odd positions) / assistant (even positions),
# an even count; as many <audio> tokens as paths in the `audios` column; paths relative to
# dataset_dir (media_dir).
def validate_llamafactory(info: dict, name: str, out: Path) -> list[dict]:
    entry = info[name]
    assert entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "messages", "audios": "audios"}
    tags = entry["tags"]
    assert tags == {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                    "assistant_tag": "assistant", "system_tag": "system"}
    data = [json.loads(x) for x in (out / entry["file_name"]).read_text().splitlines()]
    for row in data:
        msgs = row[entry["columns"]["messages"]]
        if msgs[0][tags["role_tag"]] == tags["system_tag"]:
            msgs = msgs[1:]
        assert msgs and len(msgs) % 2 == 0
        for i, m in enumerate(msgs):
            assert m[tags["role_tag"]] == (tags["user_tag"], tags["assistant_tag"])[i % 2]
        n_tags = sum(m[tags["content_tag"]].count("<audio>") for m in msgs)
        assert n_tags == len(row[entry["columns"]["audios"]])
    return data


def test_swift_export_validates(shards: list[Path], tok: QwenAudioTokenizer,
                                tmp_path: Path) -> None:
    report = export(shards, "swift", tmp_path, tok)
    data, flac = rows(tmp_path), flac_of(shards)
    assert report["conversations"] == len(data) and len(data) > 20
    for row in data:
        validate_swift(row)
        check_audios(tmp_path, row["audios"], flac)
        assert row["messages"][1]["content"].startswith("<audio>" * len(row["audios"]))
    assert any(len(r["audios"]) > 1 for r in data)  # dialogues over several audios
    assert any(len(r["messages"]) > 3 for r in data)  # multi-turn dialogues
    assert any("starts at <|" in m["content"] for r in data for m in r["messages"])


def test_llamafactory_export_validates(shards: list[Path], tok: QwenAudioTokenizer,
                                       tmp_path: Path) -> None:
    export(shards, "llamafactory", tmp_path, tok)
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    data, flac = validate_llamafactory(info, "qwen_audio_chat", tmp_path), flac_of(shards)
    for row in data:
        assert set(row) == {"messages", "audios"}
        check_audios(tmp_path, row["audios"], flac)
        head = "".join(f"Audio {n}: <audio>\n" for n in range(1, len(row["audios"]) + 1))
        assert row["messages"][1]["content"].startswith(head)


def test_chatml_export_is_the_release_format(shards: list[Path], tok: QwenAudioTokenizer,
                                             tmp_path: Path) -> None:
    export(shards, "chatml", tmp_path, tok)
    flac = flac_of(shards)
    turn = re.compile(r"<\|im_start\|>(system|user|assistant)\n(.*?)<\|im_end\|>", re.S)
    for row in rows(tmp_path):
        assert set(row) == {"id", "text", "audios"}
        turns = turn.findall(row["text"])
        assert "\n".join(f"<|im_start|>{r}\n{c}<|im_end|>" for r, c in turns) == row["text"]
        assert [r for r, _ in turns] == ["system"] + ["user", "assistant"] * (len(turns) // 2)
        assert turns[0][1] == "You are a helpful assistant."
        head = "".join(f"Audio {n}: <audio>{p}</audio>\n" for n, p in enumerate(row["audios"], 1))
        assert turns[1][1].startswith(head)
        check_audios(tmp_path, row["audios"], flac)
        text = row["text"]  # every conversation fits the context, its audio pads counted
        for p in row["audios"]:
            pads = audio_pad_count(sf.info(str(tmp_path / p)).frames)
            text = text.replace(f"<audio>{p}</audio>", f"<audio>{AUDIO_PAD * pads}</audio>")
        assert len(tok.encode(text)) <= 2048


def test_rerun_is_byte_identical_and_resumes(shards: list[Path], tok: QwenAudioTokenizer,
                                            tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    export(shards, "swift", a, tok)
    export(shards, "swift", b, tok)
    first = tree(a)
    assert first == tree(b)
    parts = sorted(p for p in (a / ".parts").glob("0*.jsonl") if ".rejects" not in p.name)
    assert len(parts) == 10  # a part per shard (esc50: one per fold)
    stamps = {p: p.stat().st_mtime_ns for p in parts}
    # as if killed while writing part 1: no output file, part 1 only half written (.tmp)
    (a / "qwen_audio_chat.jsonl").unlink()
    parts[1].rename(parts[1].with_name(parts[1].name + ".tmp"))
    parts[1].with_name(parts[1].name + ".tmp").write_text('{"half":')
    export(shards, "swift", a, tok)
    assert tree(a) == first
    for p in parts:  # finished parts were not rewritten; the missing one was
        assert (p.stat().st_mtime_ns == stamps[p]) == (p != parts[1])
    with pytest.raises(ValueError, match="other settings"):
        run_export(select(None, [str(s) for s in shards], "train", []), "swift", a,
                   Templates.load(), tok, seed=4)


def test_bad_shards_and_unanswerable_samples_are_rejects(
    shards: list[Path], tok: QwenAudioTokenizer, tmp_path: Path
) -> None:
    esc = tmp_path / "esc50"
    shutil.copytree(shards[1], esc)
    tars = sorted(esc.glob("*.tar"))
    tars[0].write_bytes(tars[0].read_bytes()[:1000])  # truncated shard
    data = yaml.safe_load(DEFAULT_TEMPLATES.read_text())
    del data["kinds"]["event"]  # nothing can answer ESC-50's labels
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    report = export([shards[0], esc], "chatml", out, tok, Templates.load(tmp_path / "t.yaml"))
    rejects = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert report["rejects"] == len(rejects)
    broken = [r for r in rejects if r["shard"] == tars[0].name]
    assert len(broken) == 1 and broken[0]["reason"].startswith("shard not read: ")
    assert "key" not in broken[0] and broken[0]["set"] == "esc50"
    unanswered = [r for r in rejects if "key" in r]
    assert unanswered and {r["reason"] for r in unanswered} == {
        "no chat template answers the labels of tasks ['sec']"}
    assert all(not r["id"].startswith("esc50") for r in rows(out))
    assert len(rows(out)) == report["conversations"] > 0


def test_command_line(shards: list[Path], tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--format", "llamafactory", "--out", str(tmp_path / "o"), "--index",
                 str(shards[2]), "--splits", "development"]) == 0
    assert "conversations, 0 rejects" in capsys.readouterr().out
    assert main(["--format", "swift", "--out", str(tmp_path / "p"), "--index",
                 str(shards[2]), "--splits", "nope"]) == 2
    assert "no shards selected" in capsys.readouterr().err


def test_times_as_plain_seconds(shards: list[Path], tmp_path: Path) -> None:
    assert main(["--format", "llamafactory", "--out", str(tmp_path), "--index", str(shards[0]),
                 "--times", "seconds", "--seed", "3"]) == 0
    texts = [m["content"] for r in rows(tmp_path) for m in r["messages"]]
    assert not any(re.search(r"<\|\d+\.\d\d\|>", t) for t in texts)
    grounded = [t for t in texts if " starts at " in t]
    assert grounded and all(re.search(r"starts at \d+\.\d\d seconds and ends at \d+\.\d\d "
                                      r"seconds\.$", t) for t in grounded)
    assert json.loads((tmp_path / "export.json").read_text())["times"] == "seconds"
