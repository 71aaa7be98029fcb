"""Evaluation speed on this machine, in one run: rai-multi vs naive generate vs
lm-evaluation-harness, and the fraction of the FLOP floor reached.

Workloads (same prompts for every path): MGSM 8-shot native CoT prompts and TyDiQA GoldP
one-shot prompts from $RAI_MULTI_DATA, greedy, fixed max new tokens. Models are randomly
initialised with the shapes of flan-t5-small and SmolLM2-135M (speed does not depend on
the weights) and a byte-level BPE tokenizer trained on the benchmark text (realistic
token counts). Writes benchmarks/RESULTS.md.

    python benchmarks/bench_eval.py --prompts 16 --new-tokens 32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from matmul_shapes import linear_gflops
from phases import COUNTED_ATTENTION, PhaseMeter, read_bandwidth

from rai_multi.models.hf import cut_at_stop
from rai_multi.models.loading import load_model, resolve_dtype
from rai_multi.models.tiny import build_tiny_model
from rai_multi.records import GenerationRequest
from rai_multi.tasks.mgsm import MgsmTask
from rai_multi.tasks.tydiqa import TydiqaTask

HERE = Path(__file__).resolve().parent


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 8) -> float:
    """Best GFLOP/s of an n x n matmul (the same timing as matmul_shapes.py's rows)."""
    return linear_gflops(n, n, n, dtype, repeats)


def workloads(data_dir: Path, n: int, new_tokens: int) -> dict[str, list[GenerationRequest]]:
    mgsm = MgsmTask(langs=["en", "de", "sw", "bn"], data_dir=data_dir, limit=(n + 3) // 4, max_new_tokens=new_tokens)
    tydiqa = TydiqaTask(langs=["en", "fi", "sw", "bn"], data_dir=data_dir, limit=(n + 3) // 4, max_new_tokens=new_tokens)
    zero = MgsmTask(langs=["en", "de", "sw", "bn"], data_dir=data_dir, setting="zero_shot_cot", limit=(n + 3) // 4,
                    max_new_tokens=new_tokens)
    return {"mgsm_native_cot": [s.request for s in mgsm.build_samples()][:n],
            "tydiqa_one_shot": [s.request for s in tydiqa.build_samples()][:n],
            "mgsm_zero_shot_cot": [s.request for s in zero.build_samples()][:n]}


def corpus(reqs: dict[str, list[GenerationRequest]]) -> list[str]:
    return [r.prompt for rs in reqs.values() for r in rs]


def run_rai(model_dir: Path, reqs: list[GenerationRequest], batch: int | None, dtype: str) -> tuple[float, list[str]]:
    """rai-multi's generation (``batch`` None: --batch-size auto), timed after a warm-up."""
    adapter = load_model(str(model_dir), batch_size=batch, dtype=dtype)
    adapter.generate(reqs[-1:], ["warm-up"])  # one-off kernel set-up, as every path gets
    t = time.perf_counter()
    outs = adapter.generate(reqs, [str(i) for i in range(len(reqs))])
    return time.perf_counter() - t, [o[0] for o in outs]


def bench_model(out_dir: Path, shape: str, texts: list[str]) -> Path:
    """A random model of ``shape`` with a tokenizer trained on the benchmark text (realistic
    token counts), its vocabulary filled up to the model's with distinct placeholder tokens
    so that every generated id shows in the text and output comparisons mean something."""
    from transformers import AutoTokenizer

    model_dir = build_tiny_model(out_dir, shape, corpus=texts, vocab_size=8000)
    tok = AutoTokenizer.from_pretrained(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    tok.add_tokens([f"<x{i}>" for i in range(len(tok), config["vocab_size"])])
    tok.save_pretrained(model_dir)
    return model_dir


def run_naive(model_dir: Path, reqs: list[GenerationRequest], dtype: str) -> tuple[float, list[str], int]:
    """transformers generate, batch size 1, prompts in file order, stop strings applied
    afterwards, the model in ``dtype`` with transformers' own SDPA attention; also returns
    the number of tokens generated."""
    adapter = load_model(str(model_dir), batch_size=1, dtype=dtype)
    model, tok = adapter.model, adapter.tokenizer
    if model.config._attn_implementation != "sdpa":  # plain transformers, not our CPU decode kernel
        model.set_attn_implementation("sdpa")
    outs, n_new = [], 0
    with torch.inference_mode():  # warm-up, as every path gets
        model.generate(**tok(reqs[-1].prompt, return_tensors="pt"), max_new_tokens=2, do_sample=False,
                       pad_token_id=tok.pad_token_id)
    t = time.perf_counter()
    with torch.inference_mode():
        for r in reqs:
            ids = tok(r.prompt, return_tensors="pt", truncation=True, max_length=adapter.max_context - (0 if adapter.is_seq2seq else r.max_new_tokens))
            gen = model.generate(**ids, max_new_tokens=r.max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
            start = 1 if adapter.is_seq2seq else ids["input_ids"].shape[1]
            outs.append(cut_at_stop(tok.decode(gen[0, start:], skip_special_tokens=True), r.stop))
            n_new += gen.shape[1] - start
    return time.perf_counter() - t, outs, n_new


def count_flops(model_dir: Path, reqs: list[GenerationRequest], batch: int | None) -> dict[str, float]:
    """FLOPs of rai-multi's run (fp32: PyTorch's attention, whose FLOPs phases.attention_flops
    adds), in all and per phase."""
    from torch.utils.flop_counter import FlopCounterMode

    adapter = load_model(str(model_dir), batch_size=batch, dtype="fp32")
    with FlopCounterMode(display=False, custom_mapping=COUNTED_ATTENTION) as counter:
        meter = PhaseMeter(adapter.model, counter)
        adapter.generate(reqs, [str(i) for i in range(len(reqs))])
        meter.close()
    return {"total": float(counter.get_total_flops()), **meter.flops}


def run_phases(model_dir: Path, reqs: list[GenerationRequest], batch: int | None, dtype: str) -> PhaseMeter:
    """The timed run again with phase hooks: seconds per phase, decode steps and the bytes
    they must read (kept apart from the timed run so the hooks cannot slow it)."""
    adapter = load_model(str(model_dir), batch_size=batch, dtype=dtype)
    adapter.generate(reqs[-1:], ["warm-up"])
    meter = PhaseMeter(adapter.model)
    adapter.generate(reqs, [str(i) for i in range(len(reqs))])
    meter.close()
    return meter


def run_lm_eval(python: str, model_dir: Path, works: dict[str, list[GenerationRequest]], batch: int,
                workdir: Path, dtype: str) -> dict[str, dict]:
    """The same requests through lm-evaluation-harness's hf backend, in its own Python
    (lm_eval_driver.py): seconds and outputs per workload, or {} with the reason printed."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec = {"model": str(model_dir), "dtype": dtype, "batch": batch,
            "workloads": {name: [{"prompt": r.prompt, "stop": list(r.stop), "max_new_tokens": r.max_new_tokens}
                                 for r in work] for name, work in works.items()}}
    (workdir / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    proc = subprocess.run([python, str(HERE / "lm_eval_driver.py"), str(workdir / "spec.json"), str(workdir / "out.json")],
                          capture_output=True, text=True, env={**os.environ, "HF_DATASETS_OFFLINE": "1"})
    if proc.returncode != 0:
        print(f"lm-eval could not run: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}", flush=True)
        return {}
    return json.loads((workdir / "out.json").read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch", default="auto", help="rai-multi's --batch-size (auto or rows)")
    parser.add_argument("--lm-eval-batch", type=int, default=16, help="lm-eval's batch size (its CLI default is 1)")
    parser.add_argument("--lm-eval-python", default=os.environ.get("LM_EVAL_PYTHON", ""))
    parser.add_argument("--lm-eval-dtypes", default="fp32",
                        help="comma list of fp32,bf16 (lm-eval's seq2seq runs are long: see the notes)")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    data_dir = Path(os.environ["RAI_MULTI_DATA"])
    reqs = workloads(data_dir, args.prompts, args.new_tokens)
    chosen = resolve_dtype("auto")
    batch = None if args.batch == "auto" else int(args.batch)
    peak = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    bandwidth = read_bandwidth()
    tmp = Path(tempfile.mkdtemp(prefix="rai_bench_"))
    rows = []
    started = time.time()
    try:
        for shape in ("flan-t5-small", "smollm2-135m"):
            model_dir = bench_model(tmp / shape, shape, corpus(reqs) * 2)
            for name, work in reqs.items():
                t_naive, out_naive, new_tokens = run_naive(model_dir, work, "fp32")
                t_naive16, out_naive16, _ = run_naive(model_dir, work, "bf16")
                t_fp32, out_fp32 = run_rai(model_dir, work, batch, "fp32")
                t_bf16, out_bf16 = run_rai(model_dir, work, batch, "bf16")
                flops = count_flops(model_dir, work, batch)
                meter = run_phases(model_dir, work, batch, "bf16")
                row = {"model": shape, "workload": name, "n": len(work), "naive_s": t_naive, "naive16_s": t_naive16,
                       "fp32_s": t_fp32, "bf16_s": t_bf16, "new_tokens": new_tokens,
                       "gflops": flops["total"] / 1e9, "prefill_gflops": flops["prefill"] / 1e9,
                       "prefill_s": meter.seconds["prefill"], "decode_s": meter.seconds["decode"],
                       "decode_steps": meter.decode_steps, "decode_gb": meter.decode_read_bytes / 1e9,
                       "same_fp32_vs_naive": sum(a == b for a, b in zip(out_fp32, out_naive)),
                       "same_bf16_vs_naive16": sum(a == b for a, b in zip(out_bf16, out_naive16)),
                       "same_bf16_vs_fp32": sum(a == b for a, b in zip(out_bf16, out_fp32)),
                       "out_fp32": out_fp32, "out_bf16": out_bf16}
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if not k.startswith("out_")}), flush=True)
            if args.lm_eval_python:
                mine = {r["workload"]: r for r in rows if r["model"] == shape}
                for dtype in args.lm_eval_dtypes.split(","):
                    hf_dtype = {"fp32": "float32", "bf16": "bfloat16"}[dtype]
                    got = run_lm_eval(args.lm_eval_python, model_dir, reqs, args.lm_eval_batch, tmp / f"lm_{shape}_{dtype}",
                                      hf_dtype)
                    for name, res in got.items():
                        mine[name][f"lm_{dtype}_s"] = res["seconds"]
                        mine[name][f"lm_{dtype}_same"] = sum(a.strip() == b.strip() for a, b in
                                                            zip(res["outputs"], mine[name][f"out_{dtype}"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    args.out.write_text(render(rows, args, peak, bandwidth, chosen, time.time() - started))
    print(args.out.read_text())


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def render(rows: list[dict], args: argparse.Namespace, peak: dict[str, float], bandwidth: float, chosen: str,
           wall: float) -> str:
    cpu = subprocess.run(["bash", "-c", "lscpu | grep 'Model name' | cut -d: -f2"], capture_output=True,
                         text=True).stdout.strip()
    lm = bool(args.lm_eval_python)
    lm_args = f" --lm-eval-batch {args.lm_eval_batch} --lm-eval-python PYTHON_WITH_LM_EVAL --lm-eval-dtypes {args.lm_eval_dtypes}"
    lines = [
        "# Evaluation speed (generated by benchmarks/bench_eval.py)", "",
        f"Machine: {cpu or platform.processor()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}; run {time.strftime('%Y-%m-%d')}, "
        f"{wall / 60:.0f} min in one go.",
        f"Matmul peak measured here: {peak['fp32']:.0f} GFLOP/s fp32, {peak['bf16']:.0f} GFLOP/s bf16 "
        f"(2048x2048, best of 8); memory read bandwidth {bandwidth:.1f} GB/s (sum of a 1 GB bf16 tensor, best of 5).",
        f"`--dtype auto` resolves to **{chosen}** on this machine.",
        f"Command: `RAI_MULTI_DATA=... python benchmarks/bench_eval.py --prompts {args.prompts} --new-tokens "
        f"{args.new_tokens} --batch {args.batch}"
        f"{lm_args if lm else ''}`", "",
        "Greedy, fixed max new tokens, random weights with the named shapes (speed does not depend on the weights), "
        "the same prompts for every path (MGSM 8-shot native CoT and zero-shot CoT in en/de/sw/bn, TyDiQA GoldP "
        "one-shot in en/fi/sw/bn; each path's stop strings apply). Every path gets one warm-up call first.",
        "- naive: transformers `generate`, batch size 1, file order, transformers' SDPA attention; in fp32 and in "
        "bf16 (the model cast), each compared with rai-multi at the same dtype.",
        "- rai-multi: `HFAdapter.generate` (length-sorted, token-budget prefill split where padding would pass 25% "
        "of a row, merged into decode batches of `--batch` rows (auto: models/auto_batch.py), per-row stop strings, "
        "finished rows dropped, preallocated KV cache, a few-shot exemplar block prefilled once per language for "
        "decoder-only models and, in bf16, attended in place by all its rows (models/shared_prefix.py); in bf16 its "
        "CPU decode attention).",
        "- lm-eval: lm-evaluation-harness's hf backend (`HFLM.generate_until`, what its CLI runs for a "
        "`generate_until` task) on the same requests with their own stop strings, batch size `--lm-eval-batch`, the "
        "same dtype, timed "
        "in-process after its model load and a warm-up (benchmarks/lm_eval_driver.py).",
        "- new tok/s: tokens generated (counted on the naive fp32 run) / "
        "rai-multi bf16 time.",
        "- FLOP floor: FLOPs of the rai-multi run (torch FlopCounterMode, fp32; attention counted by "
        "benchmarks/phases.py for the (query, key) pairs the masks allow, since FlopCounterMode counts none for "
        "PyTorch's CPU attention kernel) / measured matmul peak of that dtype; fraction = floor / measured time.",
        "- Phases (a second bf16 run with forward hooks, benchmarks/phases.py): prefill = encoder and prompt "
        "forwards, decode = one-token steps. Prefill FLOP fraction = prefill FLOPs / bf16 peak / prefill time. "
        "Decode memory fraction = bytes the steps must read (the weights once a step, plus the keys and values each "
        "row attends to, a shared exemplar block once) / read bandwidth / decode time.", "",
        "| model shape | workload | n | naive fp32 s | naive bf16 s | rai fp32 s | rai bf16 s | "
        "rai vs naive (fp32 / bf16) | "
        + ("lm-eval fp32 s | lm-eval bf16 s | rai vs lm-eval (fp32 / bf16) | " if lm else "")
        + "samples/s, new tok/s (bf16) | FLOP floor fraction (fp32 / bf16) | outputs = naive (fp32 / bf16) | "
        "bf16 outputs = fp32 |",
        "|---|---|---|---|---|---|---|---|" + ("---|---|---|" if lm else "") + "---|---|---|---|",
    ]
    phase_lines = ["", "Phases of the rai-multi bf16 run:", "",
                   "| model shape | workload | prefill s (share) | prefill GFLOP | prefill FLOP fraction | "
                   "decode s (share) | decode steps | decode GB read | decode memory fraction (decode GFLOP) |",
                   "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        timed = r["prefill_s"] + r["decode_s"]
        decode_flop = r["gflops"] - r["prefill_gflops"]
        phase_lines.append("| " + " | ".join([
            r["model"], r["workload"], f"{r['prefill_s']:.1f} ({r['prefill_s'] / timed:.0%})",
            f"{r['prefill_gflops']:.0f}", f"{r['prefill_gflops'] / peak['bf16'] / r['prefill_s']:.0%}",
            f"{r['decode_s']:.1f} ({r['decode_s'] / timed:.0%})", str(r["decode_steps"]), f"{r['decode_gb']:.1f}",
            f"{r['decode_gb'] / bandwidth / r['decode_s']:.0%} ({decode_flop:.0f})"]) + " |")
    for r in rows:
        f32, f16 = r["gflops"] / peak["fp32"], r["gflops"] / peak["bf16"]
        cells = [r["model"], r["workload"], str(r["n"]), f"{r['naive_s']:.1f}", f"{r['naive16_s']:.1f}",
                 f"{r['fp32_s']:.1f}", f"{r['bf16_s']:.1f}",
                 f"{_ratio(r['naive_s'], r['fp32_s'])} / {_ratio(r['naive16_s'], r['bf16_s'])}"]
        if lm:
            cells += [f"{r['lm_fp32_s']:.1f}" if r.get("lm_fp32_s") else "not run",
                      f"{r['lm_bf16_s']:.1f}" if r.get("lm_bf16_s") else "not run",
                      f"{_ratio(r.get('lm_fp32_s'), r['fp32_s'])} / {_ratio(r.get('lm_bf16_s'), r['bf16_s'])}"]
        cells += [f"{r['n'] / r['bf16_s']:.2f}, {r['new_tokens'] / r['bf16_s']:.0f}",
                  f"{f32 / r['fp32_s']:.0%} / {f16 / r['bf16_s']:.0%}",
                  f"{r['same_fp32_vs_naive']}/{r['n']} / {r['same_bf16_vs_naive16']}/{r['n']}",
                  f"{r['same_bf16_vs_fp32']}/{r['n']}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += phase_lines
    if lm:
        same = [(r["model"], r["workload"], r.get("lm_fp32_same"), r.get("lm_bf16_same"), r["n"]) for r in rows]
        lines += ["", "lm-eval outputs equal to rai-multi's at the same dtype (stripped), fp32 / bf16: "
                  + ", ".join(f"{m} {w} {a}/{n} / {b}/{n}" for m, w, a, b, n in same) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
