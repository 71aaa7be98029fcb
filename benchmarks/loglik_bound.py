"""How much faster than a per-option scorer (lm-eval's hf backend) sharing can make
log-likelihood scoring at all, at the same dtype: the ratio of forward positions.

Why: at fp32 on a CPU a forward costs about the same per position whatever the batch
(the matmuls run near the measured peak), so a scorer that computes every option in full
(context + option, one row per pair, as lm-eval does) and one that computes each request's
context and its options' common prefix once (rai_multi/models/shared_scoring.py) differ by
at most their position counts. For CrowS-Pairs, whose minimal pairs share only the words
before the first difference and where every token is scored (the output layer runs at
every position in both tools), this bounds the ratio well below what sharing gives BBQ.

    RAI_MULTI_DATA=../shared/data python benchmarks/loglik_bound.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def positions(prepared: list[tuple[list[int], list[list[int]]]]) -> tuple[int, int]:
    """(per-option forward positions, shared-context forward positions) of tokenised requests.
    A per-option row feeds context + option minus its last token; the shared scorer feeds
    the shared part once and each option's own tokens minus the last."""
    from rai_multi.models.shared_scoring import plan_request

    plain = sum(len(ctx) + len(opt) - 1 for ctx, opts in prepared for opt in opts)
    shared = 0
    for ctx, opts in prepared:
        plan = plan_request(ctx, opts)
        shared += len(plan.shared) + sum(max(0, len(own) - 1) for own in plan.own)
    return plain, shared


def main() -> None:
    from bench_loglik import build_workloads, model_dir

    from rai_multi.models.loading import load_model

    data_dir = Path(os.environ.get("RAI_MULTI_DATA", HERE.parents[1] / "shared" / "data"))
    works = build_workloads(data_dir, 10**6)  # every request
    print("| model | workload | requests | per-option positions | shared positions | bound on the ratio |")
    print("|---|---|---|---|---|---|")
    for source in ("demo:smollm2-135m-instruct", "demo:gemma3-270m"):
        adapter = load_model(model_dir(source), dtype="fp32")
        for name, rows in works.items():
            prepared = [(adapter._context_ids(c), [adapter._continuation_ids(o) for o in opts]) for c, opts in rows]
            plain, shared = positions(prepared)
            print(f"| {source} | {name} | {len(prepared)} | {plain} | {shared} | {plain / shared:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
