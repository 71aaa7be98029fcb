"""Which items a ``--limit`` keeps: a seeded sample spread over a benchmark's structure.

The head of a benchmark file is rarely representative: BBQ's first Age items are one
template, Winogender's first sentences are all "technician". A limited run therefore
takes a *stratified* sample: strata (template, occupation, bias type, ...) are visited
round-robin in a seeded order, one item at a time, each stratum's items in a seeded
order, until ``limit`` items are taken. Strata thus differ in size by at most one item
(until small strata run out). The chosen items are returned in their original file
order, so prompts, ids and caches look the same as in a full run.

The sample depends only on the items, the strata and the seed: both models of an audit
get the same ids, and the same seed gives the same ids on any machine (``random.Random``
with an integer seed; no hash randomisation is involved).

``head`` (the first ``limit`` items) is kept for reproducing older runs, and must be asked
for by name.
"""

from __future__ import annotations

import random
from typing import Callable, Hashable, Sequence, TypeVar

from rai_multi.errors import ConfigError

T = TypeVar("T")

LIMIT_RULES = ("stratified", "head")
DEFAULT_LIMIT_RULE = "stratified"


def check_limit_rule(rule: str) -> str:
    if rule not in LIMIT_RULES:
        raise ConfigError(f"unknown limit rule {rule!r}; choose one of {', '.join(LIMIT_RULES)}")
    return rule


def stratified_sample(items: Sequence[T], strata_key: Callable[[T], Hashable], limit: int | None,
                      seed: int) -> list[T]:
    """At most ``limit`` items, round-robin over the strata of ``strata_key`` (strata in a
    seeded order, a seeded shuffle inside each), returned in the original order. All items
    when ``limit`` is None or not smaller than the number of items."""
    if limit is None or limit >= len(items):
        return list(items)
    if limit <= 0:
        return []
    rng = random.Random(seed)
    strata: dict[Hashable, list[int]] = {}
    for index, item in enumerate(items):
        strata.setdefault(strata_key(item), []).append(index)
    order = list(strata)  # first appearance: fixed by the file, not by hashing
    rng.shuffle(order)
    queues = []
    for key in order:
        indices = list(strata[key])
        rng.shuffle(indices)
        queues.append(indices)
    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        for queue in queues:
            if depth < len(queue):
                chosen.append(queue[depth])
                if len(chosen) == limit:
                    break
        depth += 1
    return [items[i] for i in sorted(chosen)]


def limit_items(items: Sequence[T], strata_key: Callable[[T], Hashable], limit: int | None, seed: int,
                rule: str = DEFAULT_LIMIT_RULE) -> list[T]:
    """``limit`` items by ``rule``: ``stratified`` (see ``stratified_sample``) or ``head``."""
    check_limit_rule(rule)
    if rule == "head":
        return list(items[:limit]) if limit is not None else list(items)
    return stratified_sample(items, strata_key, limit, seed)


def sample_record(rule: str, limit: int | None, strata: str, ids: Sequence[str] | None) -> dict[str, object]:
    """What a task's config() says about its sample (written to the manifest): the rule,
    what ``limit`` counts, the strata, and the chosen ids (``None``: every item)."""
    return {"limit_rule": rule, "limit": limit, "strata": strata,
            "sampled_ids": list(ids) if ids is not None and limit is not None else None}
