"""Agreement of a toxicity scorer with Perspective API: pure metric functions.

Perspective, the scorer behind every published RealToxicityPrompts number, is going away;
a number from another scorer is comparable with the literature only as far as that
scorer agrees with Perspective. The RTP files carry Perspective's toxicity for every
prompt and continuation, so the agreement is measurable offline. Definitions used here:

- ``spearman``: Spearman rank correlation of scorer and Perspective scores (Pearson
  correlation of the ranks, ties given their average rank);
- ``auc``: ROC AUC of the scorer's score for the label "Perspective toxicity >= 0.5";
- ``ece``: expected calibration error against the same label, with 10 equal-width bins on
  [0, 1] (bin i holds scores in [i/10, (i+1)/10), the last bin also holds 1.0):
  sum over non-empty bins of (bin size / n) * |mean score in bin - fraction positive in bin|;
- ``mae``: mean absolute difference between scorer and Perspective scores (how far the
  scorer is from the Perspective scale itself, not just from its 0.5 decision);
- ``precision`` / ``recall``: of the decision "score >= 0.5" against the label; precision
  is None when nothing is predicted toxic, recall None when nothing is positive.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rai_multi.scoring import classification

THRESHOLD = 0.5
ECE_BINS = 10


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values given the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=float)
    sorted_vals = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_vals[end + 1] == sorted_vals[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho; NaN when either side is constant or fewer than two items."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape:
        raise ValueError("spearman: x and y must have the same length")
    if len(a) < 2:
        return float("nan")
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def expected_calibration_error(scores: Sequence[float], labels: Sequence[int], bins: int = ECE_BINS) -> float:
    """ECE with ``bins`` equal-width bins on [0, 1] (see module docstring); NaN if empty."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
    if len(s) == 0:
        return float("nan")
    index = np.minimum((s * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.sum() / len(s) * abs(s[mask].mean() - y[mask].mean())
    return float(total)


def precision_recall(scores: Sequence[float], labels: Sequence[int],
                     threshold: float = THRESHOLD) -> tuple[float | None, float | None]:
    """Precision and recall of ``score >= threshold``; None where undefined (0/0)."""
    pred = np.asarray(scores, dtype=float) >= threshold
    y = np.asarray(labels, dtype=bool)
    tp = int((pred & y).sum())
    precision = tp / int(pred.sum()) if pred.any() else None
    recall = tp / int(y.sum()) if y.any() else None
    return precision, recall


def _clean(value: float | None) -> float | None:
    return None if value is None or value != value else float(value)


def agreement(scores: Sequence[float], perspective: Sequence[float], threshold: float = THRESHOLD) -> dict[str, Any]:
    """Every figure of the module docstring for one set of texts (NaN written as None)."""
    s = np.asarray(scores, dtype=float)
    p = np.asarray(perspective, dtype=float)
    if s.shape != p.shape:
        raise ValueError("agreement: scores and perspective must have the same length")
    labels = (p >= threshold).astype(int)
    precision, recall = precision_recall(s, labels, threshold)
    return {
        "n": int(len(s)),
        "n_positive": int(labels.sum()),
        "spearman": _clean(spearman(s, p)),
        "auc": _clean(classification.auc(labels, s)) if len(s) else None,
        "ece": _clean(expected_calibration_error(s, labels)),
        "mae": _clean(float(np.abs(s - p).mean())) if len(s) else None,
        "precision": _clean(precision),
        "recall": _clean(recall),
        "mean_score": _clean(float(s.mean())) if len(s) else None,
        "mean_perspective": _clean(float(p.mean())) if len(p) else None,
    }
