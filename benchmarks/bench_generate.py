"""Generation speed on the real demo models: rai-multi against lm-evaluation-harness's hf
backend on identical requests, and each phase of rai-multi's run against its roofline.

What is compared, so a sceptic can check it:
- models: the two demo models (``demo:smollm2-135m-instruct``, ``demo:gemma3-270m``), GGUF
  dequantised once to a safetensors folder that both tools load;
- workloads: MGSM native chain of thought (8-shot) and TyDiQA GoldP one-shot prompts built
  by rai-multi's own tasks from $RAI_MULTI_DATA, ``--per-lang`` items in each of four
  languages, greedy, with each task's stop strings and token limit. lm-eval gets the same
  prompt strings, the same ``until`` strings and the same ``max_gen_toks``
  (lm_eval_driver.py), so both tools stop by the same rules;
- each (tool, dtype, model, repeat) is one child process at one thread; the child reports
  user+sys CPU seconds (getrusage) and wall seconds of the timed call, after a warm-up
  call; imports and model load are not timed;
- tools alternate inside every repeat (the order flips each repeat), ``--repeats`` times,
  median and spread; the 1-minute load average is recorded before every child;
- lm-eval tries ``--lm-eval-batches`` in the first repeat and keeps its fastest per
  workload (by CPU seconds) afterwards;
- outputs are compared text for text (stripped); a speed ratio is printed beside the
  count of equal outputs, so a reader sees what the ratio covers.

Phases (``--phases``): one more rai-multi run per model and dtype with forward hooks
(phases.PhaseMeter) splits time into prefill (prompt and shared-prefix forwards) and
decode (one-token steps), and a FLOP-counting run (fp32; attention counted by
phases.attention_flops) gives each phase's FLOPs. Roofline of a phase =
max(FLOPs / matmul peak, bytes / read bandwidth), both measured here at one thread;
bytes = the weights once per forward plus, for a decode step, the keys and values it
attends to. Fraction of roofline = roofline / measured seconds.

    RAI_MULTI_DATA=../shared/data python benchmarks/bench_generate.py --repeats 3 \
        --lm-eval-python /tmp/lmeval-venv/bin/python --phases --out benchmarks/RESULTS_GENERATE.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------- workloads
def build_workloads(data_dir: Path, per_lang: int, mgsm_tokens: int) -> dict[str, list[dict]]:
    """MGSM native CoT (8-shot) in en/de/sw/bn and TyDiQA GoldP one-shot in en/fi/sw/bn."""
    from rai_multi.tasks.mgsm import MgsmTask
    from rai_multi.tasks.tydiqa import TydiqaTask

    mgsm = MgsmTask(langs=["en", "de", "sw", "bn"], data_dir=data_dir, setting="native_cot", limit=per_lang,
                    max_new_tokens=mgsm_tokens)
    tydiqa = TydiqaTask(langs=["en", "fi", "sw", "bn"], data_dir=data_dir, limit=per_lang)
    out = {}
    for name, task in (("mgsm_native_cot", mgsm), ("tydiqa_one_shot", tydiqa)):
        out[name] = [{"prompt": s.request.prompt, "stop": list(s.request.stop), "max_new_tokens": s.request.max_new_tokens}
                     for s in task.build_samples()]
    return out


def requests_of(rows: list[dict]):
    from rai_multi.records import GenerationRequest

    return [GenerationRequest(r["prompt"], max_new_tokens=r["max_new_tokens"], stop=tuple(r["stop"])) for r in rows]


# ---------------------------------------------------------------------- children
def child_rai(spec: dict) -> dict:
    """rai-multi's HFAdapter.generate at ``spec['dtype']``, one thread, timed after a warm-up."""
    import torch

    torch.set_num_threads(1)
    from rai_multi.models.loading import load_model

    adapter = load_model(spec["model"], dtype=spec["dtype"])
    out = {}
    for name, rows in spec["workloads"].items():
        reqs = requests_of(rows)
        adapter.generate(reqs[-1:], ["warm-up"])
        c, t = cpu_seconds(), time.perf_counter()
        texts = adapter.generate(reqs, [str(i) for i in range(len(reqs))])
        out[name] = {"cpu_s": cpu_seconds() - c, "wall_s": time.perf_counter() - t, "outputs": [o[0] for o in texts]}
    out["_dtype"] = adapter.description().get("dtype") or spec["dtype"]
    return out


def child_phases(spec: dict) -> dict:
    """Seconds per phase (timed run with hooks), FLOPs per phase (a fp32 counting run),
    forwards and bytes per phase, for every workload."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(1)
    from phases import COUNTED_ATTENTION, PhaseMeter

    from rai_multi.models.loading import load_model

    adapter = load_model(spec["model"], dtype=spec["dtype"])
    counting = adapter if spec["dtype"] == "fp32" else load_model(spec["model"], dtype="fp32")
    out = {}
    for name, rows in spec["workloads"].items():
        reqs = requests_of(rows)
        ids = [str(i) for i in range(len(reqs))]
        adapter.generate(reqs[-1:], ["warm-up"])
        meter = PhaseMeter(adapter.model)
        adapter.generate(reqs, ids)
        meter.close()
        with FlopCounterMode(display=False, custom_mapping=COUNTED_ATTENTION) as counter:
            flop_meter = PhaseMeter(counting.model, counter)
            counting.generate(reqs, ids)
            flop_meter.close()
        element = next(adapter.model.parameters()).element_size()
        out[name] = {"seconds": meter.seconds, "cpu_seconds": meter.cpu_seconds, "flops": flop_meter.flops, "decode_steps": meter.decode_steps,
                     "prefill_calls": meter.prefill_calls, "weight_bytes": meter.weight_bytes,
                     "decode_read_bytes": meter.decode_read_bytes, "prefill_read_bytes": meter.prefill_read_bytes,
                     "element_size": element}
    return out


def child_peaks() -> dict:
    """Matmul peak (fp32, bf16) and read bandwidth at one thread, what every child gets."""
    import torch

    torch.set_num_threads(1)
    from matmul_shapes import linear_gflops
    from phases import read_bandwidth

    return {"peak_gflops": {"fp32": linear_gflops(2048, 2048, 2048, torch.float32, 6),
                            "bf16": linear_gflops(2048, 2048, 2048, torch.bfloat16, 6)},
            "bandwidth_gbs": read_bandwidth()}


# ---------------------------------------------------------------------- parent
def run_child(cmd: list[str], out: Path, env: dict) -> tuple[dict, list[float]]:
    load = list(os.getloadavg())
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"child failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text(encoding="utf-8")), load


def summarise(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", choices=("rai", "phases", "peaks"))
    ap.add_argument("--spec")
    ap.add_argument("--out-json")
    ap.add_argument("--models", nargs="+", default=["demo:smollm2-135m-instruct", "demo:gemma3-270m"])
    ap.add_argument("--per-lang", type=int, default=4, help="items per language per workload")
    ap.add_argument("--mgsm-tokens", type=int, default=128, help="MGSM max new tokens")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtypes", default="fp32,auto", help="rai-multi dtypes (lm-eval runs fp32)")
    ap.add_argument("--lm-eval-python", default="/tmp/lmeval-venv/bin/python")
    ap.add_argument("--lm-eval-batches", default="4,16")
    ap.add_argument("--phases", action="store_true")
    ap.add_argument("--out", default=str(HERE / "RESULTS_GENERATE.md"))
    ap.add_argument("--json", default=str(HERE / "results_generate.json"))
    ap.add_argument("--render", help="only write the report of this raw JSON file")
    args = ap.parse_args()
    if args.child:
        spec = json.loads(Path(args.spec).read_text(encoding="utf-8")) if args.spec else {}
        result = {"rai": child_rai, "phases": child_phases, "peaks": lambda _s: child_peaks()}[args.child](spec)
        Path(args.out_json).write_text(json.dumps(result), encoding="utf-8")
        return
    if args.render:
        raw = json.loads(Path(args.render).read_text(encoding="utf-8"))
        Path(args.out).write_text(report(raw), encoding="utf-8")
        print(Path(args.out).read_text(encoding="utf-8"))
        return

    from bench_loglik import machine, model_dir

    data_dir = Path(os.environ.get("RAI_MULTI_DATA", ROOT.parent / "shared" / "data"))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}
    tmp = Path(tempfile.mkdtemp(prefix="bench_generate_"))
    me = [sys.executable, str(Path(__file__).resolve())]
    started = time.time()
    peaks, _ = run_child(me + ["--child", "peaks", "--out-json", str(tmp / "peaks.json")], tmp / "peaks.json", env)
    workloads = build_workloads(data_dir, args.per_lang, args.mgsm_tokens)
    dtypes = args.dtypes.split(",")
    raw: dict = {"machine": machine(), "peaks": peaks, "args": vars(args), "models": {},
                 "sizes": {w: len(r) for w, r in workloads.items()}}
    lm_batches = [int(b) for b in args.lm_eval_batches.split(",")]
    for source in args.models:
        folder = model_dir(source)
        entry = raw["models"][source] = {"folder": folder, "runs": [], "best_batch": None}
        tools = [("rai", d) for d in dtypes] + [("lm_eval", "fp32")]
        for rep in range(args.repeats):
            for tool, dtype in (tools if rep % 2 == 0 else tools[::-1]):
                out = tmp / f"{tool}-{dtype}.json"
                spec = tmp / f"{tool}-{dtype}-spec.json"
                if tool == "lm_eval":
                    batches = lm_batches if entry["best_batch"] is None else sorted(set(entry["best_batch"].values()))
                    spec.write_text(json.dumps({"model": folder, "dtype": "float32", "threads": 1, "batches": batches,
                                                "workloads": workloads}), encoding="utf-8")
                    cmd = [args.lm_eval_python, str(HERE / "lm_eval_driver.py"), str(spec), str(out)]
                else:
                    spec.write_text(json.dumps({"model": folder, "dtype": dtype, "workloads": workloads}), encoding="utf-8")
                    cmd = me + ["--child", "rai", "--spec", str(spec), "--out-json", str(out)]
                result, load = run_child(cmd, out, env)
                if tool == "lm_eval":
                    if entry["best_batch"] is None:
                        entry["best_batch"] = {w: int(min(r["runs"], key=lambda b: r["runs"][b]["cpu_s"]))
                                               for w, r in result.items()}
                    for w, r in result.items():
                        r.update(r["runs"][str(entry["best_batch"][w])], batch=entry["best_batch"][w])
                entry["runs"].append({"repeat": rep, "tool": tool, "dtype": dtype, "load": load, "result": result})
                Path(args.json).write_text(json.dumps(raw, indent=1), encoding="utf-8")  # survives an interruption
                print(f"{source} rep {rep} {tool} {dtype}: " + ", ".join(
                    f"{w} {r['cpu_s']:.1f} CPU s" for w, r in result.items() if not w.startswith("_"))
                    + f" (load {load[0]:.2f})", flush=True)
        if args.phases:
            entry["phases"] = {}
            for dtype in dtypes:
                spec = tmp / f"phases-{dtype}-spec.json"
                spec.write_text(json.dumps({"model": folder, "dtype": dtype, "workloads": workloads}), encoding="utf-8")
                out = tmp / f"phases-{dtype}.json"
                entry["phases"][dtype], _ = run_child(me + ["--child", "phases", "--spec", str(spec), "--out-json",
                                                            str(out)], out, env)
                Path(args.json).write_text(json.dumps(raw, indent=1), encoding="utf-8")
    raw["minutes"] = (time.time() - started) / 60
    Path(args.json).write_text(json.dumps(raw, indent=1), encoding="utf-8")
    Path(args.out).write_text(report(raw), encoding="utf-8")
    print(Path(args.out).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------- report
def _fmt(s: dict) -> str:
    return f"{s['median']:.1f} [{s['min']:.1f}-{s['max']:.1f}]"


def _equal(a: list[str], b: list[str]) -> int:
    return sum(x.strip() == y.strip() for x, y in zip(a, b))


def report(raw: dict) -> str:
    info, peaks = raw["machine"], raw["peaks"]
    flags = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in info.get("flags", {}).items())
    dtypes = raw["args"]["dtypes"].split(",")
    lines = [
        "# Generation: rai-multi vs lm-evaluation-harness on the real demo models (generated by benchmarks/bench_generate.py)",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores; CPU flags: {flags}. `--dtype auto` resolves to "
        f"**{info['auto_dtype']}** here. torch {info.get('torch', '?')}, transformers {info.get('transformers', '?')}. "
        f"Every process at one thread. Measured at one thread: matmul peak {peaks['peak_gflops']['fp32']:.0f} GFLOP/s fp32, "
        f"{peaks['peak_gflops']['bf16']:.0f} GFLOP/s bf16 (2048^3); read bandwidth {peaks['bandwidth_gbs']:.1f} GB/s. "
        f"Run took {raw.get('minutes', float('nan')):.0f} min in one go.",
        "",
        f"Workloads: {', '.join(f'{w} ({n} prompts)' for w, n in raw['sizes'].items())}; MGSM native CoT 8-shot in "
        f"en/de/sw/bn, max {raw['args']['mgsm_tokens']} new tokens; TyDiQA GoldP one-shot in en/fi/sw/bn, 32 new "
        "tokens; greedy; each task's stop strings on both sides. CPU s = user+sys of the timed call (median "
        "[min-max] over repeats); lm-eval at its fastest batch size (tried: "
        f"{raw['args']['lm_eval_batches']}) and fp32.",
        "",
        "| model | workload | repeats | rai-multi fp32 CPU s | lm-eval fp32 CPU s (batch) | lm-eval / rai-multi fp32 (CPU) | wall s rai / lm-eval | outputs equal rai fp32 = lm-eval | "
        + " | ".join(f"rai-multi {d} CPU s | fp32 / {d} | outputs {d} = fp32" for d in dtypes if d != "fp32") + " |",
        "|---|---|---|---|---|---|---|---|" + "---|---|---|" * len([d for d in dtypes if d != "fp32"]),
    ]
    loads: list[float] = []
    for source, entry in raw["models"].items():
        runs = entry["runs"]
        loads += [r["load"][0] for r in runs]
        for w in raw["sizes"]:
            def pick(tool: str, dtype: str) -> list[dict]:
                return [r["result"][w] for r in runs if r["tool"] == tool and r["dtype"] == dtype]

            rai, lm = pick("rai", "fp32"), pick("lm_eval", "fp32")
            if not rai or not lm:
                continue
            rc, lc = summarise([r["cpu_s"] for r in rai]), summarise([r["cpu_s"] for r in lm])
            rw, lw = summarise([r["wall_s"] for r in rai]), summarise([r["wall_s"] for r in lm])
            eq = _equal(rai[0]["outputs"], lm[0]["outputs"])
            cells = [source, w, f"{rc['n']}/{lc['n']}", _fmt(rc), f"{_fmt(lc)} ({lm[0]['batch']})",
                     f"**{lc['median'] / rc['median']:.2f}x**", f"{rw['median']:.1f} / {lw['median']:.1f}",
                     f"{eq}/{len(rai[0]['outputs'])}"]
            for d in dtypes:
                if d == "fp32":
                    continue
                other = pick("rai", d)
                if not other:
                    cells += ["-", "-", "-"]
                    continue
                oc = summarise([r["cpu_s"] for r in other])
                cells += [_fmt(oc), f"{rc['median'] / oc['median']:.2f}x",
                          f"{_equal(other[0]['outputs'], rai[0]['outputs'])}/{len(rai[0]['outputs'])}"]
            lines.append("| " + " | ".join(cells) + " |")
    if loads:
        lines += ["", f"1-minute load average before each child: {min(loads):.2f}-{max(loads):.2f} "
                      f"(median {statistics.median(loads):.2f}) on {info['cores']} cores."]
    phase_rows = []
    for source, entry in raw["models"].items():
        for dtype, per in entry.get("phases", {}).items():
            peak = peaks["peak_gflops"]["bf16" if dtype != "fp32" and info["auto_dtype"] == "bf16" else "fp32"]
            bw = peaks["bandwidth_gbs"] * 1e9
            for w, p in per.items():
                cells = [source, w, dtype]
                for phase in ("prefill", "decode"):
                    secs = p["cpu_seconds"][phase]
                    flops = p["flops"][phase]
                    nbytes = p[f"{phase}_read_bytes"]
                    roof = max(flops / (peak * 1e9), nbytes / bw)
                    bound = "FLOPs" if flops / (peak * 1e9) >= nbytes / bw else "bytes"
                    cells += [f"{secs:.1f}", f"{flops / 1e9:.0f}", f"{nbytes / 1e9:.1f}", f"{roof:.1f} ({bound})",
                              f"**{roof / secs:.0%}**" if secs else "-"]
                phase_rows.append("| " + " | ".join(cells) + " |")
    if phase_rows:
        lines += ["", "Phases of rai-multi's run against their roofline (max(FLOPs / peak, bytes / bandwidth), one "
                      "thread; CPU seconds of the phase's forwards (hooks on the model); a bf16 run's FLOPs are "
                      "counted on its fp32 twin):", "",
                  "| model | workload | dtype | prefill CPU s | prefill GFLOP | prefill GB | prefill roofline s (bound) | "
                  "prefill fraction | decode CPU s | decode GFLOP | decode GB | decode roofline s (bound) | decode fraction |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|", *phase_rows]
    bound_rows = []
    for source, entry in raw["models"].items():
        fp32 = entry.get("phases", {}).get("fp32")
        if not fp32:
            continue
        for w, p in fp32.items():
            lm = [r["result"][w]["cpu_s"] for r in entry["runs"] if r["tool"] == "lm_eval"]
            rai = [r["result"][w]["cpu_s"] for r in entry["runs"] if r["tool"] == "rai" and r["dtype"] == "fp32"]
            if not lm or not rai:
                continue
            roofs = [max(p["flops"][ph] / (peaks["peak_gflops"]["fp32"] * 1e9),
                         p[f"{ph}_read_bytes"] / (peaks["bandwidth_gbs"] * 1e9)) for ph in ("prefill", "decode")]
            lm_s, rai_s = statistics.median(lm), statistics.median(rai)
            bound_rows.append(f"| {source} | {w} | {lm_s:.1f} | {rai_s:.1f} | {roofs[0]:.1f} + {roofs[1]:.1f} | "
                              f"{lm_s / rai_s:.2f}x | **{lm_s / sum(roofs):.2f}x** |")
    if bound_rows:
        lines += ["", "How far the fp32 ratio could go: lm-eval's CPU seconds over the least time rai-multi's own "
                      "work can take (its prefill and decode rooflines, fp32, added): a ratio above the bound "
                      "would need fewer FLOPs or bytes, not faster code.", "",
                  "| model | workload | lm-eval CPU s | rai-multi CPU s | rai-multi rooflines s (prefill + decode) | "
                  "ratio | bound on the ratio |", "|---|---|---|---|---|---|---|", *bound_rows]
    lines += ["", "Reproduce: `RAI_MULTI_DATA=../shared/data python benchmarks/bench_generate.py "
                  f"--per-lang {raw['args']['per_lang']} --mgsm-tokens {raw['args']['mgsm_tokens']} --repeats "
                  f"{raw['args']['repeats']} --dtypes {raw['args']['dtypes']} --lm-eval-batches "
                  f"{raw['args']['lm_eval_batches']} --lm-eval-python VENV/bin/python"
                  + (" --phases" if raw["args"]["phases"] else "") + "` (lm-eval 0.4.13 in its own venv).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
