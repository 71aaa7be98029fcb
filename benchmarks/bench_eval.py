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

from rai_multi.models.hf import cut_at_stop
from rai_multi.models.loading import load_model
from rai_multi.models.tiny import build_tiny_model
from rai_multi.records import GenerationRequest
from rai_multi.tasks.mgsm import MgsmTask
from rai_multi.tasks.tydiqa import TydiqaTask

HERE = Path(__file__).resolve().parent


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 8) -> float:
    """Best GFLOP/s of an n x n matmul."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


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


def run_rai(model_dir: Path, reqs: list[GenerationRequest], batch: int, dtype: str) -> tuple[float, list[str]]:
    adapter = load_model(str(model_dir), batch_size=batch, dtype=dtype)
    t = time.perf_counter()
    outs = adapter.generate(reqs, [str(i) for i in range(len(reqs))])
    return time.perf_counter() - t, [o[0] for o in outs]


def run_naive(model_dir: Path, reqs: list[GenerationRequest]) -> tuple[float, list[str]]:
    """transformers generate, batch size 1, prompts in file order, stop strings applied afterwards."""
    adapter = load_model(str(model_dir), batch_size=1)
    model, tok = adapter.model, adapter.tokenizer
    outs = []
    t = time.perf_counter()
    with torch.inference_mode():
        for r in reqs:
            ids = tok(r.prompt, return_tensors="pt", truncation=True, max_length=adapter.max_context - (0 if adapter.is_seq2seq else r.max_new_tokens))
            gen = model.generate(**ids, max_new_tokens=r.max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
            start = 1 if adapter.is_seq2seq else ids["input_ids"].shape[1]
            outs.append(cut_at_stop(tok.decode(gen[0, start:], skip_special_tokens=True), r.stop))
    return time.perf_counter() - t, outs


def count_flops(model_dir: Path, reqs: list[GenerationRequest], batch: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    adapter = load_model(str(model_dir), batch_size=batch)
    with FlopCounterMode(display=False) as counter:
        adapter.generate(reqs, [str(i) for i in range(len(reqs))])
    return float(counter.get_total_flops())


def run_lm_eval(python: str, model_dir: Path, reqs: list[GenerationRequest], batch: int, workdir: Path) -> tuple[float | None, list[str] | None, str]:
    """The same prompts through lm-evaluation-harness's hf backend with a local task."""
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": r.prompt, "target": ""}) + "\n" for r in reqs))
    stops = json.dumps(list(reqs[0].stop))
    (workdir / "bench_task.yaml").write_text(
        f"task: rai_bench\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
        "output_type: generate_until\ndoc_to_text: \"{{prompt}}\"\ndoc_to_target: \"{{target}}\"\n"
        f"generation_kwargs:\n  until: {stops}\n  max_gen_toks: {reqs[0].max_new_tokens}\n  do_sample: false\n"
        "metric_list:\n  - metric: exact_match\n")
    out = workdir / "lm_eval_out"
    cmd = [python, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model_dir},dtype=float32",
           "--tasks", "rai_bench", "--include_path", str(workdir), "--batch_size", str(batch), "--device", "cpu",
           "--log_samples", "--output_path", str(out)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_DATASETS_OFFLINE": "1"})
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        return None, None, (proc.stderr or proc.stdout).strip().splitlines()[-1][:200]
    samples = sorted(out.rglob("samples_rai_bench*.jsonl"))
    outs = None
    if samples:
        rows = [json.loads(line) for line in samples[-1].read_text().splitlines()]
        rows.sort(key=lambda r: r["doc_id"])
        outs = [r["filtered_resps"][0] if isinstance(r["filtered_resps"][0], str) else r["filtered_resps"][0][0] for r in rows]
    return elapsed, outs, "ok (wall time includes its model load and process start)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lm-eval-python", default=os.environ.get("LM_EVAL_PYTHON", ""))
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    data_dir = Path(os.environ["RAI_MULTI_DATA"])
    reqs = workloads(data_dir, args.prompts, args.new_tokens)
    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    tmp = Path(tempfile.mkdtemp(prefix="rai_bench_"))
    lines = []
    rows = []
    try:
        for shape in ("flan-t5-small", "smollm2-135m"):
            model_dir = build_tiny_model(tmp / shape, shape, corpus=corpus(reqs) * 2, vocab_size=8000)
            for name, work in reqs.items():
                n_new = sum(r.max_new_tokens for r in work)
                t_naive, out_naive = run_naive(model_dir, work)
                t_fp32, out_fp32 = run_rai(model_dir, work, args.batch, "fp32")
                t_bf16, out_bf16 = run_rai(model_dir, work, args.batch, "bf16")
                flops = count_flops(model_dir, work, args.batch)
                same = sum(a == b for a, b in zip(out_fp32, out_naive))
                same_bf16 = sum(a == b for a, b in zip(out_bf16, out_fp32))
                row = {"model": shape, "workload": name, "n": len(work), "naive_s": t_naive, "fp32_s": t_fp32,
                       "bf16_s": t_bf16, "gflops": flops / 1e9, "same_fp32_vs_naive": same, "same_bf16_vs_fp32": same_bf16}
                if args.lm_eval_python:
                    t_lm, out_lm, status = run_lm_eval(args.lm_eval_python, model_dir, work, args.batch, tmp / f"lm_{shape}_{name}")
                    # its fixed cost (process start, imports, model load) from a one-prompt run
                    t_one, _, _ = run_lm_eval(args.lm_eval_python, model_dir, work[:1], args.batch, tmp / f"lm1_{shape}_{name}")
                    if t_lm is not None and t_one is not None and len(work) > 1:
                        row["lm_eval_fixed_s"] = t_one
                        t_lm = (t_lm - t_one) * len(work) / (len(work) - 1)
                    row.update(lm_eval_s=t_lm, lm_eval_status=status,
                               same_lm_eval=None if out_lm is None else sum(a.strip() == b.strip() for a, b in zip(out_lm, out_fp32)))
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cpu = subprocess.run(["bash", "-c", "lscpu | grep 'Model name' | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
    lines += [
        "# Evaluation speed (generated by benchmarks/bench_eval.py)", "",
        f"Machine: {cpu or platform.processor()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}.",
        f"Matmul peak measured here: {peak32:.0f} GFLOP/s fp32, {peak16:.0f} GFLOP/s bf16 (2048x2048, best of 8).",
        f"Command: `RAI_MULTI_DATA=... python benchmarks/bench_eval.py --prompts {args.prompts} --new-tokens {args.new_tokens} "
        f"--batch {args.batch}{' --lm-eval-python ' + args.lm_eval_python if args.lm_eval_python else ''}`",
        "", "Greedy, fixed max new tokens; random weights with the named shapes; same prompts for every path.",
        "naive = transformers generate at batch size 1 in file order; rai-multi = length-sorted batches with stop strings "
        "checked on new tokens. FLOP floor = FLOPs counted by torch's FlopCounterMode for the rai-multi run / measured "
        "matmul peak. lm-eval s = its wall time for n prompts minus its wall time for 1 prompt (process start, imports, "
        "model load), scaled by n/(n-1): an estimate of its work time for the n prompts.", "",
        "| model shape | workload | n | naive s | rai-multi fp32 s | speed-up | rai-multi bf16 s | bf16 speed-up | "
        "floor fp32 (fraction) | floor bf16 (fraction) | fp32 = naive outputs | bf16 = fp32 outputs | lm-eval s | vs lm-eval |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        floor32 = r["gflops"] / peak32
        floor16 = r["gflops"] / peak16
        lm = r.get("lm_eval_s")
        lines.append(
            f"| {r['model']} | {r['workload']} | {r['n']} | {r['naive_s']:.1f} | {r['fp32_s']:.1f} | "
            f"{r['naive_s'] / r['fp32_s']:.2f}x | {r['bf16_s']:.1f} | {r['naive_s'] / r['bf16_s']:.2f}x | "
            f"{floor32:.1f} s ({floor32 / r['fp32_s']:.0%}) | {floor16:.1f} s ({floor16 / r['bf16_s']:.0%}) | "
            f"{r['same_fp32_vs_naive']}/{r['n']} | {r['same_bf16_vs_fp32']}/{r['n']} | "
            f"{'%.1f' % lm if lm else r.get('lm_eval_status', 'not run')} | {('%.2fx' % (lm / r['fp32_s'])) if lm else '-'} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
