"""Baseline-vs-candidate comparisons: deltas with paired bootstrap CIs and p-values.

Pairing is per item on shared sample ids. For language slices that are macro-averages
(``all``, ``all_excl_en``, ``tier=``, ``joshi=``) the paired differences are resampled
within each language and averaged over languages, matching how the metric itself is
averaged, and the p-value is the stratified paired bootstrap test of that same macro
delta (``stats.stratified_paired_bootstrap_p``): McNemar on pooled items would test a
micro-average the interval does not show. Other slices: McNemar (exact) for 0/1
outcomes, the paired bootstrap test otherwise.

Every p-value of a report is one family: Holm's adjustment runs over all of them (every
metric, slice and candidate with a test), and ``significant`` is read from the adjusted
p; both the raw and the adjusted p are shown. ``mde`` is the minimum detectable effect
at 80% power (``stats.minimum_detectable_effect``, from the baseline's items).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from rai_multi.aggregate import slice_seed
from rai_multi.languages import all_languages
from rai_multi.results.runs import Run, comparability_issues, group_runs, headline_of, metric_info
from rai_multi.stats import (
    CONFIDENCE, N_BOOTSTRAP, _percentiles, bootstrap_statistic_ci, holm, mcnemar, minimum_detectable_effect,
    paired_bootstrap_delta_ci, stratified_paired_bootstrap_p,
)

ALPHA = 0.05
CORRECTION = "Holm over every tested cell of the report"

MACRO_SLICES = ("all", "all_excl_en")


@dataclass
class Delta:
    task: str
    setting: str
    metric: str
    slice: str
    baseline: str
    candidate: str
    baseline_value: float | None
    candidate_value: float | None
    delta: float | None
    delta_ci: list[float] | None = None
    p_value: float | None = None
    p_adjusted: float | None = None  # Holm, see the module docstring
    mde: float | None = None  # minimum detectable effect at 80% power, two-sided alpha .05
    test: str = "none"
    significant: bool | None = None
    n_paired: int = 0
    better: bool | None = None
    issues: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def rows_in_slice(rows: Sequence[dict[str, Any]], slice_name: str) -> list[dict[str, Any]]:
    """Per-sample rows behind a slice name (``lang=bn``, ``tier=low``, ``category=Age``...)."""
    if slice_name in ("all", "pooled"):
        return list(rows)
    if slice_name == "all_excl_en":
        return [r for r in rows if r.get("lang") != "en"]
    key, _, value = slice_name.partition("=")
    if key == "joshi":
        langs = all_languages()
        return [r for r in rows if r.get("lang") in langs and str(langs[r["lang"]].joshi_class) == value]
    return [r for r in rows if str(r.get(key)) == value]


def _is_macro(run: Run, metric: str, slice_name: str) -> bool:
    has_langs = any(m["name"] == metric and m["slice"].startswith("lang=") for m in run.metrics)
    return has_langs and (slice_name in MACRO_SLICES or slice_name.split("=")[0] in ("tier", "joshi"))


def paired_macro_delta_ci(
    groups: dict[str, tuple[np.ndarray, np.ndarray]], seed: int, n_boot: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
) -> tuple[float, tuple[float, float] | None]:
    """Macro-averaged paired delta: the mean over languages of each language's mean
    (candidate - baseline), with a stratified percentile bootstrap CI (pairs resampled
    within each language, language means averaged), matching how the metric is averaged."""
    diffs = [np.asarray(c, float) - np.asarray(b, float) for b, c in groups.values() if len(b)]
    if not diffs:
        return float("nan"), None
    rng = np.random.default_rng(seed)
    point = float(np.mean([d.mean() for d in diffs]))
    boots = np.mean([d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1) for d in diffs], axis=0)
    return point, _percentiles(boots, confidence)


def paired_delta(
    base: Run, cand: Run, field_name: str, slice_name: str, metric: str, seed: int,
    only: tuple[str, str] | None = None,
    statistic: str = "mean",
) -> dict[str, Any] | None:
    """Paired delta (candidate - baseline) on ``field_name`` over shared ids in a slice.

    ``statistic="auc"``: the delta of ROC AUCs of the field against each row's ``label``,
    with items resampled jointly for both models (no McNemar)."""
    def values(run: Run) -> dict[str, tuple[str, float, Any]]:
        rows = rows_in_slice(run.samples(), slice_name)
        if only:
            rows = [r for r in rows if str(r.get(only[0])) == only[1]]
        return {r["id"]: (r.get("lang", ""), float(r[field_name]), r.get("label")) for r in rows
                if r.get(field_name) is not None}

    a, b = values(base), values(cand)
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    base_arr = np.array([a[i][1] for i in shared])
    cand_arr = np.array([b[i][1] for i in shared])
    pair_seed = slice_seed(seed, f"paired|{metric}", slice_name)
    if statistic == "auc":
        from rai_multi.scoring.classification import auc

        labels = np.array([a[i][2] for i in shared])

        def auc_delta(idx: np.ndarray) -> float:
            return auc(labels[idx], cand_arr[idx]) - auc(labels[idx], base_arr[idx])

        ci = bootstrap_statistic_ci(len(shared), auc_delta, pair_seed)
        return {"delta": auc_delta(np.arange(len(shared))), "ci": list(ci) if ci else None, "n": len(shared)}
    macro = _is_macro(cand, metric, slice_name)
    by_lang: dict[str, list[int]] = defaultdict(list)
    for k, sid in enumerate(shared):
        by_lang[a[sid][0] if macro else ""].append(k)
    if macro:
        point, ci = paired_macro_delta_ci({lang: (base_arr[idx], cand_arr[idx]) for lang, idx in by_lang.items()},
                                          pair_seed)
    else:
        point, ci = paired_bootstrap_delta_ci(base_arr, cand_arr, pair_seed)
    result: dict[str, Any] = {"delta": point, "ci": list(ci) if ci else None, "n": len(shared)}
    result["mde"] = minimum_detectable_effect({lang: base_arr[idx] for lang, idx in by_lang.items()})
    levels = set(np.unique(np.concatenate([base_arr, cand_arr])).tolist())
    binary = levels <= {0.0, 1.0} or levels <= {0.0, 100.0}  # 0/1 outcomes (CrowS-Pairs scores them 0/100)
    if binary and not macro:
        result["mcnemar"] = mcnemar((base_arr > 0).astype(int), (cand_arr > 0).astype(int))
    else:
        diffs = {lang: cand_arr[idx] - base_arr[idx] for lang, idx in by_lang.items()}
        result["bootstrap_p"] = stratified_paired_bootstrap_p(diffs, slice_seed(seed, f"p|{metric}", slice_name))
        result["bootstrap_p_strata"] = len(diffs) if macro else 1
    return result


def compare_metric(base: Run, cand: Run, metric: str, slice_name: str, seed: int, issues: list[str]) -> Delta:
    """One metric and slice, candidate against baseline. Runs with comparability issues get
    their values side by side and nothing else: no delta, no better/worse, no test."""
    bm, cm = base.metric(metric, slice_name), cand.metric(metric, slice_name)
    bv = bm["value"] if bm else None
    cv = cm["value"] if cm else None
    if issues:
        return Delta(base.task, base.setting, metric, slice_name, base.model, cand.model, bv, cv, None,
                     test="not compared", issues=list(issues))
    delta = None if bv is None or cv is None else cv - bv
    result = Delta(base.task, base.setting, metric, slice_name, base.model, cand.model, bv, cv, delta, issues=list(issues))
    if delta is not None:
        result.better = metric_info(base.task, bm or metric).better(bv, cv)
    headline = headline_of(base.task)
    if headline and headline.metric == metric and headline.pairs(slice_name) and not issues:
        paired = paired_delta(base, cand, headline.field, slice_name, metric, seed, headline.only, headline.statistic)
        if paired and paired["ci"]:
            result.delta_ci = paired["ci"]
            result.n_paired = paired["n"]
            result.mde = paired.get("mde")
            if "mcnemar" in paired:
                result.p_value = paired["mcnemar"]["p_value"]
                result.test = "McNemar (exact) + paired bootstrap CI"
            elif paired.get("bootstrap_p") is not None:
                result.p_value = paired["bootstrap_p"]
                strata = paired["bootstrap_p_strata"]
                result.test = (f"stratified paired bootstrap ({strata} languages, macro) p + CI" if strata > 1
                               else "paired bootstrap p + CI")
            else:
                result.test = "paired bootstrap CI"
                result.significant = not (paired["ci"][0] <= 0 <= paired["ci"][1])
            if result.p_value is not None:
                result.significant = result.p_value < ALPHA  # until Holm adjusts it (compare_runs)
    elif bm and cm and bm.get("ci") and cm.get("ci"):
        result.test = "CIs only (no per-item pairing)"
        result.significant = cm["ci"][0] > bm["ci"][1] or cm["ci"][1] < bm["ci"][0]
    return result


def summary_slices(run: Run, metric: str) -> list[str]:
    slices = [m["slice"] for m in run.metrics if m["name"] == metric]
    chosen = [s for s in ("all_excl_en", "tier=high", "tier=low", "tier=en") if s in slices]
    if not chosen and "all" in slices:
        chosen = ["all"]
    if "all_excl_en" in chosen and "all" in slices and "tier=en" not in chosen:
        chosen.insert(0, "all")
    return chosen


@dataclass
class Comparison:
    baseline: str
    candidates: list[str]
    summary: list[Delta]
    details: list[Delta]
    flags: list[str]
    groups: dict[tuple[str, str], dict[str, Run]]


def compare_runs(runs: Sequence[Run], baseline: str, seed: int = 1234) -> Comparison:
    """Summary deltas (headline metric per task) and full per-metric/slice deltas."""
    groups = group_runs(runs)
    models = sorted({r.model for r in runs})
    if baseline not in models:
        from rai_multi.errors import RaiMultiError

        raise RaiMultiError(f"baseline {baseline!r} is not among the runs' models: {', '.join(models)}")
    candidates = [m for m in models if m != baseline]
    summary, details, flags = [], [], []
    for key in sorted(groups):
        by_model = groups[key]
        base = by_model.get(baseline)
        if base is None:
            flags.append(f"{key[0]}/{key[1]}: no run of the baseline {baseline!r}; not compared")
            continue
        for cand_name in candidates:
            cand = by_model.get(cand_name)
            if cand is None:
                flags.append(f"{key[0]}/{key[1]}: no run of {cand_name!r}")
                continue
            issues = comparability_issues(base, cand)
            for issue in issues:
                flags.append(f"{key[0]}/{key[1]} {baseline} vs {cand_name}: {issue}")
            headline = headline_of(base.task)
            metric_names = list(dict.fromkeys(m["name"] for m in base.metrics))
            if headline and headline.metric in metric_names:
                for slice_name in summary_slices(base, headline.metric):
                    summary.append(compare_metric(base, cand, headline.metric, slice_name, seed, issues))
            for m in base.metrics:
                details.append(compare_metric(base, cand, m["name"], m["slice"], seed, issues))
    adjust_family(summary, details)
    return Comparison(baseline, candidates, summary, details, flags, groups)


def _cell(d: Delta) -> tuple[str, str, str, str, str]:
    return (d.task, d.setting, d.metric, d.slice, d.candidate)


def adjust_family(summary: Sequence[Delta], details: Sequence[Delta]) -> None:
    """Holm-adjust every p-value of the report as one family (each cell once: summary rows
    repeat detail cells) and read ``significant`` from the adjusted p."""
    cells: dict[tuple[str, str, str, str, str], float] = {}
    for d in list(details) + list(summary):
        if d.p_value is not None:
            cells.setdefault(_cell(d), d.p_value)
    keys = list(cells)
    adjusted = dict(zip(keys, holm([cells[k] for k in keys])))
    for d in list(details) + list(summary):
        if d.p_value is not None:
            d.p_adjusted = adjusted[_cell(d)]
            d.significant = d.p_adjusted < ALPHA
