"""Every sample corpus builds with the defaults offline (issue 17): a sample build whose
language has no alignment model on this machine gets ASR without SRWT and says why; a
build of a real corpus stops before any work, naming the three ways on."""

import json
import os
import subprocess
import sys
from pathlib import Path

from dataset_recipes import RECIPES

ZH_MODEL = "jonatasgrosman/wav2vec2-large-xlsr-53-chinese-zh-cn"
ASR_ZH = "<|startoftranscript|><|zh|><|transcribe|><|zh|><|notimestamps|><|wo_itn|>"


def _build(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The build command line, with an empty Hugging Face cache (no zh model)."""
    cache = tmp_path / "hf-cache"
    cache.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env |= {"HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf-home"),
            "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "dataset_recipes.build", "recipe=aishell1",
                           "progress=false", "card_pictures=false", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)


def test_sample_build_without_the_zh_model_builds_asr_only_and_says_why(tmp_path):
    proc = _build(tmp_path, "source=sample", f"raw={tmp_path / 'raw'}", "out=out")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "aishell1: 8 samples, 0.0051 h, 0 rejects" in proc.stdout
    note = ("note: aishell1 (sample): no alignment model for 'zh' on this machine, so its "
            "items are built with ASR only, without SRWT.")
    assert proc.stderr.count(note) == 1  # once, at the start
    assert f"`huggingface-cli download {ZH_MODEL}`" in proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    why = (f"sample build on a machine without the alignment model: {ZH_MODEL} is not in "
           f"the Hugging Face cache {tmp_path / 'hf-cache'} (`huggingface-cli download "
           f"{ZH_MODEL}` fetches it)")
    assert report["align_skipped"] == {"zh": why}
    assert {s: v["alignment"] for s, v in report["splits"].items()} == {
        s: {"attempted": 0, "aligned": 0, "success_rate": None, "skipped": {"zh": n}}
        for s, n in (("dev", 2), ("test", 2), ("train", 4))}
    assert {t for v in report["splits"].values() for t in v["tasks"]} == {"asr"}
    assert report["rejects"] == 0
    assert report["options"]["align"]["skip_languages"] == ["zh"]
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| train | train | 4 | 0.0030 | 0 | 4 without SRWT (zh, see below) |" in card
    assert f"No word timestamps (SRWT) for language `zh`: {why}" in card
    assert ASR_ZH.replace("|", "\\|") in card


def test_build_of_a_real_corpus_stops_before_any_work_with_three_ways_on(tmp_path):
    raw = RECIPES["aishell1"].make_sample(tmp_path / "raw")
    proc = _build(tmp_path, f"raw={raw}", "out=out")
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = proc.stderr
    assert err.startswith("error: alignment cannot run:\n  whisperx model for 'zh': "
                          f"{ZH_MODEL} is not in the Hugging Face cache")
    assert f"1. fetch it: `huggingface-cli download {ZH_MODEL}`" in err
    assert "2. use a copy you have: align.whisperx_models.zh=<local folder>" in err
    assert ("3. build without word timestamps for 'zh': align.skip_languages=[zh] "
            "(make: ARGS='align.skip_languages=[zh]'; its ASR task stays), or ALIGN=0") in err
    assert not (tmp_path / "out").exists()  # stopped before any work
    # the third way works: the same corpus builds with ASR only, the report says so
    proc = _build(tmp_path, f"raw={raw}", "out=out", "align.skip_languages=[zh]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["align_skipped"] == {"zh": "left out by align.skip_languages"}
    assert report["splits"]["train"]["alignment"]["skipped"] == {"zh": 4}


def test_hub_cache_is_found_as_huggingface_hub_finds_it(tmp_path):
    """The missing-model check reads the cache folder without importing huggingface_hub;
    it must look where huggingface_hub would."""
    from pipeline.align.ctc import hub_cache

    code = ("from pipeline.align.ctc import hub_cache; "
            "from huggingface_hub.constants import HF_HUB_CACHE; print(hub_cache() == HF_HUB_CACHE,"
            " hub_cache())")
    base = {k: v for k, v in os.environ.items()
            if k not in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME")}
    for extra, want in (({}, None), ({"XDG_CACHE_HOME": str(tmp_path / "x")},
                                     tmp_path / "x" / "huggingface" / "hub"),
                        ({"HF_HOME": str(tmp_path / "h")}, tmp_path / "h" / "hub"),
                        ({"HUGGINGFACE_HUB_CACHE": str(tmp_path / "l")}, tmp_path / "l"),
                        ({"HF_HUB_CACHE": str(tmp_path / "c"), "HF_HOME": str(tmp_path / "h")},
                         tmp_path / "c")):
        out = subprocess.run([sys.executable, "-c", code], env={**base, **extra},
                             capture_output=True, text=True, check=True).stdout.split()
        assert out[0] == "True", (extra, out)
        if want is not None:
            assert out[1] == str(want)
    assert Path(hub_cache()).name == "hub" or "HF_HUB_CACHE" in os.environ
