"""A build pays only for what it uses: no torch/whisperx/transformers/matplotlib/Ray in a
small in-process build, `runner=auto`, one Ray job for all recipes of a command, the card
pictures drawn next to the build, the aligner loaded only when needed, cached samples."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from recipe_helpers import build_sample

import dataset_recipes.build as cli
import pipeline.build as build_mod
import pipeline.card_plots as card_plots
import pipeline.stages as stages
from dataset_recipes import RECIPES
from pipeline.build import AUTO_LOCAL_ITEMS, BuildError, choose_runner, plan_build, run_builds
from pipeline.card_pictures import CardPictures, CardPicturesError, FactCache
from pipeline.card_plots import card_section
from pipeline.record import Label, Record
from pipeline.stages import BuildOptions, SampleMaker, shared_aligner

ROOT = Path(__file__).parents[1]
HEAVY = ("torch", "torchaudio", "whisperx", "transformers", "matplotlib", "ray", "lhotse",
         "pocketsphinx")


def _tars(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}


def test_small_sample_build_imports_nothing_heavy_and_keeps_its_bars(tmp_path):
    """`python -m dataset_recipes.build recipe=[clotho,esc50] source=sample` with the
    defaults (runner=auto -> in-process): none of the heavy packages is imported by the
    build's process, a bar per recipe is shown, and the card pictures are the same bytes
    as drawn in-process."""
    code = f"""
import sys
sys.argv = ["build", "recipe=[clotho,esc50]", "source=sample", "raw={tmp_path / 'raw'}",
            "out={tmp_path / 'out'}", "shard_size=8"]
import runpy
runpy.run_module("dataset_recipes.build", run_name="__main__", alter_sys=True)
print("IMPORTED", sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r})))
"""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == "IMPORTED []"
    assert "clotho: 14 samples, 0.0192 h, 0 rejects" in proc.stdout
    assert "esc50: 25 samples" in proc.stdout
    assert "clotho: 3/3 shards to write" in proc.stderr
    assert "esc50: 5/5 shards to write" in proc.stderr
    assert "INFO" not in proc.stderr
    out = tmp_path / "out" / "clotho"
    shards = sorted(out.glob("*.tar"))
    lines = card_section(tmp_path / "inline", shards, {"clotho": RECIPES["clotho"].info})
    readme = (out / "README.md").read_text()
    assert "\n".join(lines) in readme
    for png in ("duration_histogram.png", "hours_per_task_language.png"):
        assert (out / "images" / png).read_bytes() == (
            tmp_path / "inline" / "images" / png).read_bytes()
    assert (tmp_path / "out" / "mixture.json").is_file()
    # runner=auto wrote the same bytes as an explicit in-process build
    build_sample("clotho", tmp_path / "local", tmp_path / "raw2", shard_size=8)
    assert _tars(out) == _tars(tmp_path / "local") and len(_tars(out)) == 3
    assert (out / "index.json").read_bytes() == (tmp_path / "local" / "index.json").read_bytes()


def test_picture_helper_reads_shards_ahead_and_again_when_they_change(tmp_path, monkeypatch):
    """Shards handed to the picture helper as they are written (CardPictures.prefetch) are
    read once, ahead, and give the card (lines and PNG bytes) that reading them at the
    end gives; a shard changed after it was read ahead is read again; a prefetch of a file
    that cannot be read leaves the helper working."""
    build_sample("clotho", tmp_path / "clotho", tmp_path / "raw", shard_size=8)
    build_sample("esc50", tmp_path / "esc50", tmp_path / "raw", shard_size=8)
    info = {"clotho": RECIPES["clotho"].info}
    shards = sorted((tmp_path / "clotho").glob("*.tar"))
    want = card_section(tmp_path / "end", shards, info)
    pngs = ("duration_histogram.png", "hours_per_task_language.png")

    def same_pictures(out: Path) -> bool:
        return all((out / "images" / png).read_bytes() ==
                   (tmp_path / "end" / "images" / png).read_bytes() for png in pngs)

    reads: list[str] = []
    real = card_plots.shard_facts
    monkeypatch.setattr(card_plots, "shard_facts", lambda p: reads.append(p.name) or real(p))
    cache = FactCache()
    for shard in shards:
        cache.read(shard)
    assert card_section(tmp_path / "ahead", shards, info, facts=cache) == want
    assert same_pictures(tmp_path / "ahead")
    assert reads == [s.name for s in shards]  # each shard read once, ahead of the card
    cache.read(shards[0])
    before = real(shards[0])
    other = sorted((tmp_path / "esc50").glob("*.tar"))[0]
    shards[0].write_bytes(other.read_bytes())  # (same file, other contents)
    assert cache(shards[0]) == real(shards[0]) != before

    shards = sorted((tmp_path / "clotho").glob("*.tar"))[1:]
    want = card_section(tmp_path / "end", shards, info)
    with CardPictures("process") as drawer:
        drawer.start()
        drawer.prefetch(tmp_path / "missing.tar")
        drawer.prefetch(tmp_path / "clotho" / "index.json")  # not a shard
        for shard in shards:
            drawer.prefetch(shard)
        drawer.submit("clotho", tmp_path / "helper", shards, info["clotho"])
        assert drawer.result("clotho") == want
    assert same_pictures(tmp_path / "helper")


def test_a_picture_helper_that_stopped_is_reported_by_result_with_its_output(tmp_path):
    """Handing shards or a recipe to a helper that has stopped raises nothing then (the
    shards go on being written); the card's result names the helper's failure."""
    drawer = CardPictures("process")
    drawer.start()
    assert drawer.proc is not None
    drawer.proc.kill()
    drawer.proc.wait()
    drawer.prefetch(tmp_path / "a.tar")
    drawer.submit("clotho", tmp_path, [tmp_path / "a.tar"], RECIPES["clotho"].info)
    with pytest.raises(CardPicturesError, match="the card picture helper stopped"):
        drawer.result("clotho")
    drawer.close()


def _record(i: int, align: bool, lang: str = "en") -> Record:
    return Record(recipe="t", split="train", key=f"k{i:05d}", audio=f"/x/{i}.wav",
                  source=f"{i}.wav", language=lang,
                  labels=(Label("asr", "HELLO", (("lang", lang),)),), align=align)


def _plan(tmp_path: Path, n: int, align: bool, lang: str = "en",
          enabled: bool = True) -> build_mod.BuildPlan:
    recipe = RECIPES["librispeech"]
    options = BuildOptions(shard_size=64, align={"enabled": enabled} if enabled else None)
    return plan_build(recipe, tmp_path, tmp_path / f"out{n}{align}{lang}", options,
                      items=[_record(i, align, lang) for i in range(n)])


def test_runner_auto_picks_local_under_the_threshold_and_ray_from_it(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert AUTO_LOCAL_ITEMS == 500
    small = _plan(tmp_path, AUTO_LOCAL_ITEMS - 1, align=False)
    assert small.work() == 499 and choose_runner("auto", [small]) == "local"
    # the whole command counts: two recipes over the threshold together go to Ray
    other = _plan(tmp_path, 1, align=False)
    assert choose_runner("auto", [small, other]) == "ray"
    # an item to align counts five times; a skipped language and ALIGN=0 do not
    aligned = _plan(tmp_path, 100, align=True)
    assert aligned.work() == 500 and choose_runner("auto", [aligned]) == "ray"
    aligned.align_skipped = {"en": "test"}
    assert aligned.work() == 100 and choose_runner("auto", [aligned]) == "local"
    assert _plan(tmp_path, 100, align=True, enabled=False).work() == 100
    assert choose_runner("ray", [small]) == "ray" and choose_runner("local", [other]) == "local"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert choose_runner("auto", [other]) == "ray"  # a cluster named: always Ray
    with pytest.raises(BuildError, match="runner='fast': choose one of auto, ray, local"):
        choose_runner("fast", [other])


def _in_process(todo, jobs):
    """What run_ray yields for ``todo`` and ``jobs``, written in this process (for tests
    that replace Ray)."""
    plans = [build_mod.BuildPlan(None, Path(), o, opts, [], [], [], {}, [])  # type: ignore[arg-type]
             for o, opts in jobs]
    yield from build_mod._run_local(todo, plans)


def test_all_recipes_of_a_command_go_to_one_ray_job(tmp_path, monkeypatch):
    """runner=ray: the shards of every recipe are handed to Ray once (one session), and
    each recipe is finished from the parts that come back."""
    calls = []

    def fake_run_ray(todo, jobs, workers, prestart):
        calls.append(([(j, s.name) for j, s, _ in todo], [str(o) for o, _ in jobs], prestart))
        yield from _in_process(todo, jobs)

    import pipeline.build_ray

    monkeypatch.setattr(pipeline.build_ray, "run_ray", fake_run_ray)
    plans = []
    for name in ("clotho", "esc50"):
        recipe = RECIPES[name]
        corpus = recipe.locate(recipe.make_sample(tmp_path / "raw" / name))
        plans.append(plan_build(recipe, corpus, tmp_path / name, BuildOptions(shard_size=8)))
    reports = run_builds(plans, runner="ray", progress=False, pictures="off")
    assert len(calls) == 1
    assert calls[0][0] == [(0, "clotho-development-000000.tar"),
                           (0, "clotho-evaluation-000000.tar"),
                           (0, "clotho-validation-000000.tar"),
                           (1, "esc50-fold1-000000.tar"), (1, "esc50-fold2-000000.tar"),
                           (1, "esc50-fold3-000000.tar"), (1, "esc50-fold4-000000.tar"),
                           (1, "esc50-fold5-000000.tar")]
    assert calls[0][1] == [str(tmp_path / "clotho"), str(tmp_path / "esc50")]
    assert calls[0][2] is False  # 39 items: Ray's workers start with its first tasks
    assert [r["samples"] for r in reports] == [14, 25]
    assert (tmp_path / "esc50" / "index.json").is_file()
    assert "## Pictures" not in (tmp_path / "clotho" / "README.md").read_text()  # pictures=off


def test_ray_prestarts_its_workers_for_a_large_build(tmp_path, monkeypatch):
    """A command with RAY_PRESTART_ITEMS or more work asks Ray for its workers at once."""
    got = []

    def fake_run_ray(todo, jobs, workers, prestart):
        got.append(prestart)
        yield from _in_process(todo, jobs)

    import pipeline.build_ray

    monkeypatch.setattr(pipeline.build_ray, "run_ray", fake_run_ray)
    monkeypatch.setattr(build_mod, "RAY_PRESTART_ITEMS", 25)
    recipe = RECIPES["esc50"]
    corpus = recipe.locate(recipe.make_sample(tmp_path / "raw"))
    plan = plan_build(recipe, corpus, tmp_path / "out", BuildOptions(shard_size=8))
    assert plan.work() == 25
    run_builds([plan], runner="ray", progress=False, pictures="off")
    assert got == [True]


def test_aligner_is_shared_and_loads_nothing_for_records_without_speech(tmp_path, monkeypatch):
    # A fresh cache of this process's aligners: earlier tests in the same process may have
    # loaded the English model into the shared aligner of these options already.
    monkeypatch.setattr(stages, "_ALIGNERS", {})
    align = {"enabled": True}
    a = SampleMaker(BuildOptions(align=align))
    b = SampleMaker(BuildOptions(long_audio="truncate",
                                 align={"enabled": True, "skip_languages": ["zh"]}))
    assert a.aligner is b.aligner is shared_aligner(align)  # one per worker process
    assert b.skip_languages == {"zh"} and a.skip_languages == frozenset()
    assert SampleMaker(BuildOptions()).aligner is None  # ALIGN=0: no aligner at all
    report = build_sample("clotho", tmp_path / "out", tmp_path / "raw", align=align)
    assert report["samples"] == 14
    assert a.aligner._backends == {}  # no speech record: no model was loaded


def test_sample_corpus_is_written_once_per_version(tmp_path, monkeypatch):
    recipe = RECIPES["clotho"]
    made = []

    def make_sample(target):
        made.append(target)
        return recipe.make_sample(target)

    sample = dataclasses.replace(recipe, make_sample=make_sample)
    first = cli.sample_corpus(sample, tmp_path / "s")
    assert cli.sample_corpus(sample, tmp_path / "s") == first and len(made) == 1
    assert json.loads((tmp_path / "s" / ".sample.json").read_text())["root"] == "."
    monkeypatch.setattr(cli, "_samples_version", lambda: "changed")
    assert cli.sample_corpus(sample, tmp_path / "s") == first and len(made) == 2
