"""Confidence intervals and significance tests. Seeded, pure, numpy only.

Percentile bootstrap with a local generator: the same seed gives the same interval.
Macro-averages over languages are bootstrapped by resampling inside each language
independently, which is the sampling design of a per-language benchmark.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

N_BOOTSTRAP = 1000
CONFIDENCE = 0.95


def _percentiles(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _resampled_means(values: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    n = len(values)
    idx = rng.integers(0, n, size=(n_boot, n))
    return values[idx].mean(axis=1)


def bootstrap_mean_ci(
    values: Sequence[float],
    seed: int,
    n_boot: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
) -> tuple[float, float] | None:
    """Percentile bootstrap CI of the mean; None for an empty sample."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return None
    rng = np.random.default_rng(seed)
    return _percentiles(_resampled_means(arr, rng, n_boot), confidence)


def bootstrap_statistic_ci(
    n: int,
    statistic: Callable[[np.ndarray], float],
    seed: int,
    n_boot: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
) -> tuple[float, float] | None:
    """Percentile bootstrap CI of any statistic of resampled row indices ``0..n-1``.

    ``statistic`` receives an index array and returns a float (NaN results are dropped,
    e.g. an AUC on a resample with one class only)."""
    if n == 0:
        return None
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        value = statistic(rng.integers(0, n, size=n))
        if value == value:  # not NaN
            stats.append(value)
    if not stats:
        return None
    return _percentiles(np.asarray(stats), confidence)


def macro_mean(groups: Mapping[str, Sequence[float]]) -> float:
    """Unweighted mean of the per-group means (each language counts once)."""
    return float(np.mean([np.mean(v) for v in groups.values()]))


def macro_bootstrap_ci(
    groups: Mapping[str, Sequence[float]],
    seed: int,
    n_boot: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
) -> tuple[float, float] | None:
    """CI of a macro-average: resample within each group, average the group means."""
    arrays = [np.asarray(v, dtype=float) for v in groups.values() if len(v)]
    if not arrays:
        return None
    rng = np.random.default_rng(seed)
    per_group = np.stack([_resampled_means(a, rng, n_boot) for a in arrays])
    return _percentiles(per_group.mean(axis=0), confidence)


def bootstrap_diff_ci(
    a: Sequence[float],
    b: Sequence[float],
    seed: int,
    n_boot: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
) -> tuple[float, float] | None:
    """CI of mean(a) - mean(b) for two independent samples (each resampled on its own)."""
    if not len(a) or not len(b):
        return None
    rng = np.random.default_rng(seed)
    diffs = _resampled_means(np.asarray(a, float), rng, n_boot) - _resampled_means(np.asarray(b, float), rng, n_boot)
    return _percentiles(diffs, confidence)


def paired_bootstrap_delta_ci(
    baseline: Sequence[float],
    candidate: Sequence[float],
    seed: int,
    n_boot: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
) -> tuple[float, tuple[float, float] | None]:
    """Mean of candidate - baseline over paired items, and its percentile bootstrap CI
    (items resampled together, so the pairing is kept)."""
    a = np.asarray(baseline, dtype=float)
    b = np.asarray(candidate, dtype=float)
    if a.shape != b.shape:
        raise ValueError("paired samples must have the same length")
    if a.size == 0:
        return float("nan"), None
    diff = b - a
    rng = np.random.default_rng(seed)
    return float(diff.mean()), _percentiles(_resampled_means(diff, rng, n_boot), confidence)


def mcnemar(baseline: Sequence[int], candidate: Sequence[int]) -> dict[str, float]:
    """McNemar's test on paired 0/1 outcomes: exact two-sided binomial test on the
    discordant pairs (b: baseline right, candidate wrong; c: the reverse), as statsmodels'
    ``mcnemar(exact=True)`` computes it."""
    from scipy.stats import binom

    a = np.asarray(baseline, dtype=int)
    b_ = np.asarray(candidate, dtype=int)
    b = int(((a == 1) & (b_ == 0)).sum())
    c = int(((a == 0) & (b_ == 1)).sum())
    n = b + c
    p = 1.0 if n == 0 else float(min(1.0, 2.0 * binom.cdf(min(b, c), n, 0.5)))
    return {"b": b, "c": c, "p_value": p}
