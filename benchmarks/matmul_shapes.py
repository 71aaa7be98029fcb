"""Matmul throughput at the shapes the benchmark models run, against the 2048x2048 peak
that bench_eval.py divides by: shows how much of the FLOP floor a workload can reach
when its time goes to decode-step (few-row) or prefill (many-row) matmuls.

    python benchmarks/matmul_shapes.py
"""

from __future__ import annotations

import time

import torch

# (rows, in, out): SmolLM2-135M shape (hidden 576, MLP 1536, vocab 49152) and flan-t5-small
# (d_model 512, d_ff 1024, vocab 32128); 16 rows = a decode step at batch 16.
SHAPES = {
    "square 2048 (the peak)": (2048, 2048, 2048),
    "SmolLM2 decode MLP (16 rows)": (16, 576, 1536),
    "SmolLM2 decode lm head (16 rows)": (16, 576, 49152),
    "SmolLM2 prefill MLP (3808 rows)": (3808, 576, 1536),
    "SmolLM2 prefill MLP (1614 rows)": (1614, 576, 1536),
    "T5 decode MLP (16 rows)": (16, 512, 1024),
    "T5 encoder MLP (1832 rows)": (1832, 512, 1024),
}


def linear_gflops(rows: int, k: int, n: int, dtype: torch.dtype, repeats: int = 10) -> float:
    """Best-of-``repeats`` GFLOP/s of ``linear`` (what nn.Linear runs)."""
    x, w = torch.randn(rows, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
    torch.nn.functional.linear(x, w)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.nn.functional.linear(x, w)
        best = min(best, time.perf_counter() - t)
    return 2 * rows * k * n / best / 1e9


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| shape | rows x in x out | fp32 GFLOP/s | bf16 GFLOP/s |")
    print("|---|---|---|---|")
    for name, (m, k, n) in SHAPES.items():
        print(f"| {name} | {m} x {k} x {n} | {linear_gflops(m, k, n, torch.float32):.0f} | {linear_gflops(m, k, n, torch.bfloat16):.0f} |")


if __name__ == "__main__":
    main()
