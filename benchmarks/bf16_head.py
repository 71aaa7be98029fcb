"""Does an fp32 model with its output layer in bf16 choose the same options as fp32?

Why: on a CPU with native bf16 (AVX512-BF16, AMX) the output layer is the one matmul that
bf16 could speed up without touching the body, and Gemma 3's 262k-entry head is a large
part of its cost. It is worth keeping only if every choice stays equal to fp32 on the real
models (issue 17). This times rai-multi's shared-context scorer both ways on CrowS-Pairs,
Winogender and BBQ requests (the first ``--n`` of each, one thread, CPU seconds) and counts
equal choices. A measurement, not a feature: rai-multi does not ship a bf16 head.

    RAI_MULTI_DATA=../shared/data python benchmarks/bf16_head.py --n 60
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Bf16Head(torch.nn.Module):
    """The output layer's weight in bf16 (a copy: the fp32 embedding it is tied to stays),
    hidden states rounded to bf16 on the way in, logits back in fp32."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("weight16", weight.detach().to(torch.bfloat16))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(hidden.to(torch.bfloat16), self.weight16).float()


def argmax(row: list[float]) -> int:
    return max(range(len(row)), key=row.__getitem__)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--models", nargs="+", default=["demo:smollm2-135m-instruct", "demo:gemma3-270m"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    from bench_loglik import build_workloads, machine, model_dir

    from rai_multi.models.loading import load_model
    from rai_multi.records import LoglikelihoodRequest

    info = machine()
    print(f"{info['cpu']}; flags {info['flags']}; auto = {info['auto_dtype']}; one thread")
    print("| model | workload | requests | fp32 CPU s | bf16 head CPU s | speed-up | choices equal | max abs diff log-lik |")
    print("|---|---|---|---|---|---|---|---|")
    works = build_workloads(Path(os.environ.get("RAI_MULTI_DATA", HERE.parents[1] / "shared" / "data")), args.n)
    for source in args.models:
        adapter = load_model(model_dir(source), dtype="fp32")
        fp32_head = adapter.model.lm_head
        heads = {"fp32": fp32_head, "bf16": Bf16Head(fp32_head.weight)}
        for name, rows in works.items():
            reqs = [LoglikelihoodRequest(c, tuple(o)) for c, o in rows]
            ids = [str(i) for i in range(len(reqs))]
            got = {}
            for kind, head in heads.items():
                adapter.model.lm_head = head
                adapter.loglikelihood(reqs[:2], ids[:2])  # warm-up
                start = cpu_seconds()
                out = adapter.loglikelihood(reqs, ids)
                got[kind] = (cpu_seconds() - start, [[x.logprob for x in o] for o in out])
            adapter.model.lm_head = fp32_head
            (t32, a), (t16, b) = got["fp32"], got["bf16"]
            equal = sum(argmax(x) == argmax(y) for x, y in zip(a, b))
            diff = max(abs(p - q) for x, y in zip(a, b) for p, q in zip(x, y))
            print(f"| {source} | {name} | {len(reqs)} | {t32:.2f} | {t16:.2f} | {t32 / t16:.2f}x | {equal}/{len(reqs)} "
                  f"| {diff:.3f} |", flush=True)


if __name__ == "__main__":
    main()
