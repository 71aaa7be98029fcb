"""Run directories: manifest.json, samples.jsonl, metrics.json.

Every file is written atomically (temp file + rename). A run is built in a hidden staging
folder beside its run directory (``.<name>.staging-<pid>``) and swapped in only when its
samples, metrics and ``complete`` manifest are all there: a killed or failed re-run never
removes or half-overwrites a finished run, and a killed run never leaves a directory that
looks finished. Readers (report, gate) skip hidden folders and refuse incomplete runs, and
a metrics.json or samples.jsonl that is not what rai-multi writes is an error naming it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import platform
import re
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

from rai_multi import __version__
from rai_multi.errors import OutputError, RaiMultiError
from rai_multi.inputs import jsonl_rows, reading
from rai_multi.outputs import atomic_write_bytes, make_dirs, pid_alive, remove_stale_temp_files, remove_tree
from rai_multi.paths import REPO_ROOT
from rai_multi.records import Metric

SCHEMA = 2
MANIFEST = "manifest.json"
SAMPLES = "samples.jsonl"
METRICS = "metrics.json"

_TRACKED_PACKAGES = (
    "torch", "transformers", "datasets", "numpy", "scikit-learn", "sacrebleu",
    "detoxify", "alt-profanity-check", "gguf", "peft", "accelerate", "typer",
)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new, never half
    (outputs.atomic_write_bytes: umask-honouring mode, OutputError on a bad path)."""
    atomic_write_bytes(Path(path), text.encode("utf-8"))


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
        self._staging: Path | None = None

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
        """Open a staging folder for this run beside the run directory (which, if it holds
        an earlier run, stays untouched until :meth:`finish`); leftovers of killed runs go."""
        parent = make_dirs(self.path.parent)
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"cannot use {self.path} as a run directory: it is a file")
        clean_stale(self.path)
        staging = parent / f".{self.path.name}.staging-{os.getpid()}"
        remove_tree(staging)
        make_dirs(staging)
        atomic_write_json(staging / MANIFEST, {**manifest, "status": "running"})
        self._staging = staging

    def finish(self, manifest: dict[str, Any], rows: Sequence[dict[str, Any]], metrics: dict[str, Any]) -> None:
        """Write samples, metrics and the ``complete`` manifest, then swap the run in."""
        if self._staging is None:
            self.start(manifest)
        staging = self._staging
        assert staging is not None
        try:
            atomic_write_jsonl(staging / SAMPLES, rows)
            atomic_write_json(staging / METRICS, metrics)
            atomic_write_json(staging / MANIFEST, {**manifest, "status": "complete", "finished": now_iso()})
            swap_in(staging, self.path)
        except BaseException:
            remove_tree(staging)
            raise
        finally:
            self._staging = None

    def abandon(self) -> None:
        """Drop the staging folder of a run that failed or was interrupted (answers already
        produced stay in the generation cache; an earlier finished run stays in place)."""
        if self._staging is not None:
            remove_tree(self._staging)
            self._staging = None

    # --- reading -----------------------------------------------------------------------

    def read_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            raise RaiMultiError(f"not a run directory (no {MANIFEST}): {self.path}")
        doc = read_json(self.manifest_path)
        if not isinstance(doc, dict):
            raise RaiMultiError(f"corrupt {self.manifest_path}: expected a JSON object")
        return doc

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
        doc = read_json(self.metrics_path)
        check_metrics_document(doc, self.metrics_path)
        return doc

    def read_samples(self) -> list[dict[str, Any]]:
        self.require_complete()
        rows = []
        for lineno, row in jsonl_rows(self.samples_path, RaiMultiError, prefix="corrupt "):
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                raise RaiMultiError(f"corrupt {self.samples_path}:{lineno}: each row must be an object with an 'id'")
            rows.append(row)
        return rows


def read_json(path: Path) -> Any:
    """A JSON file the toolkit wrote; unreadable or damaged is one error line naming it."""
    with reading(path, RaiMultiError):
        text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RaiMultiError(f"corrupt {path}:{exc.lineno}: not valid JSON ({exc.msg}); re-run to rewrite it") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_metrics_document(doc: Any, path: Path) -> None:
    """Refuse a metrics.json that is not what :func:`metrics_document` writes: a gate must
    never read ``true`` as 1.0, a string as a number, or let the first of two entries for
    the same metric and slice decide. ``value`` may be null or NaN (an undefined metric)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), list):
        raise RaiMultiError(f"corrupt {path}: expected an object with a 'metrics' list")
    for key in ("task", "model"):
        if not isinstance(doc.get(key), str):
            raise RaiMultiError(f"corrupt {path}: '{key}' must be a string")
    seen: set[tuple[str, str]] = set()
    for i, m in enumerate(doc["metrics"]):
        where = f"corrupt {path}: metrics[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not isinstance(m.get("slice"), str):
            raise RaiMultiError(f"{where}: needs a 'name' and a 'slice' (strings)")
        where += f" ({m['name']} [{m['slice']}])"
        value = m.get("value")
        if value is not None and not _is_number(value):
            raise RaiMultiError(f"{where}: 'value' must be a number or null, got {json.dumps(value)[:40]}")
        n = m.get("n")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise RaiMultiError(f"{where}: 'n' must be a whole number >= 0")
        ci = m.get("ci")
        if ci is not None and (not isinstance(ci, list) or len(ci) != 2 or not all(_is_number(c) for c in ci)):
            raise RaiMultiError(f"{where}: 'ci' must be null or two numbers")
        key = (m["name"], m["slice"])
        if key in seen:
            raise RaiMultiError(f"{where}: duplicated entry for the same metric and slice")
        seen.add(key)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    ok = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
    return ok


def swap_in(staging: Path, target: Path) -> None:
    """Put the finished run at ``target``; at every instant the path holds a complete run
    (the old or the new) where the OS can exchange two names atomically. Elsewhere the old
    run is renamed aside first and a crash between the two renames is undone by
    :func:`clean_stale` on the next start."""
    if not target.exists():
        os.rename(staging, target)
        return
    if _exchange(staging, target):
        remove_tree(staging)  # now holds the old run
        return
    aside = target.parent / f".{target.name}.old-{os.getpid()}"
    remove_tree(aside)
    os.rename(target, aside)
    os.rename(staging, target)
    remove_tree(aside)


_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>staging|old)-(?P<pid>\d+)$")


def clean_stale(target: Path) -> None:
    """Remove what killed runs of ``target`` left: staging folders and temp files of dead
    processes; an old run renamed aside by a swap that was cut short is put back."""
    parent = target.parent
    remove_stale_temp_files(parent)
    if target.is_dir():
        remove_stale_temp_files(target)
    for entry in sorted(parent.iterdir()) if parent.is_dir() else []:
        match = _LEFTOVER.match(entry.name)
        if not match or match.group("name") != target.name or pid_alive(int(match.group("pid"))):
            continue
        if match.group("kind") == "old" and not target.exists():
            os.rename(entry, target)
        else:
            remove_tree(entry)


def metrics_document(
    task: str, task_version: str, setting: str, model: str, metrics: Sequence[Metric], spec: Any,
    scorer: Any = None, config_hash: str | None = None, notes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The metrics.json body (schema 2): every metric says which way is better, its
    reference value and whether its slice is a macro-average over languages, a micro-average
    over items, a statistic over items or a count (from the task's spec, so a reader needs
    no table of its own). ``scorer`` names the toxicity scorer when one was used; ``notes``
    (the task config's) say what the metrics cannot show, e.g. no identity columns."""
    from rai_multi.tasks.spec import slice_aggregation

    extra = {"scorer": scorer} if scorer else {}
    if notes:
        extra["notes"] = list(notes)
    rows = []
    language_sliced = spec.language_sliced or any(m.slice.startswith("lang=") for m in metrics)
    for m in metrics:
        info = spec.metric_info(m.name)
        rows.append({**m.to_json(), "direction": info.direction, "reference": info.reference,
                     "aggregation": slice_aggregation(info, m.slice, language_sliced)})
    return {
        **extra,
        "schema": SCHEMA,
        "task": task,
        "task_version": task_version,
        "setting": setting,
        "model": model,
        "config_hash": config_hash,
        "metrics": rows,
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
        # hidden folders (.cache, staging folders of runs in progress) hold no finished run
        nested = sorted(p.parent for p in path.rglob(MANIFEST)
                        if not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not nested:
            raise RaiMultiError(f"no run directories (no {MANIFEST}) under {path}")
        found.extend(nested)
    return found
