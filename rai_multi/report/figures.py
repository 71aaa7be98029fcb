"""Seaborn figures, returned as base64 PNG so the report is one self-contained file."""

from __future__ import annotations

import base64
import io
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from rai_multi.languages import all_languages  # noqa: E402
from rai_multi.results.runs import Run  # noqa: E402

TIER_ORDER = {"high": 0, "low": 1, "en": 2}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _legend(ax) -> None:
    """Legend outside the axes (never over the bars)."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _unit_scale(ax, values: Sequence[float]) -> None:
    """Rates and accuracies on a fixed 0-1 axis, so all-zero or tiny values read as such."""
    finite = [v for v in values if v == v]
    if finite and min(finite) >= 0 and max(finite) <= 1:
        ax.set_ylim(0, 1.08)


def _lang_order(langs: Sequence[str]) -> list[str]:
    configs = all_languages()
    return sorted(langs, key=lambda c: (TIER_ORDER.get(configs[c].tier if c in configs else "", 9), c))


def language_bars(runs: Sequence[Run], metric: str, title: str) -> str | None:
    """Grouped bars by language (ordered high, low, en tier) with 95% CI whiskers."""
    models = [r.model for r in runs]
    langs = _lang_order(sorted({m["slice"][5:] for r in runs for m in r.metrics
                                if m["name"] == metric and m["slice"].startswith("lang=")}))
    if not langs:
        return None
    sns.set_theme(style="whitegrid")
    palette = sns.color_palette("colorblind", len(models))
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(langs) * max(1, len(models)) * 0.6 + 2), 3.4))
    width = 0.8 / len(models)
    x = np.arange(len(langs))
    configs = all_languages()
    all_values: list[float] = []
    for k, run in enumerate(runs):
        values, lo, hi = [], [], []
        for lang in langs:
            m = run.metric(metric, f"lang={lang}")
            v = m["value"] if m else np.nan
            ci = m["ci"] if m and m["ci"] else [v, v]
            values.append(v)
            lo.append(v - ci[0])
            hi.append(ci[1] - v)
        bars = ax.bar(x + (k - (len(models) - 1) / 2) * width, values, width, yerr=[lo, hi], capsize=2,
                      label=run.model, color=palette[k])
        ax.bar_label(bars, labels=["" if v != v else f"{v:.2f}" for v in values], fontsize=7, padding=2)
        all_values += [v for v in values] + [v + h for v, h in zip(values, hi)]
    _unit_scale(ax, all_values)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{c}\n{configs[c].tier if c in configs else ''}" for c in langs])
    ax.set_ylabel(metric)
    ax.set_title(title)
    _legend(ax)
    return _png(fig)


def tier_gap(groups: dict[tuple[str, str], dict[str, Run]], metrics: dict[str, str]) -> str | None:
    """High-tier minus low-tier value per model and task (how unevenly a model serves tiers)."""
    records = []
    for (task, setting), by_model in sorted(groups.items()):
        metric = metrics.get(task)
        if not metric:
            continue
        for model, run in sorted(by_model.items()):
            high, low = run.metric(metric, "tier=high"), run.metric(metric, "tier=low")
            if high and low:
                records.append((f"{task}/{setting}", model, high["value"] - low["value"]))
    if not records:
        return None
    sns.set_theme(style="whitegrid")
    tasks = sorted({r[0] for r in records})
    models = sorted({r[1] for r in records})
    palette = sns.color_palette("colorblind", len(models))
    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(tasks) + 2), 3))
    width = 0.8 / len(models)
    for k, model in enumerate(models):
        vals = [next((r[2] for r in records if r[0] == t and r[1] == model), np.nan) for t in tasks]
        bars = ax.bar(np.arange(len(tasks)) + (k - (len(models) - 1) / 2) * width, vals, width, label=model,
                      color=palette[k])
        ax.bar_label(bars, labels=["" if v != v else f"{v:+.2f}" for v in vals], fontsize=7, padding=2)
    ax.axhline(0, color="black", linewidth=0.8)
    lim = max([abs(r[2]) for r in records if r[2] == r[2]] + [0.0]) * 1.3 or 0.1
    ax.set_ylim(-lim, lim)  # symmetric around 0 (even), labels stay inside the axes
    ax.set_xticks(np.arange(len(tasks)))
    ax.set_xticklabels(tasks)
    ax.set_ylabel("high tier - low tier")
    ax.set_title("Tier gap: high-tier minus low-tier value (0 = even)")
    _legend(ax)
    return _png(fig)


def delta_heatmap(groups: dict[tuple[str, str], dict[str, Run]], metrics: dict[str, str], baseline: str,
                  candidate: str) -> str | None:
    """Language x task heatmap of candidate - baseline on each task's headline metric."""
    cells: dict[tuple[str, str], float] = {}
    for (task, setting), by_model in groups.items():
        metric = metrics.get(task)
        base, cand = by_model.get(baseline), by_model.get(candidate)
        if not metric or not base or not cand:
            continue
        for m in cand.metrics:
            if m["name"] == metric and m["slice"].startswith("lang="):
                b = base.metric(metric, m["slice"])
                if b:
                    cells[(m["slice"][5:], f"{task}/{setting}")] = m["value"] - b["value"]
    if not cells:
        return None
    langs = _lang_order(sorted({k[0] for k in cells}))
    tasks = sorted({k[1] for k in cells})
    grid = np.array([[cells.get((lang, t), np.nan) for t in tasks] for lang in langs])
    sns.set_theme(style="white")
    fig, ax = plt.subplots(figsize=(max(4, 1.5 * len(tasks) + 2), 0.4 * len(langs) + 1.5))
    limit = np.nanmax(np.abs(grid)) or 1.0
    sns.heatmap(grid, annot=True, fmt=".2f", cmap="RdBu", vmin=-limit, vmax=limit, center=0,
                xticklabels=tasks, yticklabels=langs, ax=ax, cbar_kws={"label": "delta (candidate - baseline)"})
    ax.set_title(f"{candidate} - {baseline}\nheadline metric by language (blank: not evaluated)", fontsize=10)
    return _png(fig)


def category_bars(runs: Sequence[Run], metric: str, prefix: str, reference: float | None, title: str) -> str | None:
    """Per-category values of a bias/toxicity metric with the unbiased reference marked."""
    cats = sorted({m["slice"].split("=", 1)[1] for r in runs for m in r.metrics
                   if m["name"] == metric and m["slice"].startswith(prefix + "=")})
    if not cats:
        return None
    sns.set_theme(style="whitegrid")
    palette = sns.color_palette("colorblind", len(runs))
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(cats) * len(runs) + 1.5))
    height = 0.8 / len(runs)
    for k, run in enumerate(runs):
        vals, err_lo, err_hi = [], [], []
        for c in cats:
            m = run.metric(metric, f"{prefix}={c}")
            v = m["value"] if m else np.nan
            ci = m["ci"] if m and m["ci"] else [v, v]
            vals.append(v)
            err_lo.append(v - ci[0])
            err_hi.append(ci[1] - v)
        ax.barh(np.arange(len(cats)) + (k - (len(runs) - 1) / 2) * height, vals, height, xerr=[err_lo, err_hi],
                capsize=2, label=run.model, color=palette[k])
    if reference is not None:
        ax.axvline(reference, color="black", linestyle="--", linewidth=1, label="unbiased")
    ax.set_yticks(np.arange(len(cats)))
    ax.set_yticklabels(cats)
    ax.set_xlabel(metric)
    ax.set_title(title)
    _legend(ax)
    return _png(fig)
