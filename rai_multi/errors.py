"""User-facing errors.

Anything a user can cause (bad file, unknown language, missing model) raises a subclass of
:class:`RaiMultiError`. The CLI prints its message as one line and exits non-zero, with no
traceback; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class RaiMultiError(Exception):
    """An error caused by input the user can fix; the message must say what and where."""

    exit_code = 2


class DataError(RaiMultiError):
    """A benchmark file is missing or malformed (message names the file and line)."""


class ConfigError(RaiMultiError):
    """A config file (language, suite, policy, mixture) is invalid (names file and field)."""


class ModelLoadError(RaiMultiError):
    """A model, tokenizer or scorer cannot be loaded (names the path or id and how to fix)."""


class OutputError(RaiMultiError):
    """An output file or folder cannot be written (names the path and the OS's reason)."""
