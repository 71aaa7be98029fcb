"""Plain frozen records passed between stages (loader -> task -> model -> scorer -> store).

Requests carry everything that determines a model's answer, so their canonical JSON is
what the generation cache hashes: a changed prompt or generation setting never reuses a
stale answer. The sample id travels beside the request, never inside the hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Union


@dataclass(frozen=True)
class GenerationRequest:
    """Generate ``num_samples`` continuations of ``prompt``.

    Greedy when ``do_sample`` is false; sampled runs are seeded by ``seed``.
    ``stop`` strings end a continuation (the stop string itself is cut off).
    """

    prompt: str
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    num_samples: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    kind = "generate"

    def payload(self) -> dict[str, Any]:
        """Canonical content of the request (what the cache key hashes)."""
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score each continuation given ``context``: sum of continuation-token log-probs."""

    context: str
    continuations: tuple[str, ...]

    kind = "loglikelihood"

    def payload(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


Request = Union[GenerationRequest, LoglikelihoodRequest]


@dataclass(frozen=True)
class Loglikelihood:
    """Log-likelihood of one continuation: summed log-prob, its token count, and whether
    greedy decoding would have produced exactly these tokens."""

    logprob: float
    n_tokens: int
    is_greedy: bool = False

    def to_json(self) -> list[Any]:
        return [self.logprob, self.n_tokens, self.is_greedy]

    @classmethod
    def from_json(cls, raw: list[Any]) -> "Loglikelihood":
        return cls(float(raw[0]), int(raw[1]), bool(raw[2]))


@dataclass(frozen=True)
class Response:
    """What a model returned for one request: generated texts, or one Loglikelihood per
    continuation (exactly one of the two is set)."""

    outputs: tuple[str, ...] | None = None
    loglikelihoods: tuple[Loglikelihood, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        if self.outputs is not None:
            return {"outputs": list(self.outputs)}
        assert self.loglikelihoods is not None
        return {"loglikelihoods": [ll.to_json() for ll in self.loglikelihoods]}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "Response":
        if "outputs" in raw:
            return cls(outputs=tuple(raw["outputs"]))
        return cls(loglikelihoods=tuple(Loglikelihood.from_json(x) for x in raw["loglikelihoods"]))


@dataclass(frozen=True)
class Sample:
    """One evaluation item: a stable upstream-derived id, its language, the model request,
    the gold target, and free-form metadata the scorer needs (category, polarity, ...)."""

    id: str
    lang: str
    request: Request
    target: Any = None
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """One number in metrics.json: metric name, slice (``all``, ``lang=bn``, ``tier=low``,
    ``category=Age`` ...), value, 95% CI (None when undefined) and the count behind it."""

    name: str
    slice: str
    value: float
    ci: tuple[float, float] | None
    n: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "slice": self.slice,
            "value": self.value,
            "ci": list(self.ci) if self.ci is not None else None,
            "n": self.n,
        }


def canonical_json(obj: Any) -> str:
    """Deterministic JSON used for hashing (sorted keys, no whitespace, UTF-8 kept)."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prompt_hash(request: Request) -> str:
    """Short hash of a request's full content (prompt and generation settings)."""
    return sha256_text(canonical_json(request.payload()))[:16]
