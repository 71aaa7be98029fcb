"""Reading user-supplied files so that bad bytes are a user error, not a crash.

Every benchmark, predictions, suite and policy reader goes through :func:`reading` (or
:func:`read_text`): a file that is not UTF-8, a CSV field over the csv module's limit, or
a file the OS will not hand over becomes one :class:`DataError` naming the file (and the
line where the reader knows it), instead of a ``UnicodeDecodeError`` traceback.
"""

from __future__ import annotations

import csv
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from rai_multi.errors import DataError, RaiMultiError


def describe(exc: BaseException, path: Path, what: str = "") -> str | None:
    """One-line description of an input failure, or None if ``exc`` is not one (a bug)."""
    if isinstance(exc, UnicodeDecodeError):
        return (f"{path}: not UTF-8 text (invalid byte 0x{exc.object[exc.start]:02x}); "
                "is it a binary or a differently encoded file?")
    if isinstance(exc, csv.Error):
        if "field larger than field limit" in str(exc):
            return (f"{path}: a field is longer than {csv.field_size_limit()} characters (the csv module's limit); "
                    "is the quoting broken?")
        return f"{path}: malformed CSV/TSV: {exc}"
    if isinstance(exc, IsADirectoryError):
        return f"{path}: is a directory, expected a file"
    if isinstance(exc, OSError):
        return f"cannot read {what + ' ' if what else ''}{exc.filename or path}: {exc.strerror or exc}"
    return None


@contextmanager
def reading(path: Path, error: type[RaiMultiError] = DataError, what: str = "") -> Iterator[None]:
    """Turn decode, CSV and OS errors raised while reading ``path`` (a ``what``) into ``error``."""
    try:
        yield
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        message = describe(exc, Path(path), what)
        if message is None:  # pragma: no cover - describe covers every caught type
            raise
        raise error(message) from None


def read_text(path: Path, encoding: str = "utf-8", error: type[RaiMultiError] = DataError, what: str = "") -> str:
    """The whole of a text file, with :func:`reading`'s errors."""
    with reading(path, error, what):
        return Path(path).read_text(encoding=encoding)


def jsonl_rows(path: Path, error: type[RaiMultiError] = DataError, prefix: str = "") -> Iterator[tuple[int, Any]]:
    """``(line number, parsed value)`` for every non-blank line of a JSONL file; a line that
    is not JSON is one ``error`` naming ``<prefix><path>:<line>``, and :func:`reading`'s
    errors apply to the file itself."""
    with reading(path, error), open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{prefix}{path}:{lineno}: not valid JSON ({exc.msg})") from None
