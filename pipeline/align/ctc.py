"""Multilingual forced alignment with a wav2vec2 CTC model, as whisperx does it.

The model is loaded with ``whisperx.alignment.load_align_model`` from a local directory
only: ``whisperx.alignment.align`` itself downloads NLTK data, so the alignment is done
here with ``torchaudio.functional.forced_align`` on the model's log-probabilities (see
docs/known-traps.md).  A model named by its Hugging Face id is looked up in the local
Hugging Face cache and never downloaded; :func:`resolve_model` says what to fetch when
it is missing.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.align.base import AlignConfigError, AlignmentError
from pipeline.align.text import CHARACTER_LANGUAGES
from pipeline.format import SAMPLE_RATE

_WORD_DELIMITER = "|"


class ModelNotFound(AlignConfigError):
    """A configured alignment model is not on this machine (never downloaded in a build).

    ``what`` says which model is missing where, in one line; the message adds the ways on.
    """

    def __init__(self, message: str, what: str) -> None:
        super().__init__(message)
        self.what = what


def resolve_model(name: str, lang: str, cache_dir: str | None = None) -> Path:
    """Return the local directory of model ``name`` (a directory or a Hugging Face id).

    Raises :class:`ModelNotFound` when it is not here, with every way on: the exact fetch
    command, pointing ``align.whisperx_models.<lang>`` at a local folder, or building
    without word timestamps for the language; :class:`AlignConfigError` for a folder that
    holds no model.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise AlignConfigError(
                f"whisperx model for {lang!r}: {path} has no config.json; point "
                f"align.whisperx_models.{lang} at a directory written by save_pretrained"
            )
        return path
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") != 1:
        raise ModelNotFound(
            f"whisperx model for {lang!r}: directory {path} not found; set "
            f"align.whisperx_models.{lang} to a local model directory or a Hugging Face id, "
            f"or {_skip_hint(lang)}", what=f"the model directory {path} does not exist"
        )
    folder = f"models--{name.replace('/', '--')}"
    where = cache_dir or hub_cache()
    try:
        if not (Path(where) / folder).is_dir():  # (no model: no huggingface_hub import)
            raise FileNotFoundError(folder)
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, cache_dir=cache_dir, local_files_only=True))
    except (FileNotFoundError, OSError, ValueError):  # (LocalEntryNotFoundError: ValueError)
        raise ModelNotFound(
            f"whisperx model for {lang!r}: {name} is not in the Hugging Face cache {where}. "
            f"Three ways on:\n"
            f"    1. fetch it: `huggingface-cli download {name}` (on a machine without "
            f"internet: run it on one with, then copy its {folder} folder into {where});\n"
            f"    2. use a copy you have: align.whisperx_models.{lang}=<local folder> (a "
            f"folder written by save_pretrained, e.g. by `huggingface-cli download {name} "
            f"--local-dir <folder>`);\n"
            f"    3. {_skip_hint(lang)}",
            what=f"{name} is not in the Hugging Face cache {where} "
                 f"(`huggingface-cli download {name}` fetches it)",
        ) from None


def hub_cache() -> str:
    """The Hugging Face hub cache folder, found as ``huggingface_hub.constants`` finds it
    (``HF_HUB_CACHE``, ``HUGGINGFACE_HUB_CACHE``, ``HF_HOME``/hub, ``XDG_CACHE_HOME``), without
    importing huggingface_hub (about a second) for a build that may not need it."""
    home = os.path.expandvars(os.path.expanduser(os.getenv("HF_HOME", os.path.join(
        os.getenv("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")),
        "huggingface"))))
    legacy = os.getenv("HUGGINGFACE_HUB_CACHE", os.path.join(home, "hub"))
    return os.path.expandvars(os.path.expanduser(os.getenv("HF_HUB_CACHE", legacy)))


def _skip_hint(lang: str) -> str:
    return (f"build without word timestamps for {lang!r}: align.skip_languages=[{lang}] "
            f"(make: ARGS='align.skip_languages=[{lang}]'; its ASR task stays), or ALIGN=0 "
            f"for no SRWT at all")


class CtcBackend:
    """A wav2vec2 CTC aligner for one language; loads its model once."""

    name = "whisperx"

    def __init__(self, model_dir: Path, lang: str, device: str = "cpu") -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"  # belt and braces: a local dir needs no network
        from whisperx.alignment import load_align_model

        self.lang = lang
        self.device = device
        self.model, meta = load_align_model(lang, device, model_name=str(model_dir))
        self.model.eval()
        self.dictionary: dict[str, int] = meta["dictionary"]
        self.blank = next(
            (i for c, i in self.dictionary.items() if c in ("[pad]", "<pad>")), 0
        )

    def _targets(self, units: list[str]) -> tuple[list[int], list[int]]:
        """Token ids of ``units`` and, per token, the unit index (-1 for a delimiter)."""
        # languages written without spaces are trained without delimiters between characters
        use_delim = _WORD_DELIMITER in self.dictionary and self.lang not in CHARACTER_LANGUAGES
        ids: list[int] = []
        owner: list[int] = []
        for k, unit in enumerate(units):
            chars = [self.dictionary[c] for c in unit.lower() if c in self.dictionary]
            if not chars:
                raise AlignmentError(
                    f"{unit!r} has no character in the {self.lang} alignment model's vocabulary"
                )
            if use_delim and ids:
                ids.append(self.dictionary[_WORD_DELIMITER])
                owner.append(-1)
            ids.extend(chars)
            owner.extend([k] * len(chars))
        return ids, owner

    def emissions(self, samples: np.ndarray) -> Any:
        """Frame-level log-probabilities ``(1, frames, vocab)`` of the model."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
        x = (x - x.mean()) / torch.sqrt(x.var() + 1e-7)  # wav2vec2 feature normalization
        with torch.inference_mode():
            logits = self.model(x.unsqueeze(0).to(self.device)).logits
        return torch.log_softmax(logits.float(), dim=-1).cpu()

    def align_units(self, samples: np.ndarray, units: list[str]) -> list[tuple[float, float]]:
        """Return ``(start, end)`` seconds for each unit, or raise :class:`AlignmentError`."""
        import torch
        import torchaudio.functional as taf

        ids, owner = self._targets(units)
        emissions = self.emissions(samples)
        frames = emissions.shape[1]
        targets = torch.tensor([ids], dtype=torch.int32)
        try:
            with warnings.catch_warnings():  # deprecated in torchaudio 2.8, still the tool
                warnings.simplefilter("ignore", UserWarning)
                path, scores = taf.forced_align(emissions, targets, blank=self.blank)
        except RuntimeError as err:
            raise AlignmentError(
                f"CTC alignment failed ({err}); is the audio too short for the transcript?"
            ) from None
        spans = taf.merge_tokens(path[0], scores[0].exp(), blank=self.blank)
        if len(spans) != len(ids):
            raise AlignmentError(f"CTC alignment found {len(spans)} of {len(ids)} tokens")
        seconds_per_frame = len(samples) / SAMPLE_RATE / frames
        out: list[list[float]] = [[-1.0, -1.0] for _ in units]
        for span, k in zip(spans, owner, strict=True):
            if k < 0:
                continue
            if out[k][0] < 0:
                out[k][0] = span.start * seconds_per_frame
            out[k][1] = span.end * seconds_per_frame
        return [(s, e) for s, e in out]
