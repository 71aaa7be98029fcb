"""Runs under a Python that has lm-evaluation-harness (``lm-eval[hf]``) installed; called by
bench_eval.py. Loads the model once with lm-eval's hf backend (HFLM), warms it up, then
times ``HFLM.generate_until`` on each workload: the code path lm-eval's CLI runs for a
``generate_until`` task, without its process start, imports, model load or dataset
building. Each request carries its own stop strings and token limit, as per-language
tasks would (lm-eval batches requests with equal generation settings together).

    python lm_eval_driver.py SPEC.json OUT.json
SPEC: {"model": dir, "dtype": "float32"|"bfloat16", "batch": int,
       "workloads": {name: [{"prompt", "stop", "max_new_tokens"}]}}
OUT:  {name: {"seconds": float, "outputs": [str]}}
or, with "batches": [int] and "threads": int in SPEC (bench_generate.py), every batch size
timed in CPU seconds (user+sys) and wall seconds:
OUT:  {name: {"runs": {batch: {"cpu_s", "wall_s"}}, "outputs": [str]}}
"""

import json
import resource
import sys
import time

from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM


def instances(rows):
    return [Instance("generate_until", {}, (r["prompt"], {"until": r["stop"], "max_gen_toks": r["max_new_tokens"],
                                                          "do_sample": False}), i) for i, r in enumerate(rows)]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_batches(spec: dict) -> dict:
    """Every workload at every batch size of ``spec['batches']``, at ``spec['threads']``."""
    import torch

    torch.set_num_threads(spec.get("threads", 1))
    lm = HFLM(pretrained=spec["model"], dtype=spec["dtype"], batch_size=1, device="cpu")
    out = {}
    for name, rows in spec["workloads"].items():
        lm.generate_until(instances(rows[-1:]), disable_tqdm=True)  # warm-up, as every path gets
        runs, outputs = {}, None
        for batch in spec["batches"]:
            lm.batch_size_per_gpu = batch
            c, t = cpu_seconds(), time.perf_counter()
            outs = lm.generate_until(instances(rows), disable_tqdm=True)
            runs[str(batch)] = {"cpu_s": cpu_seconds() - c, "wall_s": time.perf_counter() - t}
            outputs = outputs if outputs is not None else outs
        out[name] = {"runs": runs, "outputs": outputs}
    return out


def main() -> None:
    spec = json.load(open(sys.argv[1], encoding="utf-8"))
    if "batches" in spec:
        json.dump(timed_batches(spec), open(sys.argv[2], "w", encoding="utf-8"))
        return
    lm = HFLM(pretrained=spec["model"], dtype=spec["dtype"], batch_size=spec["batch"], device="cpu")
    out = {}
    for name, rows in spec["workloads"].items():
        lm.generate_until(instances(rows[-1:]), disable_tqdm=True)  # warm-up, as every path gets
        t = time.perf_counter()
        outs = lm.generate_until(instances(rows), disable_tqdm=True)
        out[name] = {"seconds": time.perf_counter() - t, "outputs": outs}
    json.dump(out, open(sys.argv[2], "w", encoding="utf-8"))


if __name__ == "__main__":
    main()
