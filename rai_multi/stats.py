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


def stratified_paired_bootstrap_p(
    groups: Mapping[str, Sequence[float]],
    seed: int,
    n_boot: int = N_BOOTSTRAP,
) -> float | None:
    """Two-sided p-value that a macro-averaged paired difference is zero.

    ``groups``: per stratum (language), the per-item differences candidate - baseline.
    The statistic is the macro mean T (mean over strata of each stratum's mean), the
    quantity the macro slice's value and CI show. Pairs are resampled within each stratum
    (the benchmark's sampling design) and the bootstrap distribution is shifted to the
    null (T* - T), as in the paired bootstrap test of Efron & Tibshirani (1993, 16.4):
    p = (1 + #{|T* - T| >= |T|}) / (1 + B). None when there are no pairs."""
    arrays = [np.asarray(v, dtype=float) for v in groups.values() if len(v)]
    if not arrays:
        return None
    observed = float(np.mean([a.mean() for a in arrays]))
    if all(not a.any() for a in arrays):
        return 1.0  # every difference is zero: no evidence of any change
    rng = np.random.default_rng(seed)
    boots = np.stack([_resampled_means(a, rng, n_boot) for a in arrays]).mean(axis=0)
    extreme = int((np.abs(boots - observed) >= abs(observed) - 1e-12).sum())
    return (1.0 + extreme) / (1.0 + n_boot)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (family-wise error control), in input order;
    None entries are left out of the family and stay None. With m p-values sorted
    ascending p_(1) <= ... <= p_(m): adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))."""
    present = [(p, i) for i, p in enumerate(p_values) if p is not None]
    m = len(present)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


Z_975 = 1.959963984540054   # two-sided alpha 0.05
Z_80 = 0.8416212335729143   # power 0.80


def minimum_detectable_effect(groups: Mapping[str, Sequence[float]], z_alpha: float = Z_975,
                              z_power: float = Z_80) -> float | None:
    """Smallest true difference a comparison of two independent runs of this size would
    detect with 80% power at two-sided alpha 0.05 (normal approximation):

        MDE = (z_.975 + z_.80) * sqrt( (1 / L^2) * sum_l 2 var_l / n_l )

    over the L strata (languages) of a macro-average; for one stratum and a 0/1 metric,
    var = p(1 - p) at the observed rate p, so MDE = 2.8016 * sqrt(2 p (1 - p) / n).
    Paired tests of the same items usually detect less (the unpaired figure is an upper
    bound when the two models' outcomes correlate positively). None without data."""
    arrays = [np.asarray(v, dtype=float) for v in groups.values() if len(v)]
    if not arrays:
        return None
    variance = sum(2.0 * float(a.var()) / len(a) for a in arrays) / len(arrays) ** 2
    return float((z_alpha + z_power) * np.sqrt(variance))


def paired_bootstrap_diff_ci(
    a: Sequence[float],
    b: Sequence[float],
    seed: int,
    n_boot: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
) -> tuple[float, float] | None:
    """CI of mean(a) - mean(b) where a[i] and b[i] are the two halves of one minimal pair
    (pairs resampled together)."""
    return paired_bootstrap_delta_ci(b, a, seed, n_boot, confidence)[1]  # a - b over the pairs
