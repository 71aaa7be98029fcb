"""Runs under a Python that has lm-evaluation-harness (``lm-eval[hf]``) installed; called by
bench_loglik.py. Loads the model once with lm-eval's hf backend (HFLM) at one thread,
warms it up, then times ``HFLM._loglikelihood_tokens`` on each workload at each batch size:
the function lm-eval's ``loglikelihood`` calls once it has tokenised the requests (the code
path its CLI runs for a multiple-choice task), here fed rai-multi's own token ids so both
tools score identical token sequences. Tokenisation, process start, imports and model
load are not timed (rai-multi's timed call does include its own tokenisation).

    python lm_eval_loglik_driver.py SPEC.json OUT.json
SPEC: {"model": dir, "dtype": "float32", "threads": 1, "batches": [int],
       "workloads": {name: [[context_ids, [option_ids, ...]], ...]}}
OUT:  {name: {"runs": {batch: {"cpu_s": float, "wall_s": float}}, "logprobs": [[float]]}}
"""

import json
import resource
import sys
import time

import torch


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def flatten(rows):
    """lm-eval's request triples, one per (context, option) pair, and each pair's owner."""
    out, owner = [], []
    for i, (ctx, options) in enumerate(rows):
        for opt in options:
            out.append((("", ""), list(ctx), list(opt)))
            owner.append(i)
    return out, owner


def main() -> None:
    spec = json.load(open(sys.argv[1], encoding="utf-8"))
    torch.set_num_threads(spec.get("threads", 1))
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=spec["model"], dtype=spec["dtype"], batch_size=1, device="cpu")
    out = {}
    for name, rows in spec["workloads"].items():
        reqs, owner = flatten(rows)
        lm._loglikelihood_tokens(reqs[:2], disable_tqdm=True)  # warm-up, as every path gets
        runs, logprobs = {}, None
        for batch in spec["batches"]:
            lm.batch_size_per_gpu = batch
            c, t = cpu_seconds(), time.perf_counter()
            res = lm._loglikelihood_tokens(reqs, disable_tqdm=True)
            runs[str(batch)] = {"cpu_s": cpu_seconds() - c, "wall_s": time.perf_counter() - t}
            if logprobs is None:
                logprobs = [[] for _ in rows]
                for i, (lp, _greedy) in zip(owner, res):
                    logprobs[i].append(float(lp))
        out[name] = {"runs": runs, "logprobs": logprobs}
    json.dump(out, open(sys.argv[2], "w", encoding="utf-8"))


if __name__ == "__main__":
    main()
