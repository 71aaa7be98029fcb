"""Run directories: manifest.json, samples.jsonl, metrics.json.

Every file is written atomically (temp file + rename), and the manifest's ``status`` is
``running`` until samples and metrics are in place, then ``complete``: a killed run never
leaves a directory that looks finished. Readers (report, gate) refuse incomplete runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

from rai_multi import __version__
from rai_multi.errors import RaiMultiError
from rai_multi.paths import REPO_ROOT
from rai_multi.records import Metric

SCHEMA = 1
MANIFEST = "manifest.json"
SAMPLES = "samples.jsonl"
METRICS = "metrics.json"

_TRACKED_PACKAGES = (
    "torch", "transformers", "datasets", "numpy", "scikit-learn", "sacrebleu",
    "detoxify", "alt-profanity-check", "gguf", "peft", "accelerate", "typer",
)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (memoised on path, size and mtime)."""
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key not in _HASH_MEMO:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _HASH_MEMO[memo_key] = digest.hexdigest()
    return _HASH_MEMO[memo_key]


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "rai-multi": __version__}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit() -> str | None:
    """Commit of the rai-multi checkout, with ``-dirty`` when it has local changes."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def safe_name(name: str) -> str:
    """A model or task name made safe as one path component."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._")
    return cleaned or "model"


class RunDir:
    """One run directory (one task x setting x model)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def samples_path(self) -> Path:
        return self.path / SAMPLES

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    def start(self, manifest: dict[str, Any]) -> None:
        """Mark the run as in progress; stale results of an earlier run are removed first."""
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in (self.metrics_path, self.samples_path):
            if stale.exists():
                stale.unlink()
        atomic_write_json(self.manifest_path, {**manifest, "status": "running"})

    def finish(self, manifest: dict[str, Any], rows: Sequence[dict[str, Any]], metrics: dict[str, Any]) -> None:
        atomic_write_jsonl(self.samples_path, rows)
        atomic_write_json(self.metrics_path, metrics)
        atomic_write_json(self.manifest_path, {**manifest, "status": "complete", "finished": now_iso()})

    # --- reading -----------------------------------------------------------------------

    def read_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            raise RaiMultiError(f"not a run directory (no {MANIFEST}): {self.path}")
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RaiMultiError(f"corrupt {self.manifest_path}: {exc}") from None

    def is_complete(self) -> bool:
        try:
            return self.read_manifest().get("status") == "complete" and self.metrics_path.is_file()
        except RaiMultiError:
            return False

    def require_complete(self) -> None:
        manifest = self.read_manifest()
        if manifest.get("status") != "complete" or not self.metrics_path.is_file():
            raise RaiMultiError(
                f"run is not complete (status {manifest.get('status')!r}): {self.path}; re-run it to finish"
            )

    def read_metrics(self) -> dict[str, Any]:
        self.require_complete()
        return json.loads(self.metrics_path.read_text(encoding="utf-8"))

    def read_samples(self) -> list[dict[str, Any]]:
        self.require_complete()
        with open(self.samples_path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]


def metrics_document(
    task: str, task_version: str, setting: str, model: str, metrics: Sequence[Metric], scorer: Any = None,
    notes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The metrics.json body (schema 1); ``scorer`` names the toxicity scorer when one was used;
    ``notes`` (the task config's) say what the metrics cannot show, e.g. no identity columns."""
    extra = {"scorer": scorer} if scorer else {}
    if notes:
        extra["notes"] = list(notes)
    return {
        **extra,
        "schema": SCHEMA,
        "task": task,
        "task_version": task_version,
        "setting": setting,
        "model": model,
        "metrics": [m.to_json() for m in metrics],
    }


def find_run_dirs(paths: Sequence[Path]) -> list[Path]:
    """Expand each path into run directories: itself if it holds a manifest, else every
    folder below it that does (so ``report runs/`` works on a whole output folder)."""
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise RaiMultiError(f"run directory does not exist: {path}")
        if (path / MANIFEST).is_file():
            found.append(path)
            continue
        nested = sorted(p.parent for p in path.rglob(MANIFEST) if ".cache" not in p.parts)
        if not nested:
            raise RaiMultiError(f"no run directories (no {MANIFEST}) under {path}")
        found.extend(nested)
    return found
