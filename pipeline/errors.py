"""The one base class of user errors.

A :class:`UserError` is a problem the user can fix (a corpus not where it was said to be,
a bad label file, a download that did not verify, a bad option); its message says what is
wrong and what to do.  The command lines (``python -m dataset_recipes.build``,
``python -m dataset_recipes.download``) print such an error as ``error: <message>`` and
exit with status 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or configuration; the message says how to fix it."""


class InputError(UserError, ValueError):
    """A corpus file that cannot be read as a whole (a missing column, not the official
    layout); the message names the file.  A single bad row is a reject, not an error."""


class UnknownName(UserError, KeyError):
    """A name (recipe, split) that is not among the choices; the message lists them."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class ConfigError(UserError, ValueError):
    """A bad option or combination of options; the message lists the problems and choices."""
