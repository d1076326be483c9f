"""LibriSpeech (ASR, and SRWT through the alignment stage).

Layout (openslr.org/12), after extracting e.g. ``dev-clean.tar.gz``::

    LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt
    LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac   (16 kHz)

One transcript line: ``1272-128104-0000 MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES``

Target style (:func:`asr_text`): the ASR prompt ends with ``<|wo_itn|>``, which the
released model answers with lower-case spoken words, so the transcript is lower-cased
(``mister quilter is the apostle of the middle classes``); nothing else changes, as it is
already spoken form (numbers as words, no punctuation but the apostrophes of words such
as ``don't``, which stay).  SRWT words come from this text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import soundfile as sf

from dataset_recipes.common import SAMPLES_DIR, Folder, Rejects, file_names, find_root, rel
from dataset_recipes.textfiles import read_lines
from pipeline.download import Downloads, Remote
from pipeline.recipe import CorpusInfo, Recipe
from pipeline.record import Label, Record, Reject

SPLITS = {
    "train-clean-100": "train", "train-clean-360": "train", "train-other-500": "train",
    "dev-clean": "valid", "dev-other": "valid", "test-clean": "test", "test-other": "test",
}
URL = "https://www.openslr.org/resources/12/{split}.tar.gz"
#: ``(md5, sha256)`` of each archive: md5 as published in openslr's
#: https://www.openslr.org/resources/12/md5sum.txt, sha256 as pinned by torchaudio's loader.
CHECKSUMS = {
    "dev-clean": ("42e2234ba48799c1f50f24a7926300a1",
                  "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3"),
    "dev-other": ("c8d0bcc9cca99d4f8b62fcc847357931",
                  "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365"),
    "test-clean": ("32fa31d27d2e1cad72775fee3f4849a9",
                   "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23"),
    "test-other": ("fb5a50374b501bb3bac4815ee91d3135",
                   "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29"),
    "train-clean-100": ("2a93770f6d5c6c964bc36631d331a522",
                        "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2"),
    "train-clean-360": ("c0e676e450a7ff2f54aeade5171606fa",
                        "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf"),
    "train-other-500": ("d1a0fd59409feb2c614ce4d30c387708",
                        "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2"),
}
_LINE = re.compile(r"^(\d+-\d+-\d+)\s+(\S.*)$")

INFO = CorpusInfo(
    name="librispeech",
    title="LibriSpeech",
    homepage="https://www.openslr.org/12",
    licence="CC BY 4.0",
    citation="""@inproceedings{panayotov2015librispeech,
  title={Librispeech: an ASR corpus based on public domain audio books},
  author={Panayotov, Vassil and Chen, Guoguo and Povey, Daniel and Khudanpur, Sanjeev},
  booktitle={ICASSP}, pages={5206--5210}, year={2015}}""",
    tasks=("asr", "srwt"),
    splits=SPLITS,
    layout="  LibriSpeech/<split>/<spk>/<chap>/<spk>-<chap>.trans.txt and <spk>-<chap>-<utt>.flac\n"
    f"  with <split> among {', '.join(SPLITS)}",
    download_hint="download e.g. " + URL.format(split="dev-clean")
    + " and extract it into RAW (tar xzf dev-clean.tar.gz -C RAW)",
    notes="ASR target (<|wo_itn|>): the transcript lower-cased (MISTER QUILTER -> mister "
    "quilter); it is already spoken form (no punctuation but apostrophes inside words). "
    "SRWT words are these words.",
)


def _is_root(path: Path) -> bool:
    return any((path / s).is_dir() for s in SPLITS) and any(path.glob("*/*/*/*.trans.txt"))


def locate(raw: Path) -> Path:
    """The ``LibriSpeech`` folder: ``raw`` itself or ``raw/LibriSpeech``."""
    return find_root(raw, INFO, _is_root, ("LibriSpeech",))


def asr_text(transcript: str) -> str:
    """The ``<|wo_itn|>`` target of a transcript: lower case, whitespace collapsed."""
    return " ".join(transcript.lower().split())


def _parse_transcript(trans: Path, root: Path, split: str) -> Iterator[Record | Reject]:
    """Records of one chapter's transcript (UTF-8; a line that is not is a reject quoting
    the bytes: transcripts are targets)."""
    listed, src = set(), rel(trans, root)
    audio, rejects = file_names(trans.parent), Rejects(INFO.name, root)
    folder = Folder(trans.parent, root)
    for item in read_lines(trans, src, INFO.name, split):
        if isinstance(item, Reject):
            yield item
            continue
        n, line = item
        m = _LINE.match(line.strip())
        if not m:
            yield rejects.malformed(split, trans, n, "'<spk>-<chap>-<utt> TEXT'",
                                    "transcript line")
            continue
        utt, text = m.groups()
        name = f"{utt}.flac"
        listed.add(name)
        if name not in audio:
            yield rejects.missing(split, trans.parent / name, trans, n)
            continue
        yield Record(INFO.name, split, utt, folder.audio(name), folder.source(name), "en",
                     (Label.make("asr", asr_text(text), lang="en"),), align=True,
                     listing=src, line=n)
    yield from rejects.unlisted(split, (trans.parent / a for a in sorted(audio)
                                        if a.endswith(".flac")), listed,
                                f"audio file has no line in {trans.name}")


def prepare(root: Path) -> Iterator[Record | Reject]:
    """Records of every split present under the ``LibriSpeech`` folder."""
    for split in SPLITS:
        for trans in sorted((root / split).glob("*/*/*.trans.txt")):
            yield from _parse_transcript(trans, root, split)


def make_sample(target: Path) -> Path:
    """Write a sample corpus: 2 real utterances in dev-clean, 22 synthetic in train-clean-100."""
    import json

    root = Path(target) / "LibriSpeech"
    chap = root / "dev-clean"
    lines: dict[Path, list[str]] = {}
    texts = {
        "1272-128104-0000": "MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES AND WE ARE "
        "GLAD TO WELCOME HIS GOSPEL",
        "2412-153948-0000": "IF THE READER WILL EXCUSE ME I WILL SAY NOTHING OF MY ANTECEDENTS "
        "NOR OF THE CIRCUMSTANCES WHICH LED ME TO LEAVE MY NATIVE COUNTRY THE NARRATIVE WOULD "
        "BE TEDIOUS TO HIM AND PAINFUL TO MYSELF",
    }
    for utt, text in texts.items():
        spk, ch, _ = utt.split("-")
        d = chap / spk / ch
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{utt}.flac").write_bytes((SAMPLES_DIR / "speech" / f"{utt}.flac").read_bytes())
        lines.setdefault(d / f"{spk}-{ch}.trans.txt", []).append(f"{utt} {text}")
    sentences = json.loads((SAMPLES_DIR / "espeak" / "sentences.json").read_text())
    d = root / "train-clean-100" / "9000" / "1"
    d.mkdir(parents=True, exist_ok=True)
    for i, (sid, sentence) in enumerate(sorted(sentences.items())):
        utt = f"9000-1-{i:04d}"
        data, sr = sf.read(SAMPLES_DIR / "espeak" / f"{sid}.flac", dtype="int16")
        sf.write(d / f"{utt}.flac", data, sr, format="FLAC", subtype="PCM_16")
        words = re.sub(r"[^A-Za-z' ]", " ", sentence).upper().split()
        lines.setdefault(d / "9000-1.trans.txt", []).append(f"{utt} {' '.join(words)}")
    for path, rows in lines.items():
        path.write_text("\n".join(sorted(rows)) + "\n", encoding="utf-8")
    return Path(target)


#: One archive per split, verified with both checksums.
DOWNLOADS = Downloads(per_split={
    s: (Remote(URL.format(split=s), md5=CHECKSUMS[s][0], sha256=CHECKSUMS[s][1]),)
    for s in SPLITS})


RECIPE = Recipe(info=INFO, locate=locate, prepare=prepare, make_sample=make_sample,
                download=DOWNLOADS)
