"""Generation cache: finished model answers keyed by model, task version and request.

SQLite (stdlib) because it is safe for several processes writing at once (sharded
evaluation) and every committed batch survives a killed run: resumption is just a
re-run that finds most answers already here.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Iterable, Mapping

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
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(str(path), timeout=60.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._conn.commit()

    def get_many(self, keys: Iterable[str]) -> dict[str, Response]:
        found: dict[str, Response] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self._conn.execute(
                f"SELECT key, value FROM answers WHERE key IN ({marks})", chunk
            ):
                found[key] = Response.from_json(json.loads(value))
        return found

    def put_many(self, items: Mapping[str, Response]) -> None:
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO answers (key, value) VALUES (?, ?)",
                [(k, json.dumps(v.to_json(), ensure_ascii=False)) for k, v in items.items()],
            )

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
