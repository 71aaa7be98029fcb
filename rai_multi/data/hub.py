"""One way into the Hugging Face hub for every benchmark loader.

Each loader names a hub dataset and a pinned revision (a commit sha where one is known), so
a hub run reads the same bytes every time. ``path`` defaults to the hub id; tests pass a local
folder laid out like the hub repository instead, and go through this same call, so the
row-to-record mapping the loaders apply is the one that runs against the hub.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rai_multi.errors import DataError

_SHA = re.compile(r"^[0-9a-f]{40}$")


def is_commit_sha(revision: str | None) -> bool:
    """True for a full 40-hex commit id (a branch or tag name can move; a sha cannot)."""
    return bool(revision and _SHA.match(revision))


def load_hub_split(
    path: str | Path, name: str | None, split: str, revision: str | None, *, hint: str,
    data_dir: str | None = None, cache_dir: Path | None = None,
) -> Any:
    """``datasets.load_dataset(path, name, split=..., revision=..., data_dir=...)``; any
    failure (offline, unknown config, missing split) becomes one DataError line that names
    the dataset, its revision and ``hint`` (how to use local files instead).

    ``data_dir`` selects a config folder on a hub branch without a README config list, such
    as the ``refs/convert/parquet`` branch the hub writes for script-based datasets (datasets
    >= 4 no longer runs loading scripts, so that branch is the readable copy of them)."""
    where = f"{path}" + (f" ({name or data_dir})" if name or data_dir else "") + f" split {split!r}"
    where += f" @ {revision}" if revision else ""
    try:
        from datasets import load_dataset

        return load_dataset(str(path), name, split=split, revision=revision, data_dir=data_dir,
                            cache_dir=str(cache_dir) if cache_dir else None)
    except Exception as exc:  # datasets raises many types (offline, missing config/split, bad files)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot load {where} from the hub: {first}; {hint}") from None


def class_label_name(ds: Any, column: str, value: Any, fallback: tuple[str, ...] = ()) -> Any:
    """The name of a ClassLabel value (hub parquet stores ClassLabels as ints); other
    columns come back unchanged. ``fallback`` is the dataset card's label order, used when
    a parquet file carries no feature metadata."""
    feature = getattr(ds, "features", {}).get(column)
    names = getattr(feature, "names", None) or (list(fallback) if fallback else None)
    if names is not None and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    return value
