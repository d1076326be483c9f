"""Card pictures off the build's hot path: drawn by a helper process while shards are written.

matplotlib takes about a second to import and a few tenths of a second per picture; a
build that waited for it would spend that on every recipe, and a command building a small
corpus would spend most of its time on it.  :class:`CardPictures` in ``process`` mode
starts ``python -m pipeline.card_pictures`` when the build starts writing shards (its
imports overlap the writing), hands it each finished recipe (output folder, shard files,
corpus facts) as a JSON line, and collects the card's Markdown section
(:func:`pipeline.card_plots.card_section`) from its answers; the build process itself
never imports matplotlib.  Each shard is also handed over as soon as it is written
(:meth:`CardPictures.prefetch`), so that the helper reads its samples' figures while the
build goes on and only draws once the last shard is in.  ``inline`` draws in the calling
process, ``off`` writes the card's tables without pictures.  The pictures are the same
bytes in every mode.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pipeline.recipe import CorpusInfo

if TYPE_CHECKING:  # (card_plots is imported by the helper, when it draws)
    from pipeline.card_plots import SampleFacts

MODES = ("process", "inline", "off")


class CardPicturesError(RuntimeError):
    """The picture helper failed; the message holds its error output."""


class CardPictures:
    """Draws the card sections of finished recipes (see the module docstring)."""

    def __init__(self, mode: str = "process") -> None:
        if mode not in MODES:
            raise ValueError(f"card pictures mode {mode!r}: choose one of {', '.join(MODES)}")
        self.mode = mode
        self.proc: subprocess.Popen[str] | None = None
        self.errors: Any = None
        self.answers: dict[str, dict[str, Any]] = {}
        self.done = threading.Condition()
        self.reader: threading.Thread | None = None

    def __enter__(self) -> CardPictures:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        """Start the helper process (``process`` mode; once; later calls do nothing)."""
        if self.mode != "process" or self.proc is not None:
            return
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        self.errors = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.card_pictures"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.errors, text=True, env=env)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            answer = json.loads(line)
            with self.done:
                self.answers[answer["key"]] = answer
                self.done.notify_all()
        with self.done:
            self.done.notify_all()

    def submit(self, key: Any, out_dir: Path, shards: Sequence[Path], info: CorpusInfo) -> None:
        """Ask for the card section of the recipe ``info`` whose shards are ``shards``."""
        request = {"key": str(key), "out_dir": str(out_dir),
                   "shards": [str(p) for p in shards], "info": dataclasses.asdict(info)}
        if self.mode != "process":
            self.answers[str(key)] = answer(request, draw=self.mode == "inline")
            return
        self.start()
        self._send(request)

    def _send(self, message: dict[str, Any]) -> None:
        """One JSON line to the helper; one that has stopped is reported by :meth:`result`,
        with its output, not here."""
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except OSError:  # (BrokenPipeError: the helper stopped)
            return

    def prefetch(self, shard: Path) -> None:
        """Let the helper read the figures of ``shard`` (a finished shard file) now, ahead
        of the request that will name it (``process`` mode, once the helper is started;
        otherwise nothing: the request reads it).  The helper keeps them for as long as
        the file is unchanged; a shard it cannot read is read again, and its error
        reported, by the request."""
        if self.proc is not None:
            self._send({"prefetch": str(shard)})

    def result(self, key: Any) -> list[str]:
        """The Markdown lines of ``key``'s card section (waits for the helper)."""
        with self.done:
            while str(key) not in self.answers:
                if self.proc is None or (self.proc.poll() is not None and not (
                        self.reader and self.reader.is_alive())):
                    raise CardPicturesError(f"the card picture helper stopped:\n{self._log()}")
                self.done.wait(timeout=1.0)
        got = self.answers[str(key)]
        if "error" in got:
            raise CardPicturesError(f"drawing the card pictures of {got['key']} failed:\n"
                                    f"{got['error']}")
        return list(got["lines"])

    def _log(self) -> str:
        if self.errors is None:
            return ""
        self.errors.seek(0)
        return self.errors.read()[-3000:]

    def close(self) -> None:
        """Let the helper finish its work and exit; stop it if it does not."""
        if self.proc is None:
            return
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=300)
        except (subprocess.TimeoutExpired, OSError):
            self.proc.kill()
            self.proc.wait()
        if self.reader is not None:
            self.reader.join(timeout=10)
        self.errors.close()
        self.proc = None


class FactCache:
    """The helper's :func:`~pipeline.card_plots.shard_facts` of shards read ahead, each
    kept with the file's identity, size and modification time: a file changed since is
    read again."""

    def __init__(self) -> None:
        self.facts: dict[str, tuple[tuple[int, int, int], list[SampleFacts]]] = {}

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int, int]:
        st = path.stat()
        return st.st_ino, st.st_size, st.st_mtime_ns

    def read(self, shard: Path) -> None:
        """Read ``shard``'s figures now (and keep them)."""
        from pipeline.card_plots import shard_facts

        stamp = self._stamp(shard)
        self.facts[str(shard)] = (stamp, shard_facts(shard))

    def __call__(self, shard: Path) -> list[SampleFacts]:
        """``shard``'s figures: the kept ones while the file is unchanged, else read now
        (and forgotten: a request reads each shard once)."""
        from pipeline.card_plots import shard_facts

        kept = self.facts.pop(str(shard), None)
        if kept is not None and kept[0] == self._stamp(shard):
            return kept[1]
        return shard_facts(shard)


def answer(request: dict[str, Any], draw: bool = True,
           cache: FactCache | None = None) -> dict[str, Any]:
    """Draw one request's pictures; the answer holds the card section's Markdown lines."""
    from pipeline.card_plots import card_section, shard_facts

    info = CorpusInfo(**request["info"])
    lines = card_section(Path(request["out_dir"]), [Path(p) for p in request["shards"]],
                         {info.name: info}, draw=draw,
                         facts=shard_facts if cache is None else cache)
    return {"key": request["key"], "lines": lines}


def serve() -> None:
    """The helper process: one JSON request per stdin line, one JSON answer per stdout line
    (a ``{"prefetch": shard}`` line is read ahead and not answered)."""
    import matplotlib.figure  # noqa: F401 - imported while the build writes its first shards

    cache = FactCache()
    for line in sys.stdin:
        request = json.loads(line)
        if "prefetch" in request:
            # a shard that cannot be read is read again by the request, which says why
            with contextlib.suppress(Exception):
                cache.read(Path(request["prefetch"]))
            continue
        try:
            got = answer(request, cache=cache)
        except Exception:  # noqa: BLE001 - reported to the build, which fails
            got = {"key": request["key"], "error": traceback.format_exc()}
        sys.stdout.write(json.dumps(got) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
