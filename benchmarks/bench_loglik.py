"""Log-likelihood scoring speed on real models: rai-multi (shared context, and its plain
per-option path) against lm-evaluation-harness's hf backend, on identical requests.

What is compared, so a sceptic can check it:
- models: the two demo models (``demo:smollm2-135m-instruct``, ``demo:gemma3-270m``; GGUF
  dequantised to fp32 safetensors once, and both tools load that same folder);
- workloads: CrowS-Pairs, Winogender and BBQ multiple-choice requests built by rai-multi's
  own tasks from $RAI_MULTI_DATA (the first ``--n`` of each); rai-multi tokenises them as
  it does in a run, and lm-eval is given exactly those token ids through
  ``HFLM._loglikelihood_tokens`` (lm_eval_loglik_driver.py), so both score the same tokens;
- each (tool, model, repeat) is one child process at one thread (torch.set_num_threads(1):
  the machine's 2 cores are shared with other jobs, and one thread is what each process
  gets anyway); the child reports user+sys CPU seconds (resource.getrusage) and wall
  seconds of the timed call, after a warm-up; model load and imports are not timed;
- tools alternate within each repeat (the order flips every repeat), three repeats,
  median and spread; the load average is recorded before each child;
- lm-eval runs at several batch sizes in the first repeat and at its fastest one per
  workload afterwards (its best batch size);
- choices (argmax over options) of rai-multi and lm-eval are compared per request, and a
  ratio is claimed only where they all agree.

    python benchmarks/bench_loglik.py --n 60 --repeats 3 --lm-eval-python /tmp/lmeval-venv/bin/python
Writes benchmarks/RESULTS_LOGLIK.md and benchmarks/results_loglik.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------- child: rai-multi
def child_rai(spec_path: str, out_path: str, shared: bool) -> None:
    """Time rai-multi's HFAdapter.loglikelihood (strings in: its tokenisation is timed too)."""
    import torch

    torch.set_num_threads(1)
    from rai_multi.models.loading import load_model
    from rai_multi.records import LoglikelihoodRequest

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    adapter = load_model(spec["model"], dtype="fp32")
    adapter.shared_scoring = shared
    out = {}
    for name, rows in spec["workloads"].items():
        reqs = [LoglikelihoodRequest(ctx, tuple(opts)) for ctx, opts in rows]
        adapter.loglikelihood(reqs[:1], ["warm-up"])  # one-off kernel set-up, as every path gets
        c, t = cpu_seconds(), time.perf_counter()
        res = adapter.loglikelihood(reqs, [str(i) for i in range(len(reqs))])
        out[name] = {"cpu_s": cpu_seconds() - c, "wall_s": time.perf_counter() - t,
                     "logprobs": [[ll.logprob for ll in row] for row in res]}
    Path(out_path).write_text(json.dumps(out), encoding="utf-8")


# ---------------------------------------------------------------------- parent
def machine() -> dict:
    info = {"python": platform.python_version(), "cores": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        names = [l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith("model name")]
        flags = next((l.split(":", 1)[1].split() for l in text.splitlines() if l.startswith("flags")), [])
        info["cpu"] = names[0] if names else platform.processor()
        info["flags"] = {f: f in flags for f in FLAGS_OF_INTEREST}
    except OSError:
        info["cpu"] = platform.processor()
    import torch
    import transformers

    from rai_multi.models.loading import resolve_dtype

    info.update(torch=torch.__version__, transformers=transformers.__version__, auto_dtype=resolve_dtype("auto"))
    return info


def build_workloads(data_dir: Path, n: int) -> dict[str, list]:
    from rai_multi.tasks.bbq import BbqTask
    from rai_multi.tasks.crows_pairs import CrowsPairsTask
    from rai_multi.tasks.winogender import WinogenderTask

    crows = CrowsPairsTask(data_dir, limit=n)
    wino = WinogenderTask(data_dir=data_dir, setting="mc")
    bbq = BbqTask(data_dir=data_dir, setting="mc", limit=max(1, -(-n // 11)))
    out = {}
    for name, task in (("crows_pairs", crows), ("winogender", wino), ("bbq", bbq)):
        reqs = [s.request for s in task.build_samples()][:n]
        out[name] = [[r.context, list(r.continuations)] for r in reqs]
    return out


def model_dir(source: str) -> str:
    from rai_multi.demo_models import resolve_demo_model
    from rai_multi.models.loading import convert_gguf

    path = Path(resolve_demo_model(source))
    return str(convert_gguf(path)) if path.suffix == ".gguf" else str(path)


def tokenised(folder: str, workloads: dict[str, list]) -> tuple[dict[str, list], dict[str, dict]]:
    """rai-multi's token ids of every request (what lm-eval is given) and token counts."""
    from rai_multi.models.loading import load_model

    adapter = load_model(folder, dtype="fp32")
    out, sizes = {}, {}
    for name, rows in workloads.items():
        toks = [[adapter._context_ids(ctx), [adapter._continuation_ids(o) for o in opts]] for ctx, opts in rows]
        out[name] = toks
        sizes[name] = {"requests": len(rows), "pairs": sum(len(o) for _, o in toks),
                       "pair_tokens": sum(len(c) + len(x) for c, o in toks for x in o)}
    return out, sizes


def run_child(cmd: list[str], out: Path, env: dict) -> tuple[dict, dict]:
    load = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"child failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    whole = {"loadavg_before": list(load), "process_wall_s": wall,
             "process_cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}
    return json.loads(out.read_text(encoding="utf-8")), whole


def choice(row: list[float]) -> int:
    return max(range(len(row)), key=lambda k: row[k])


def summarise(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", choices=("rai", "plain"))
    ap.add_argument("--spec")
    ap.add_argument("--out")
    ap.add_argument("--n", type=int, default=60, help="requests per workload")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=["demo:smollm2-135m-instruct", "demo:gemma3-270m"])
    ap.add_argument("--batches", default="8,32", help="lm-eval batch sizes tried in the first repeat")
    ap.add_argument("--lm-eval-python", default="/tmp/lmeval-venv/bin/python")
    ap.add_argument("--no-plain", action="store_true", help="skip rai-multi's plain per-option path")
    ap.add_argument("--results", default=str(HERE / "RESULTS_LOGLIK.md"))
    ap.add_argument("--json", default=str(HERE / "results_loglik.json"), help="raw figures")
    ap.add_argument("--merge", nargs="+", help="only write the report of these raw JSON files (one per model run)")
    args = ap.parse_args()
    if args.child:
        child_rai(args.spec, args.out, shared=args.child == "rai")
        return
    if args.merge:
        parts = [json.loads(Path(f).read_text(encoding="utf-8")) for f in args.merge]
        raw = {**parts[0], "models": {k: v for p in parts for k, v in p["models"].items()}}
        Path(args.results).write_text(report(raw, raw["tools"]), encoding="utf-8")
        print(f"wrote {args.results}")
        return

    data_dir = Path(os.environ.get("RAI_MULTI_DATA", ROOT.parent / "shared" / "data"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    info = machine()
    workloads = build_workloads(data_dir, args.n)
    batches = [int(b) for b in args.batches.split(",")]
    tools = ["rai", "lm_eval"] + ([] if args.no_plain else ["plain"])
    tmp = Path(tempfile.mkdtemp(prefix="bench_loglik_"))
    raw: dict = {"machine": info, "args": vars(args), "tools": tools, "models": {}}
    for source in args.models:
        folder = model_dir(source)
        tokens, sizes = tokenised(folder, workloads)
        raw["models"][source] = {"folder": folder, "sizes": sizes, "runs": []}
        best: dict[str, int] | None = None
        for rep in range(args.repeats):
            order = tools if rep % 2 == 0 else tools[::-1]
            for tool in order:
                out = tmp / f"{tool}.json"
                spec = tmp / f"{tool}-spec.json"
                if tool == "lm_eval":
                    spec.write_text(json.dumps({"model": folder, "dtype": "float32", "threads": 1,
                                                "batches": batches if best is None else sorted(set(best.values())),
                                                "workloads": tokens}), encoding="utf-8")
                    cmd = [args.lm_eval_python, str(HERE / "lm_eval_loglik_driver.py"), str(spec), str(out)]
                else:
                    spec.write_text(json.dumps({"model": folder, "workloads": workloads}), encoding="utf-8")
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", tool, "--spec", str(spec),
                           "--out", str(out)]
                result, whole = run_child(cmd, out, env)
                if tool == "lm_eval":
                    if best is None:  # fastest batch size per workload, by CPU seconds
                        best = {w: int(min(r["runs"], key=lambda b: r["runs"][b]["cpu_s"])) for w, r in result.items()}
                    for w, r in result.items():
                        r.update(r["runs"][str(best[w])], batch=best[w])
                raw["models"][source]["runs"].append({"repeat": rep, "tool": tool, "process": whole, "result": result})
                raw["models"][source]["lm_eval_best_batch"] = best
                Path(args.json).write_text(json.dumps(raw, indent=1), encoding="utf-8")  # survives an interrupted run
                print(f"{source} rep {rep} {tool}: " + ", ".join(
                    f"{w} {r['cpu_s']:.1f}s" for w, r in result.items()) + f" (load {whole['loadavg_before'][0]:.2f})",
                    flush=True)
        raw["models"][source]["lm_eval_best_batch"] = best
    Path(args.json).write_text(json.dumps(raw, indent=1), encoding="utf-8")
    Path(args.results).write_text(report(raw, tools), encoding="utf-8")
    print(f"wrote {args.results}")


def report(raw: dict, tools: list[str]) -> str:
    info = raw["machine"]
    flags = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in info.get("flags", {}).items())
    lines = [
        "# Log-likelihood scoring: rai-multi vs lm-evaluation-harness (real models, same tokens)",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, CPU flags: {flags}. "
        f"`--dtype auto` resolves to **{info['auto_dtype']}** here; every run below is fp32 (both tools). "
        f"torch {info['torch']}, transformers {info['transformers']}, one thread per process.",
        "",
        "CPU seconds are user+sys of the timed call in the child process (getrusage), wall seconds beside "
        "them; median over the repeats, [min-max] spread. lm-eval is fed rai-multi's token ids "
        "(`HFLM._loglikelihood_tokens`) at its fastest batch size per workload. A ratio is claimed only where "
        "every request's choice (argmax over options) is the same in both tools.",
        "",
        "| model | workload | requests / pairs / tokens | rai-multi CPU s | rai-multi wall s | plain path CPU s "
        "| lm-eval CPU s (batch) | lm-eval wall s | repeats | lm-eval / rai-multi (CPU) | choices equal | max abs diff log-lik |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for source, m in raw["models"].items():
        for w, size in m["sizes"].items():
            per = {t: [r["result"][w] for r in m["runs"] if r["tool"] == t] for t in tools}
            if not per["rai"] or not per["lm_eval"]:
                continue  # an interrupted run: nothing to compare yet
            cpu = {t: summarise([x["cpu_s"] for x in per[t]]) for t in tools}
            wall = {t: summarise([x["wall_s"] for x in per[t]]) for t in tools}
            ours, theirs = per["rai"][0]["logprobs"], per["lm_eval"][0]["logprobs"]
            agree = sum(choice(a) == choice(b) for a, b in zip(ours, theirs))
            diff = max(abs(x - y) for a, b in zip(ours, theirs) for x, y in zip(a, b))
            ratio = cpu["lm_eval"]["median"] / cpu["rai"]["median"]
            claim = f"**{ratio:.2f}x**" if agree == len(ours) else f"not claimed ({ratio:.2f}x measured)"
            fmt = lambda s: f"{s['median']:.2f} [{s['min']:.2f}-{s['max']:.2f}]"
            plain = fmt(cpu["plain"]) if "plain" in cpu else "-"
            lines.append(
                f"| {source} | {w} | {size['requests']} / {size['pairs']} / {size['pair_tokens']} | {fmt(cpu['rai'])} | "
                f"{fmt(wall['rai'])} | {plain} | {fmt(cpu['lm_eval'])} ({per['lm_eval'][0]['batch']}) | "
                f"{fmt(wall['lm_eval'])} | {cpu['rai']['n']}/{cpu['lm_eval']['n']} | {claim} | {agree}/{len(ours)} | {diff:.2e} |")
    loads = [r["process"]["loadavg_before"][0] for m in raw["models"].values() for r in m["runs"]]
    lines += ["", f"1-minute load average before each child process: {min(loads):.2f}-{max(loads):.2f} "
                  f"(median {statistics.median(loads):.2f}) on {info['cores']} cores.", ""]
    for source, m in raw["models"].items():
        lines.append(f"lm-eval batch sizes tried in the first repeat ({source}): " + "; ".join(
            f"{w}: " + ", ".join(f"{b}: {v['cpu_s']:.2f}s" for b, v in r["result"][w]["runs"].items())
            for r in m["runs"][:len(tools)] if r["tool"] == "lm_eval" for w in r["result"]))
    lines += ["", "Reproduce (after `python -m venv --system-site-packages /tmp/lmeval-venv && "
                  "/tmp/lmeval-venv/bin/pip install 'lm-eval==0.4.*' torch==2.13.0`):", "",
              "    RAI_MULTI_DATA=/work/shared/data PYTHONPATH=$PWD python benchmarks/bench_loglik.py "
              + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in (("n", raw["args"]["n"]),
                                                                  ("repeats", raw["args"]["repeats"]),
                                                                  ("batches", raw["args"]["batches"])))
              + (" --no-plain" if "plain" not in tools else "")
              + " --models " + " ".join(raw["models"]) + "  # or one model per run, then --merge A.json B.json", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
