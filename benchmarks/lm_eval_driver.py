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
"""

import json
import sys
import time

from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM


def instances(rows):
    return [Instance("generate_until", {}, (r["prompt"], {"until": r["stop"], "max_gen_toks": r["max_new_tokens"],
                                                          "do_sample": False}), i) for i, r in enumerate(rows)]


def main() -> None:
    spec = json.load(open(sys.argv[1], encoding="utf-8"))
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
