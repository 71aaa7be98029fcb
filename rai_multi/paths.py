"""Where data, language configs and caches live.

Benchmark files are never copied into the repository: they are read from a data directory
given by ``--data-dir`` or the ``RAI_MULTI_DATA`` environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path

from rai_multi.errors import DataError

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir(explicit: str | Path | None = None, *, required: bool = True) -> Path | None:
    """Resolve the benchmark data directory: explicit argument, else ``RAI_MULTI_DATA``."""
    raw = str(explicit) if explicit else os.environ.get("RAI_MULTI_DATA")
    if not raw:
        if required:
            raise DataError(
                "no data directory: pass --data-dir DIR or set RAI_MULTI_DATA "
                "(the folder holding mgsm/, tydiqa_goldp/, bbq/, ...)"
            )
        return None
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise DataError(f"data directory does not exist: {path}")
    return path


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` if it is a file, else raise a DataError naming it and what it is."""
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    return path


def cache_dir(out_dir: Path | None = None) -> Path:
    """Generation cache folder: ``RAI_MULTI_CACHE``, else ``<out>/.cache``, else ~/.cache."""
    env = os.environ.get("RAI_MULTI_CACHE")
    if env:
        return Path(env).expanduser()
    if out_dir is not None:
        return Path(out_dir) / ".cache"
    return Path.home() / ".cache" / "rai-multi"
