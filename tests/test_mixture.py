"""The mixture file: sets, task hours, default weights, and what a reader refuses."""

import json

import pytest

from pipeline.mixture import MixtureError, load_mixture, task_weights, write_mixture


def _fake_build(root, name, tasks_hours):
    out = root / name
    out.mkdir(parents=True)
    (out / "index.json").write_text('{"__kind__": "wids-shard-index-v1", "shardlist": []}')
    tasks = {t: {"entries": 1, "hours": h, "rejects": 0, "prompts": []}
             for t, h in tasks_hours.items()}
    splits = {"train": {"role": "train", "samples": 1, "hours": 1.0, "tasks": tasks},
        "dev": {"role": "valid", "samples": 1, "hours": 9.0, "tasks": {
            "asr": {"entries": 1, "hours": 9.0, "rejects": 0, "prompts": []}}}}
    (out / "report.json").write_text(json.dumps({"recipe": name, "splits": splits}))


def test_weights_follow_square_root_of_training_hours(tmp_path):
    _fake_build(tmp_path, "a", {"asr": 9.0})
    _fake_build(tmp_path, "b", {"aac": 1.0})
    mixture = json.loads(write_mixture(tmp_path).read_text())
    assert [s["index"] for s in mixture["sets"]] == ["a/index.json", "b/index.json"]
    assert mixture["task_weights"] == {"aac": 0.25, "asr": 0.75}  # sqrt(1) : sqrt(9)
    assert task_weights([]) == {}


def test_reader_refuses_newer_versions_and_missing_indexes(tmp_path):
    _fake_build(tmp_path, "a", {"asr": 1.0})
    path = write_mixture(tmp_path)
    assert load_mixture(path)["sets"][0]["index"] == str((tmp_path / "a/index.json").resolve())
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(MixtureError, match="format_version 99, newer"):
        load_mixture(path)
    (tmp_path / "a/index.json").unlink()
    path.write_text(json.dumps(data))
    with pytest.raises(MixtureError, match="points to missing"):
        load_mixture(path)
    with pytest.raises(MixtureError, match="make demo"):
        load_mixture(tmp_path / "nope.json")
    with pytest.raises(MixtureError, match="no finished build"):
        write_mixture(tmp_path / "empty")
