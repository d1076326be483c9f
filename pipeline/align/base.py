"""What every alignment backend shares: the error type and the backend interface."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from pipeline.errors import UserError


class AlignmentError(Exception):
    """An item that could not be aligned; the message is the reject reason."""


class AlignConfigError(UserError, ValueError):
    """The alignment configuration cannot work (missing model, language without backend)."""


class Backend(Protocol):
    """An aligner for some languages: normalized units in, one ``(start, end)`` per unit out.

    ``samples`` are 16 kHz mono float32; times are seconds from the clip start.  A failure
    raises :class:`AlignmentError` with a reason a user can act on.
    """

    name: str

    def align_units(self, samples: np.ndarray, units: list[str]) -> list[tuple[float, float]]:
        """Align ``units`` (normalized words or characters) to ``samples``."""
        ...
