"""AISHELL-1 (Mandarin ASR, and SRWT through the alignment stage, one token per character).

Layout (openslr.org/33), after extracting ``data_aishell.tgz`` and then each speaker's
``data_aishell/wav/<spk>.tar.gz`` inside ``data_aishell/wav/``::

    data_aishell/transcript/aishell_transcript_v0.8.txt     <uttid> <space separated words>
    data_aishell/wav/{train,dev,test}/<spk>/<uttid>.wav     (16 kHz)

One transcript line: ``BAC009S0002W0122 而 对 楼市 成交 抑制 作用 最 大 的 限 购``

Target: the official transcript's characters in order with the spaces between words
removed (``而对楼市成交抑制作用最大的限购``): Qwen-Audio's Aishell prompts emit Chinese
without spaces, and its scorer compares characters.  Nothing else is changed: the
transcript is already the ``<|wo_itn|>`` style of the ASR prompt (spoken form, numbers
in characters, no punctuation).  Records ask for alignment, so a build with alignment on
adds an SRWT entry timed per character.

The transcript covers all three splits; the split is the folder the audio is in.  A line
whose speaker has no audio folder at all (not downloaded, or its ``.tar.gz`` not unpacked)
is reported once per speaker rather than once per line.  The transcript is UTF-8; a line
that is not is a reject quoting the bytes (transcripts are targets).
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from dataset_recipes.common import Folder, Rejects, file_names, find_root, rel
from dataset_recipes.samples.synth import syllables
from dataset_recipes.textfiles import read_lines
from pipeline.download import Downloads, Remote
from pipeline.recipe import CorpusInfo, Recipe
from pipeline.record import Label, Record, Reject

SPLITS = {"train": "train", "dev": "valid", "test": "test"}
TRANSCRIPT = Path("transcript") / "aishell_transcript_v0.8.txt"
URLS = ("https://www.openslr.org/resources/33/data_aishell.tgz",
        "https://www.openslr.org/resources/33/resource_aishell.tgz")
#: md5 of each archive of openslr resource 33, as PaddleSpeech's AISHELL download script
#: (PaddlePaddle/PaddleSpeech, dataset/aishell/aishell.py: MD5_DATA, MD5_RESOURCE) lists and
#: verifies them for the same openslr.org/resources/33 files; no size is given there.
MD5 = {"data_aishell.tgz": "2f494334227864a8a8fec932999db9d8",
       "resource_aishell.tgz": "957d480a0fcac85fc18e550756f624e5"}
_LINE = re.compile(r"^(BAC009(S\d{4})W\d{4})\s+(\S.*)$")

INFO = CorpusInfo(
    name="aishell1",
    title="AISHELL-1",
    homepage="https://www.openslr.org/33",
    licence="Apache License 2.0",
    citation="""@inproceedings{bu2017aishell,
  title={{AISHELL-1}: An open-source {M}andarin speech corpus and a speech recognition baseline},
  author={Bu, Hui and Du, Jiayu and Na, Xingyu and Wu, Bengu and Zheng, Hao},
  booktitle={O-COCOSDA}, pages={1--5}, year={2017}}""",
    tasks=("asr", "srwt"),
    splits=SPLITS,
    layout="  data_aishell/transcript/aishell_transcript_v0.8.txt\n"
    "  data_aishell/wav/{train,dev,test}/<spk>/<uttid>.wav  (each wav/<spk>.tar.gz unpacked)",
    download_hint="make download, or fetch " + URLS[0] + " into RAW, extract it "
    "(tar xzf data_aishell.tgz -C RAW) and unpack every speaker archive: "
    "cd RAW/data_aishell/wav && for f in *.tar.gz; do tar xzf $f; done",
    notes="ASR target (<|wo_itn|>): the transcript's characters with the spaces between words "
    "removed, as Qwen-Audio's Aishell prompts emit Chinese; the transcript is already spoken "
    "form without punctuation. SRWT (alignment stage) per character.",
)


def _is_root(path: Path) -> bool:
    return (path / TRANSCRIPT).is_file()


def locate(raw: Path) -> Path:
    """The ``data_aishell`` folder: ``raw`` itself or ``raw/data_aishell``."""
    return find_root(raw, INFO, _is_root, ("data_aishell",))


def _audio_index(root: Path) -> tuple[dict[str, tuple[str, Folder]], set[str]]:
    """{uttid: (split, speaker folder)} of every unpacked wav, and the speakers that have a
    folder."""
    index: dict[str, tuple[str, Folder]] = {}
    speakers: set[str] = set()
    for split in SPLITS:
        for spk in sorted(p for p in (root / "wav" / split).glob("S*") if p.is_dir()):
            speakers.add(spk.name)
            folder = Folder(spk, root)
            for name in sorted(file_names(spk)):
                if name.endswith(".wav"):
                    index[name[:-4]] = (split, folder)
    return index, speakers


def prepare(root: Path) -> Iterator[Record | Reject]:
    """Records of every transcript line whose audio is unpacked; rejects for the rest."""
    trans = root / TRANSCRIPT
    src = rel(trans, root)
    index, speakers = _audio_index(root)
    listed: dict[str, int] = {}
    absent: dict[str, list[int]] = {}
    rejects = Rejects(INFO.name, root)
    for item in read_lines(trans, src, INFO.name, "unknown"):
        if isinstance(item, Reject):
            yield item
            continue
        n, line = item
        m = _LINE.match(line.strip())
        if not m:
            yield rejects.malformed("unknown", trans, n, "'BAC009S<spk>W<utt> <words>'",
                                    "transcript line")
            continue
        utt, spk, words = m.groups()
        if utt in listed:
            yield Reject(INFO.name, "unknown", src, f"{utt} listed twice (first on line "
                         f"{listed[utt]})", line=n)
            continue
        listed[utt] = n
        if utt not in index:
            if spk in speakers:
                yield Reject(INFO.name, "unknown", src, f"{utt}: listed but wav/<split>/{spk}/"
                             f"{utt}.wav is missing", line=n)
            else:
                absent.setdefault(spk, []).append(n)
            continue
        split, folder = index[utt]
        yield Record(INFO.name, split, utt, folder.audio(f"{utt}.wav"),
                     folder.source(f"{utt}.wav"), "zh",
                     (Label.make("asr", "".join(words.split()), lang="zh"),), align=True,
                     listing=src, line=n)
    for spk, lines in absent.items():
        packed = f" (unpack wav/{spk}.tar.gz inside wav/)" if (
            root / "wav" / f"{spk}.tar.gz").is_file() else ""
        yield Reject(INFO.name, "unknown", src, f"speaker {spk}: {len(lines)} transcript "
                     f"line(s) but no audio folder wav/<split>/{spk}{packed}", line=lines[0])
    for utt, (split, folder) in index.items():
        if utt not in listed:
            yield rejects.at(split, folder.path / f"{utt}.wav",
                             f"audio file has no line in {TRANSCRIPT.name}")


def unpack_speakers(root: Path) -> int:
    """Unpack every ``wav/<spk>.tar.gz`` of an extracted ``data_aishell`` folder (refusing
    members that would land outside ``wav/``); return how many were unpacked.  Archives
    whose speaker folder already exists are skipped, so a rerun is cheap."""
    root, count = Path(root), 0
    for archive in sorted((root / "wav").glob("S*.tar.gz")):
        spk = archive.name[: -len(".tar.gz")]
        if any((root / "wav" / s / spk).is_dir() for s in SPLITS):
            continue
        with tarfile.open(archive) as tar:
            tar.extractall(root / "wav", filter="data")
        count += 1
    return count


#: The two archives, then every speaker archive inside ``data_aishell/wav`` is unpacked.
DOWNLOADS = Downloads(files=tuple(Remote(url, md5=MD5[url.rsplit("/", 1)[-1]]) for url in URLS),
                      unpack=lambda raw: unpack_speakers(locate(raw)))


# ------------------------------------------------------------------ sample corpus
_SAMPLE = {
    "train": ("S0002", ["而 对 楼市 成交 抑制 作用 最 大 的 限 购", "今天 天气 很 好",
                        "银行 贷款 利率 下调", "房价 上涨 趋势 明显"]),
    "dev": ("S0724", ["我们 明天 去 北京", "这 是 一个 测试"]),
    "test": ("S0764", ["市场 需求 持续 增长", "他们 正在 开会"]),
}


def make_sample(target: Path) -> Path:
    """Write a small AISHELL-1 corpus (already unpacked) of speech-like synthetic audio with
    one syllable per character.  The audio is not real Mandarin: no Mandarin recording is
    bundled, so the transcripts give the structure, not the words, of each clip."""
    root = Path(target) / "data_aishell"
    rng = np.random.default_rng(0)
    lines = []
    for split, (spk, texts) in _SAMPLE.items():
        (root / "wav" / split / spk).mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(texts):
            utt = f"BAC009{spk}W{122 + i:04d}"
            n = len(text.replace(" ", ""))
            sf.write(root / "wav" / split / spk / f"{utt}.wav", syllables(n, rng), 16000,
                     subtype="PCM_16")
            lines.append(f"{utt} {text}")
    (root / "transcript").mkdir(parents=True, exist_ok=True)
    (root / TRANSCRIPT).write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")
    return Path(target)


RECIPE = Recipe(info=INFO, locate=locate, prepare=prepare, make_sample=make_sample,
                download=DOWNLOADS)
