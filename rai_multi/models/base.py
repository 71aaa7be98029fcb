"""The ModelAdapter protocol: what every backend (transformers, replay, scripted) offers.

Adapters take whole lists of requests and batch them internally, so the runner never
deals with batch shapes; ``ids`` ride along only for adapters that answer by sample id
(replay files), never for caching.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from rai_multi.records import GenerationRequest, Loglikelihood, LoglikelihoodRequest


@runtime_checkable
class ModelAdapter(Protocol):
    """A model the runner can query.

    ``fingerprint`` identifies the exact weights (hub revision or file hash) and is part of
    every cache key; ``description`` is a dict for the run manifest.
    """

    name: str
    fingerprint: str
    cacheable: bool

    def description(self) -> dict: ...

    def generate(
        self, requests: Sequence[GenerationRequest], ids: Sequence[str]
    ) -> list[list[str]]:
        """One list of ``num_samples`` continuations per request (stop strings removed)."""
        ...

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], ids: Sequence[str]
    ) -> list[list[Loglikelihood]]:
        """One Loglikelihood per continuation, per request."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's tokenizer (for context-window checks)."""
        ...

    @property
    def max_context(self) -> int | None:
        """Longest input the model accepts in tokens, or None when unbounded/unknown."""
        ...
