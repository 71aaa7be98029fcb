"""Generation cache: finished model answers keyed by model, task version and request.

SQLite (stdlib) because it is safe for several processes writing at once (sharded
evaluation) and every committed batch survives a killed run: resumption is just a
re-run that finds most answers already here.

A cache file that is not an SQLite database (truncated, overwritten) holds nothing that
can be trusted: it is moved aside as ``<name>.corrupt-<time>`` and rebuilt, with a warning
on stderr, so the run regenerates those answers instead of crashing. A cache that cannot
be opened at all (permissions) is a DataError naming the file; so is one that fails
part-way through a read. A single unreadable row is treated as missing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Iterable, Mapping

from rai_multi.errors import DataError, OutputError
from rai_multi.outputs import make_dirs, remove_stale_temp_files
from rai_multi.records import Request, Response, canonical_json, sha256_text


def cache_key(model_fingerprint: str, task: str, task_version: str, request: Request) -> str:
    """Key naming model revision, task version, prompt and generation config."""
    return sha256_text(
        canonical_json(
            {
                "model": model_fingerprint,
                "task": task,
                "task_version": task_version,
                "request": request.payload(),
            }
        )
    )


class GenerationCache:
    """A key -> Response store in one SQLite file (WAL mode, one commit per batch)."""

    def __init__(self, path: Path):
        make_dirs(path.parent)
        remove_stale_temp_files(path.parent)
        self.path = path
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc):
                raise DataError(f"cannot open the generation cache {path}: {exc} (check its permissions, "
                                "or pass --no-cache)") from None
            aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            print(f"warning: generation cache {path} is unreadable ({exc}); moved to {aside.name} and rebuilt "
                  "(its answers will be generated again)", file=sys.stderr)
            for suffix in ("", "-wal", "-shm"):
                part = Path(str(path) + suffix)
                if part.exists():
                    os.replace(part, Path(str(aside) + suffix))
            self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=60.0)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("SELECT key, value FROM answers LIMIT 1").fetchall()
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    def get_many(self, keys: Iterable[str]) -> dict[str, Response]:
        found: dict[str, Response] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            try:
                rows = self._conn.execute(f"SELECT key, value FROM answers WHERE key IN ({marks})", chunk).fetchall()
            except sqlite3.DatabaseError as exc:
                raise DataError(f"generation cache {self.path} is damaged ({exc}); delete it or pass --no-cache "
                                "(its answers will be generated again)") from None
            for key, value in rows:
                try:
                    found[key] = Response.from_json(json.loads(value))
                except (ValueError, KeyError, TypeError, IndexError):
                    continue  # an unreadable row is a missing answer: it is generated again
        return found

    def put_many(self, items: Mapping[str, Response]) -> None:
        try:
            with self._conn:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO answers (key, value) VALUES (?, ?)",
                    [(k, json.dumps(v.to_json(), ensure_ascii=False)) for k, v in items.items()],
                )
        except sqlite3.OperationalError as exc:  # full disk, read-only file
            raise OutputError(f"cannot write the generation cache {self.path}: {exc}; answers committed before "
                            "are kept and the same command resumes from them") from None

    def close(self) -> None:
        self._conn.close()


class NullCache:
    """Stands in for the cache when caching is off (replayed predictions, --no-cache)."""

    def get_many(self, keys: Iterable[str]) -> dict[str, Response]:
        return {}

    def put_many(self, items: Mapping[str, Response]) -> None:
        return None

    def close(self) -> None:
        return None
