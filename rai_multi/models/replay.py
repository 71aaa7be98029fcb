"""Replay adapter: answers from a predictions JSONL file instead of a model.

Lets outputs produced elsewhere (an API, vLLM, another harness) be scored by exactly the
same task code: rows are ``{"id": ..., "output": "..."}`` or ``{"id": ..., "outputs": [...]}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rai_multi.errors import DataError
from rai_multi.inputs import jsonl_rows
from rai_multi.records import GenerationRequest, Loglikelihood, LoglikelihoodRequest
from rai_multi.store import file_sha256


def read_predictions(path: Path) -> dict[str, list[str]]:
    """Parse a predictions file; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"predictions file not found: {path}")
    predictions: dict[str, list[str]] = {}
    for lineno, row in jsonl_rows(path):
        if not isinstance(row, dict) or "id" not in row:
            raise DataError(f"{path}:{lineno}: each row needs an 'id'")
        if "outputs" in row:
            outs = row["outputs"]
            if not isinstance(outs, list) or not all(isinstance(o, str) for o in outs):
                raise DataError(f"{path}:{lineno}: 'outputs' must be a list of strings")
        elif "output" in row:
            if not isinstance(row["output"], str):
                raise DataError(f"{path}:{lineno}: 'output' must be a string")
            outs = [row["output"]]
        else:
            raise DataError(f"{path}:{lineno}: row has neither 'output' nor 'outputs'")
        key = str(row["id"])
        if key in predictions:
            raise DataError(f"{path}:{lineno}: duplicate id {key!r}")
        predictions[key] = list(outs)
    return predictions


class ReplayAdapter:
    """A ModelAdapter over recorded outputs; it cannot score log-likelihoods."""

    cacheable = False

    def __init__(self, predictions: dict[str, list[str]], name: str, source: str, fingerprint: str):
        self.predictions = predictions
        self.name = name
        self.source = source
        self.fingerprint = fingerprint

    @classmethod
    def from_file(cls, path: Path, name: str | None = None) -> "ReplayAdapter":
        path = Path(path)
        return cls(read_predictions(path), name or path.stem, str(path), f"replay:{file_sha256(path)}")

    def description(self) -> dict:
        return {"backend": "replay", "predictions": self.source}

    def generate(self, requests: Sequence[GenerationRequest], ids: Sequence[str]) -> list[list[str]]:
        missing = [i for i in ids if i not in self.predictions]
        if missing:
            raise DataError(
                f"{self.source}: no prediction for {len(missing)} sample id(s), e.g. {missing[0]!r} "
                "(ids must be the task's sample ids; use --langs/--limit to score a subset)"
            )
        return [self.predictions[i] for i in ids]

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], ids: Sequence[str]) -> list[list[Loglikelihood]]:
        raise DataError("a predictions file holds generated text only: use the task's generative setting to score it")

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    @property
    def max_context(self) -> int | None:
        return None
