"""A scripted model for tests and demos: answers come from Python functions.

Lets a test state a model's behaviour exactly ("always picks the stereotyped answer",
"echoes the gold answer") and check that a metric comes out as computed by hand.
"""

from __future__ import annotations

from typing import Callable, Sequence

from rai_multi.records import GenerationRequest, Loglikelihood, LoglikelihoodRequest

GenerateFn = Callable[[GenerationRequest, str], list[str]]
LoglikelihoodFn = Callable[[LoglikelihoodRequest, str], list[Loglikelihood]]


def _no_generate(request: GenerationRequest, sample_id: str) -> list[str]:
    return [""] * request.num_samples


def _no_loglikelihood(request: LoglikelihoodRequest, sample_id: str) -> list[Loglikelihood]:
    return [Loglikelihood(0.0, max(1, len(c.split())), False) for c in request.continuations]


class ScriptedAdapter:
    """ModelAdapter whose answers are computed by the given functions (one call per request)."""

    cacheable = False

    def __init__(
        self,
        name: str = "scripted",
        generate_fn: GenerateFn = _no_generate,
        loglikelihood_fn: LoglikelihoodFn = _no_loglikelihood,
        max_context: int | None = None,
    ):
        self.name = name
        self.fingerprint = f"scripted:{name}"
        self._generate_fn = generate_fn
        self._loglikelihood_fn = loglikelihood_fn
        self._max_context = max_context
        self.calls = 0

    def description(self) -> dict:
        return {"backend": "scripted"}

    def generate(self, requests: Sequence[GenerationRequest], ids: Sequence[str]) -> list[list[str]]:
        self.calls += len(requests)
        return [list(self._generate_fn(r, i)) for r, i in zip(requests, ids)]

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], ids: Sequence[str]) -> list[list[Loglikelihood]]:
        self.calls += len(requests)
        return [list(self._loglikelihood_fn(r, i)) for r, i in zip(requests, ids)]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    @property
    def max_context(self) -> int | None:
        return self._max_context
