"""Where generation's time goes, per phase and per kind of op, on the real demo models; and
how far the prefill can get towards its roofline with the attention kernel torch has.

Why: RESULTS_GENERATE.md (bench_generate.py --phases) gives each phase's fraction of its roofline
(max(FLOPs / matmul peak, bytes / bandwidth)); this says what the rest of the time is.
Each (model, dtype) runs in its own process at one thread: one warm-up call, then one
profiled call (torch.profiler, CPU) of rai-multi's generation with the model's forward
calls labelled prefill (more than one token) or decode (one token). Every op's self CPU
time is attributed to the phase whose labelled range holds it, and ops are grouped:

- linear: matrix products of the Linear layers (aten::mm/addmm, oneDNN's packed linear);
- attention: the flash kernel and, in decode steps, the products and softmax of
  rai-multi's own decode attention (aten::bmm, aten::_softmax, aten::amax);
- other: everything else (norms, activations, rotary embeddings, copies, argmax, ...).

Prefill cap: the prefill's attention FLOPs (the FLOP counter of phases.py, fp32 twin) at the
rate torch's CPU flash-attention kernel reaches at this model's head shape (causal, 1,024
tokens, one thread, measured here), plus every other prefill FLOP at the matmul peak, is
the least time the prefill can take with that kernel; roofline / that time is the highest
fraction of roofline the prefill can reach without a faster attention kernel.

    RAI_MULTI_DATA=../shared/data python benchmarks/phase_ops.py --out benchmarks/PHASE_OPS.md
"""

from __future__ import annotations

import argparse
import bisect
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

LINEAR = {"aten::mm", "aten::addmm", "mkldnn::_linear_pointwise", "aten::linear"}
ATTENTION = {"aten::_scaled_dot_product_flash_attention_for_cpu", "aten::bmm", "aten::_softmax", "aten::amax"}


def _group(name: str) -> str:
    return "linear" if name in LINEAR else "attention" if name in ATTENTION else "other"


def flash_rate(heads: int, dim: int, torch_dtype, tokens: int = 1024, repeats: int = 5) -> float:
    """GFLOP/s of torch's CPU flash attention, causal, at this head shape and dtype (FLOPs as
    phases.attention_flops counts them: the causal half only)."""
    import torch

    q = torch.randn(1, heads, tokens, dim).to(torch_dtype)
    k = torch.randn(1, heads, tokens, dim).to(torch_dtype)
    v = torch.randn(1, heads, tokens, dim).to(torch_dtype)
    call = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    call(q, k, v, 0.0, True, scale=dim ** -0.5)
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        call(q, k, v, 0.0, True, scale=dim ** -0.5)
        best = min(best, time.process_time() - started)
    pairs = heads * tokens * (tokens + 1) / 2
    return 2 * pairs * 2 * dim / best / 1e9


def child(spec: dict) -> dict:
    """Profile one (model, dtype) on every workload; FLOPs per phase from an fp32 twin."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(1)
    from bench_generate import requests_of
    from phases import COUNTED_ATTENTION, PhaseMeter, phase_of

    from rai_multi.models.loading import load_model

    adapter = load_model(spec["model"], dtype=spec["dtype"])
    counting = adapter if spec["dtype"] == "fp32" else load_model(spec["model"], dtype="fp32")
    model = adapter.model
    torch_dtype = next(model.parameters()).dtype
    dtype = {torch.float32: "fp32", torch.bfloat16: "bf16"}.get(torch_dtype, str(torch_dtype))
    config = model.config
    heads = config.num_attention_heads
    dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    rate = flash_rate(heads, dim, torch_dtype)
    open_ranges: list = []

    def before(_module, _args, kwargs):
        label = record_function(phase_of(kwargs).upper())
        label.__enter__()
        open_ranges.append(label)

    def after(_module, _args, _kwargs, _out):
        open_ranges.pop().__exit__(None, None, None)

    out: dict = {"dtype": dtype, "flash_gflops": rate, "head_shape": [heads, dim], "workloads": {}}
    for name, rows in spec["workloads"].items():
        reqs = requests_of(rows)
        ids = [str(i) for i in range(len(reqs))]
        adapter.generate(reqs[-1:], ["warm-up"])
        handles = [model.register_forward_pre_hook(before, with_kwargs=True),
                   model.register_forward_hook(after, with_kwargs=True)]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            adapter.generate(reqs, ids)
        for handle in handles:
            handle.remove()
        events = prof.events()
        ranges: dict[str, list] = {"DECODE": [], "PREFILL": []}
        for event in events:
            if event.name in ranges:
                ranges[event.name].append((event.time_range.start, event.time_range.end))
        seconds: dict = {}
        for phase, spans in ranges.items():
            spans.sort()
            starts = [s for s, _ in spans]
            groups: collections.Counter = collections.Counter()
            others: collections.Counter = collections.Counter()
            for event in events:
                if event.name in ranges:
                    continue
                i = bisect.bisect_right(starts, event.time_range.start) - 1
                if i >= 0 and event.time_range.end <= spans[i][1]:
                    groups[_group(event.name)] += event.self_cpu_time_total / 1e6
                    if _group(event.name) == "other":
                        others[event.name] += event.self_cpu_time_total / 1e6
            key = "prefill" if phase == "PREFILL" else "decode"
            seconds[key] = dict(groups)
            seconds[key]["top_other"] = others.most_common(3)
        with FlopCounterMode(display=False, custom_mapping=COUNTED_ATTENTION) as counter:
            meter = PhaseMeter(counting.model, counter)
            counting.generate(reqs, ids)
            meter.close()
        out["workloads"][name] = {"seconds": seconds, "flops": meter.flops, "prefill_attention_flops": meter.attention_flops["prefill"]}
    return out


def report(raw: dict) -> str:
    peaks = raw["peaks"]
    lines = [
        "# Where generation's time goes (generated by benchmarks/phase_ops.py)",
        "",
        f"Machine: {raw['machine']['cpu']}, {raw['machine']['cores']} cores; `auto` resolves to "
        f"**{raw['machine']['auto_dtype']}**. One thread; one profiled call per row after a warm-up. Matmul peak "
        f"{peaks['peak_gflops']['fp32']:.0f} GFLOP/s fp32, {peaks['peak_gflops']['bf16']:.0f} bf16; bandwidth "
        f"{peaks['bandwidth_gbs']:.1f} GB/s.",
        "",
        "CPU seconds of each phase's ops by kind (share of the phase); prefill cap = the highest fraction of "
        "its roofline the prefill can reach with torch's flash-attention kernel at its measured rate "
        "(attention FLOPs at that rate, the rest at the matmul peak).",
        "",
        "| model | dtype | workload | phase | CPU s | linear | attention | other (largest three) | attention kernel GFLOP/s | prefill attention share of FLOPs | prefill cap |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, runs in raw["models"].items():
        for run in runs:
            peak = peaks["peak_gflops"]["fp32" if run["dtype"] == "fp32" else "bf16"] * 1e9
            for name, w in run["workloads"].items():
                for phase in ("prefill", "decode"):
                    s = w["seconds"].get(phase, {})
                    total = sum(s.get(g, 0.0) for g in ("linear", "attention", "other")) or float("nan")
                    cells = [model, run["dtype"], name, phase, f"{total:.2f}"] + [
                        f"{s.get(g, 0.0):.2f} ({s.get(g, 0.0) / total:.0%})" for g in ("linear", "attention")] + [
                        f"{s.get('other', 0.0):.2f} ({s.get('other', 0.0) / total:.0%}): "
                        + ", ".join(f"{op.replace('aten::', '')} {sec:.2f}" for op, sec in s.get("top_other", []))]
                    if phase == "prefill":
                        attn, flops = w["prefill_attention_flops"], w["flops"]["prefill"]
                        least = attn / (run["flash_gflops"] * 1e9) + (flops - attn) / peak
                        cells += [f"{run['flash_gflops']:.0f}", f"{attn / flops:.0%}",
                                  f"**{flops / peak / least:.0%}**"]
                    else:
                        cells += ["", "", ""]
                    lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Reproduce: `RAI_MULTI_DATA=../shared/data python benchmarks/phase_ops.py` "
              f"(per-lang {raw['args']['per_lang']}, MGSM {raw['args']['mgsm_tokens']} new tokens). Took "
              f"{raw.get('minutes', float('nan')):.0f} min."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child")
    ap.add_argument("--out-json")
    ap.add_argument("--models", nargs="+", default=["demo:smollm2-135m-instruct", "demo:gemma3-270m"])
    ap.add_argument("--dtypes", default="fp32,auto")
    ap.add_argument("--per-lang", type=int, default=2)
    ap.add_argument("--mgsm-tokens", type=int, default=128)
    ap.add_argument("--out", default=str(HERE / "PHASE_OPS.md"))
    ap.add_argument("--json", default=str(HERE / "results_phase_ops.json"))
    args = ap.parse_args()
    if args.child:
        spec = json.loads(Path(args.child).read_text(encoding="utf-8"))
        Path(args.out_json).write_text(json.dumps(child(spec)), encoding="utf-8")
        return
    from bench_generate import build_workloads, child_peaks
    from bench_loglik import machine, model_dir

    started = time.time()
    data_dir = Path(os.environ.get("RAI_MULTI_DATA", ROOT.parent / "shared" / "data"))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    workloads = build_workloads(data_dir, args.per_lang, args.mgsm_tokens)
    raw: dict = {"machine": machine(), "peaks": child_peaks(), "args": vars(args), "models": {}}
    tmp = Path(tempfile.mkdtemp(prefix="phase_ops_"))
    for source in args.models:
        folder = model_dir(source)
        for dtype in args.dtypes.split(","):
            spec, out = tmp / "spec.json", tmp / "out.json"
            spec.write_text(json.dumps({"model": folder, "dtype": dtype, "workloads": workloads}), encoding="utf-8")
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(spec), "--out-json",
                                   str(out)], env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"child failed ({source}, {dtype}):\n{proc.stderr[-3000:]}")
            raw["models"].setdefault(source, []).append(json.loads(out.read_text(encoding="utf-8")))
            print(f"{source} {dtype}: done", flush=True)
    raw["minutes"] = (time.time() - started) / 60
    Path(args.json).write_text(json.dumps(raw, indent=1), encoding="utf-8")
    Path(args.out).write_text(report(raw), encoding="utf-8")
    print(Path(args.out).read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
