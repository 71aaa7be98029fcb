"""The Task protocol: a benchmark is data -> requests -> per-sample scores -> metrics.

A task object is built from its resolved options (language list, setting, limit, ...)
and is otherwise stateless; the runner owns caching, batching, storage and resumption.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Sequence

from rai_multi.records import Metric, Response, Sample


class Task(Protocol):
    name: str          # "mgsm", "tydiqa", "toxicity", ...
    version: str       # bump when prompts or scoring change: part of every cache key
    setting: str       # "native_cot", "one_shot", ... ("" when the task has one setting)

    def config(self) -> dict[str, Any]:
        """Resolved options, written to the run manifest."""
        ...

    def data_files(self) -> list[Path]:
        """Files the samples were read from (hashed into the manifest)."""
        ...

    def build_samples(self) -> list[Sample]:
        """All samples of this run, in a stable order, with unique ids."""
        ...

    def score(self, samples: Sequence[Sample], responses: Sequence[Response]) -> list[dict[str, Any]]:
        """Per-sample score fields (the runner adds id, lang, tier, prompt hash, outputs)."""
        ...

    def metrics(self, rows: Sequence[dict[str, Any]], seed: int) -> list[Metric]:
        """Aggregate rows (as written to samples.jsonl) into metrics with CIs."""
        ...
