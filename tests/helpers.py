"""Small helpers the tests share."""

from __future__ import annotations

from pathlib import Path


def find_run(model_dir: Path, base: str) -> Path:
    """The one run directory ``<task>-<setting>-<config hash>`` under a model's folder."""
    found = sorted(p for p in Path(model_dir).glob(f"{base}-*") if (p / "manifest.json").is_file()
                   and p.name[len(base) + 1:].isalnum() and len(p.name) == len(base) + 9)
    assert len(found) == 1, f"expected one run {base}-<hash> under {model_dir}, found {[p.name for p in found]}"
    return found[0]
