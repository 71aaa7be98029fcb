"""Client throughput on a served model: rai-multi's ``openai:`` backend against lm-eval's
``local-completions`` on the same llama.cpp server (llama-cpp-python[server], started here
on loopback) and the same greedy requests.

Why these figures: on a served model the client's own cost (JSON, threads, retries) is what
rai-multi adds; wall seconds show whether concurrency is used (llama-cpp-python's server
runs one request at a time, so concurrency can only hide the client's own latency), client
CPU seconds (user + sys of the client process during the generation call) show whether the
client itself is a bottleneck. Each client runs in its own interpreter, lm-eval from its
own environment (``--lm-eval-python``, e.g. a venv with ``pip install lm-eval==0.4.*``), so
neither pays for the other's imports. The tools alternate within each repeat (ABAB...), so a
change of machine load hits both alike.

    nice -n 19 python benchmarks/bench_served.py --data-dir $RAI_MULTI_DATA \
        --lm-eval-python /tmp/lmeval-venv/bin/python --out benchmarks/out/served.json

Prompts: the first ``--per-lang`` MGSM questions of each of 8 languages as
``Question: ...\\nAnswer:`` (direct, zero-shot), greedy, ``--max-tokens`` new tokens, stop
``Question:``. Both clients send ``repeat_penalty: 1.0`` (rai-multi always does: the server's
default of 1.1 is not greedy decoding), so the two send the same sampling settings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the server launcher the tests use

LANGS = ("en", "de", "es", "fr", "ja", "ru", "sw", "zh")
STOP = "Question:"
ALIAS = "served"

# Both clients: read the job from stdin, time only the generation call, print one JSON line.
RAI_CLIENT = r"""
import json, sys, time
from rai_multi.models.spec import load_backend, parse_model
from rai_multi.records import GenerationRequest
job = json.load(sys.stdin)
client = load_backend(parse_model("openai:" + job["model"], base_url=job["url"], concurrency=job["concurrency"]))
reqs = [GenerationRequest(p, max_new_tokens=job["max_tokens"], stop=(job["stop"],)) for p in job["prompts"]]
ids = [str(i) for i in range(len(reqs))]
cpu0, t0 = time.process_time(), time.perf_counter()
outs = client.generate(reqs, ids)
print(json.dumps({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0,
                  "requests": client.requests_sent, "outputs": [o[0] for o in outs]}))
"""

LM_EVAL_CLIENT = r"""
import json, logging, sys, time
logging.disable(logging.WARNING)
from lm_eval.api.instance import Instance
from lm_eval.models.openai_completions import LocalCompletionsAPI
job = json.load(sys.stdin)
lm = LocalCompletionsAPI(base_url=job["url"] + "/completions", model=job["model"], tokenizer_backend=None,
                         tokenized_requests=False, num_concurrent=job["concurrency"], batch_size=1,
                         max_gen_toks=job["max_tokens"])
# repeat_penalty 1.0 passes through lm-eval's gen_kwargs into the request, as rai-multi sends it
reqs = [Instance("generate_until", {}, (p, {"until": [job["stop"]], "max_gen_toks": job["max_tokens"],
                                            "do_sample": False, "repeat_penalty": 1.0}), i)
        for i, p in enumerate(job["prompts"])]
cpu0, t0 = time.process_time(), time.perf_counter()
outs = lm.generate_until(reqs, disable_tqdm=True)
print(json.dumps({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0, "outputs": outs}))
"""


def mgsm_prompts(data_dir: Path, per_lang: int) -> list[str]:
    """Direct zero-shot prompts from the first questions of each language's MGSM file."""
    prompts = []
    for lang in LANGS:
        lines = (data_dir / "mgsm" / f"mgsm_{lang}.tsv").read_text(encoding="utf-8").splitlines()
        prompts += [f"Question: {line.split(chr(9))[0]}\nAnswer:" for line in lines[:per_lang]]
    return prompts


def run_client(tool: str, python: str, job: dict[str, Any]) -> dict[str, Any]:
    """One client process; its figures plus the whole process's CPU seconds (imports too)."""
    code = RAI_CLIENT if tool == "rai-multi" else LM_EVAL_CLIENT
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    before = os.times()
    proc = subprocess.run([python, "-c", code], input=json.dumps(job), capture_output=True, text=True, env=env)
    after = os.times()
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} client failed: {proc.stderr.strip()[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_cpu_s"] = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return result


def summarise(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", default="demo:smollm2-135m-instruct", help="GGUF path or demo:<name>")
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("RAI_MULTI_DATA", "data")))
    ap.add_argument("--per-lang", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--server-threads", type=int, default=1)
    ap.add_argument("--lm-eval-python", required=True)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "served.json")
    args = ap.parse_args()

    from served import LlamaServer

    from rai_multi.demo_models import resolve_demo_model

    gguf = Path(resolve_demo_model(args.gguf))
    prompts = mgsm_prompts(args.data_dir, args.per_lang)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"gguf": gguf.name, "prompts": len(prompts), "max_tokens": args.max_tokens,
                              "stop": STOP, "repeats": args.repeats, "server_threads": args.server_threads,
                              "cpu": cpu_name(), "cores": os.cpu_count(), "loadavg_start": os.getloadavg(),
                              "runs": []}
    tools = {"rai-multi": sys.executable, "lm-eval": args.lm_eval_python}
    with LlamaServer(gguf, ALIAS, args.out.with_suffix(".server.log"), threads=args.server_threads) as srv:
        srv.post("/v1/completions", {"model": ALIAS, "prompt": prompts[0], "max_tokens": 4, "temperature": 0.0})
        for conc in args.concurrency:
            job = {"url": srv.url, "model": ALIAS, "concurrency": conc, "max_tokens": args.max_tokens,
                   "stop": STOP, "prompts": prompts}
            for rep in range(args.repeats):
                order = list(tools) if rep % 2 == 0 else list(tools)[::-1]
                for tool in order:
                    r = run_client(tool, tools[tool], job)
                    r.update(tool=tool, concurrency=conc, repeat=rep, loadavg=os.getloadavg()[0])
                    result["runs"].append(r)
                    print(f"c={conc} rep={rep} {tool:9s} wall {r['wall_s']:7.2f} s  client cpu {r['cpu_s']:6.3f} s"
                          f"  process cpu {r['process_cpu_s']:6.2f} s  load {r['loadavg']:.2f}", flush=True)
    result["loadavg_end"] = os.getloadavg()
    result["summary"] = summary(result["runs"], args.concurrency)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(json.dumps(result["summary"], indent=1))


def summary(runs: list[dict[str, Any]], concurrency: list[int]) -> dict[str, Any]:
    """Per concurrency: median and range of wall and client CPU seconds per tool, their
    ratios (lm-eval / rai-multi), and how many outputs agree between the tools."""
    out: dict[str, Any] = {}
    for conc in concurrency:
        mine = [r for r in runs if r["concurrency"] == conc]
        row: dict[str, Any] = {}
        for tool in ("rai-multi", "lm-eval"):
            rs = [r for r in mine if r["tool"] == tool]
            row[tool] = {"wall_s": summarise([r["wall_s"] for r in rs]), "cpu_s": summarise([r["cpu_s"] for r in rs]),
                         "process_cpu_s": summarise([r["process_cpu_s"] for r in rs])}
        for key in ("wall_s", "cpu_s"):
            row[f"{key}_ratio_lm_eval_over_rai_multi"] = round(
                row["lm-eval"][key]["median"] / row["rai-multi"][key]["median"], 3)
        rai = [r["outputs"] for r in mine if r["tool"] == "rai-multi"]
        lm = [r["outputs"] for r in mine if r["tool"] == "lm-eval"]
        row["outputs_equal_between_tools"] = [sum(a == b for a, b in zip(x, y)) for x, y in zip(rai, lm)]
        row["outputs_equal_across_repeats"] = {
            "rai-multi": all(x == rai[0] for x in rai), "lm-eval": all(x == lm[0] for x in lm)}
        row["n"] = len(rai[0]) if rai else 0
        out[str(conc)] = row
    return out


def markdown_table(result: dict[str, Any]) -> str:
    """The summary of one result file as a Markdown table (RESULTS_SERVED.md quotes it)."""
    lines = ["| concurrency | client | wall s, median (min-max) | client CPU s, median (min-max) "
             "| whole client process CPU s, median | outputs equal between clients |",
             "| --- | --- | --- | --- | --- | --- |"]
    for conc, row in result["summary"].items():
        equal = "/".join(str(e) for e in row["outputs_equal_between_tools"]) + f" of {row['n']} (each repeat)"
        for tool in ("rai-multi", "lm-eval"):
            w, c, pc = row[tool]["wall_s"], row[tool]["cpu_s"], row[tool]["process_cpu_s"]
            lines.append(f"| {conc} | {tool} | {w['median']:.2f} ({w['min']:.2f}-{w['max']:.2f}) "
                         f"| {c['median']:.3f} ({c['min']:.3f}-{c['max']:.3f}) | {pc['median']:.2f} | {equal} |")
        lines.append(f"| {conc} | lm-eval / rai-multi | {row['wall_s_ratio_lm_eval_over_rai_multi']:.3f} "
                     f"| {row['cpu_s_ratio_lm_eval_over_rai_multi']:.3f} | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--table":  # bench_served.py --table out.json
        print(markdown_table(json.loads(Path(sys.argv[2]).read_text())))
    else:
        main()
