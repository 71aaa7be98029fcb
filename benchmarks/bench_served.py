"""Throughput of the served path: rai-multi's openai: client vs lm-eval's local-completions
on the same llama.cpp server (llama-cpp-python[server]) and the same greedy requests; and
greedy parity of the served model with the hf backend on the same GGUF file.

Why these figures: on a served model the client's own cost (JSON, threads, retries) is what
rai-multi adds; wall time shows whether concurrency is used, client CPU seconds whether the
client itself is a bottleneck. lm-eval runs in its own interpreter (``--lm-eval-python``,
e.g. a venv with ``pip install lm-eval==0.4.*``) so its dependencies stay out of ours.

    python benchmarks/bench_served.py --gguf demo:smollm2-135m-instruct --n 32 \
        --lm-eval-python /tmp/lmeval/bin/python --out benchmarks/out/served.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the server launcher the tests use

LM_EVAL_CLIENT = r"""
import json, sys, time, resource
from lm_eval.api.instance import Instance
from lm_eval.models.openai_completions import LocalCompletionsAPI
url, model, conc, prompts, max_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5])
lm = LocalCompletionsAPI(base_url=url + "/completions", model=model, tokenizer_backend=None, num_concurrent=conc,
                         max_gen_toks=max_tokens, tokenized_requests=False)
reqs = [Instance("generate_until", {}, (p, {"until": ["\n\n"], "max_gen_toks": max_tokens, "do_sample": False}), i)
        for i, p in enumerate(prompts)]
cpu0, t0 = time.process_time(), time.perf_counter()
outs = lm.generate_until(reqs, disable_tqdm=True)
print(json.dumps({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0, "outputs": outs}))
"""


def prompts(n: int) -> list[str]:
    return [f"Question: Roger has {i} tennis balls. He buys {i + 2} more. How many does he have now?\nAnswer:"
            for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True, help="GGUF path or demo:<name>")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--lm-eval-python", default=None)
    ap.add_argument("--no-parity", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "served.json")
    args = ap.parse_args()

    from served import LlamaServer

    from rai_multi.demo_models import resolve_demo_model
    from rai_multi.models.spec import load_backend, parse_model
    from rai_multi.records import GenerationRequest

    gguf = Path(resolve_demo_model(args.gguf))
    texts = prompts(args.n)
    reqs = [GenerationRequest(p, max_new_tokens=args.max_tokens, stop=("\n\n",)) for p in texts]
    ids = [str(i) for i in range(len(reqs))]
    result: dict = {"gguf": gguf.name, "n": args.n, "max_tokens": args.max_tokens, "concurrency": args.concurrency,
                    "cpu": _cpu_name()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with LlamaServer(gguf, "served", args.out.with_suffix(".server.log")) as srv:
        client = load_backend(parse_model("openai:served", base_url=srv.url, concurrency=args.concurrency))
        client.generate(reqs[:2], ids[:2])  # warm-up
        cpu0, t0 = time.process_time(), time.perf_counter()
        served = client.generate(reqs, ids)
        result["rai_multi"] = {"wall_s": round(time.perf_counter() - t0, 3), "cpu_s": round(time.process_time() - cpu0, 3)}
        if args.lm_eval_python:
            proc = subprocess.run([args.lm_eval_python, "-c", LM_EVAL_CLIENT, srv.url, "served", str(args.concurrency),
                                   json.dumps(texts), str(args.max_tokens)], capture_output=True, text=True)
            if proc.returncode == 0:
                lm = json.loads(proc.stdout.strip().splitlines()[-1])
                result["lm_eval"] = {"wall_s": round(lm["wall_s"], 3), "cpu_s": round(lm["cpu_s"], 3),
                                     "same_outputs": sum(a == b[0] for a, b in zip(lm["outputs"], served))}
                result["wall_ratio_lm_eval_over_rai_multi"] = round(lm["wall_s"] / result["rai_multi"]["wall_s"], 3)
            else:
                result["lm_eval"] = {"error": proc.stderr.strip().splitlines()[-1:]}
    if not args.no_parity:
        hf = load_backend(parse_model(str(gguf), dtype="fp32")).generate(reqs, ids)
        equal = sum(a == b for a, b in zip(hf, served))
        result["parity_hf_vs_served"] = {"equal": equal, "of": len(reqs),
                                         "differences": [(t, a[0], b[0]) for t, a, b in zip(texts, hf, served) if a != b]}
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(json.dumps({k: v for k, v in result.items() if k != "parity_hf_vs_served"}, indent=1))
    if "parity_hf_vs_served" in result:
        p = result["parity_hf_vs_served"]
        print(f"parity hf vs served: {p['equal']}/{p['of']} equal")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
