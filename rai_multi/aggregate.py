"""Per-sample rows -> metrics sliced by language, tier and any grouping, with 95% CIs.

Conventions (the papers'): language averages are macro-averages (each language counts
once), and the paper average excludes English; both are emitted under explicit slice
names: ``all`` (macro over every evaluated language) and ``all_excl_en``. The
micro-average over items of a multilingual run is ``pooled``, never ``all``. Tasks with a
single language (the English bias and toxicity sets) have ``all`` over their items, which
is the same number as the macro over their one language.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from rai_multi.languages import all_languages
from rai_multi.records import Metric
from rai_multi.stats import bootstrap_mean_ci, macro_bootstrap_ci, macro_mean

ValueFn = Callable[[dict[str, Any]], float | None]


def slice_seed(seed: int, name: str, slice_name: str) -> int:
    """A per-(metric, slice) seed derived from the run seed, stable across runs."""
    return (seed + zlib.crc32(f"{name}|{slice_name}".encode())) % (2**31)


def _values(rows: Iterable[dict[str, Any]], value: ValueFn) -> list[float]:
    return [float(v) for v in (value(r) for r in rows) if v is not None]


def mean_metric(name: str, slice_name: str, values: Sequence[float], seed: int) -> Metric | None:
    """Mean with a bootstrap CI, or None when there is nothing to average."""
    if not values:
        return None
    return Metric(
        name=name,
        slice=slice_name,
        value=float(np.mean(values)),
        ci=bootstrap_mean_ci(values, slice_seed(seed, name, slice_name)),
        n=len(values),
    )


def macro_metric(name: str, slice_name: str, groups: dict[str, list[float]], seed: int) -> Metric | None:
    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        return None
    return Metric(
        name=name,
        slice=slice_name,
        value=macro_mean(groups),
        ci=macro_bootstrap_ci(groups, slice_seed(seed, name, slice_name)),
        n=sum(len(v) for v in groups.values()),
    )


def by_language(name: str, rows: Sequence[dict[str, Any]], value: ValueFn, seed: int) -> list[Metric]:
    """``lang=xx`` per language, ``tier=...`` and ``joshi=N`` macro-averages, ``all`` and
    ``all_excl_en`` macro-averages, and ``pooled``, the micro-average over every item (when
    there is more than one language). Rows whose value is None are left out."""
    per_lang: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        v = value(row)
        if v is not None:
            per_lang[row["lang"]].append(float(v))
    metrics: list[Metric] = []
    for lang in sorted(per_lang):
        m = mean_metric(name, f"lang={lang}", per_lang[lang], seed)
        if m:
            metrics.append(m)
    configs = all_languages()
    tiers: dict[str, dict[str, list[float]]] = defaultdict(dict)
    joshi: dict[int, dict[str, list[float]]] = defaultdict(dict)
    for lang, vals in per_lang.items():
        if lang in configs:
            tiers[configs[lang].tier][lang] = vals
            joshi[configs[lang].joshi_class][lang] = vals
    for tier in ("high", "low", "en"):
        if tier in tiers:
            m = macro_metric(name, f"tier={tier}", tiers[tier], seed)
            if m:
                metrics.append(m)
    for cls in sorted(joshi):
        m = macro_metric(name, f"joshi={cls}", joshi[cls], seed)
        if m:
            metrics.append(m)
    overall = macro_metric(name, "all", dict(per_lang), seed)
    if overall:
        metrics.append(overall)
    non_en = {k: v for k, v in per_lang.items() if k != "en"}
    excl = macro_metric(name, "all_excl_en", non_en, seed)
    if excl:
        metrics.append(excl)
    if len(per_lang) > 1:  # the micro-average, under its own name (with one language it is ``all``)
        pooled = mean_metric(name, "pooled", [v for vals in per_lang.values() for v in vals], seed)
        if pooled:
            metrics.append(pooled)
    return metrics


def by_group(
    name: str,
    rows: Sequence[dict[str, Any]],
    value: ValueFn,
    group: Callable[[dict[str, Any]], str | None],
    prefix: str,
    seed: int,
    overall: bool = True,
) -> list[Metric]:
    """Micro-averaged ``all`` (when ``overall``) plus one ``<prefix>=<group>`` slice per group."""
    metrics: list[Metric] = []
    if overall:
        m = mean_metric(name, "all", _values(rows, value), seed)
        if m:
            metrics.append(m)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        g = group(row)
        if g is not None:
            groups[g].append(row)
    for g in sorted(groups):
        m = mean_metric(name, f"{prefix}={g}", _values(groups[g], value), seed)
        if m:
            metrics.append(m)
    return metrics
