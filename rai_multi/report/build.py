"""Build the audit report: one self-contained HTML file, plus the same tables as JSON and
Markdown beside it (for CI summaries).

Every string that comes from a model or a data file is escaped by the template engine
(autoescape on); figures are embedded PNGs; nothing is fetched when the file is opened.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape as html_escape
from pathlib import Path
from typing import Any, Sequence

from jinja2 import Environment, PackageLoader, select_autoescape

from rai_multi import __version__
from rai_multi.report import figures
from rai_multi.report.items import explorer_data, script_json
from rai_multi.results.compare import Comparison, Delta, compare_runs
from rai_multi.results.runs import Run, headline_of, load_runs
from rai_multi.report.scorer_section import run_notes, scorer_section
from rai_multi.store import atomic_write_json, atomic_write_text
from rai_multi.tasks.table import SPECS, spec_for

def _section(task: str) -> str:
    spec = spec_for(task)
    return spec.section if spec else "rai"


def _headlines() -> dict[str, str]:
    return {spec.name: spec.headline.metric for spec in SPECS}


@dataclass
class ReportPaths:
    html: Path
    json: Path
    markdown: Path


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ci(ci: Any) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def _diagnostics(runs: Sequence[Run]) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        for m in run.metrics:
            spec = spec_for(run.task)
            if spec and m["name"] in spec.diagnostics and (
                m["slice"].startswith("lang=") or m["slice"] == "all"
            ):
                rows.append({"task": f"{run.task}/{run.setting}", "model": run.model, "metric": m["name"],
                             "slice": m["slice"], "value": m["value"], "n": m["n"]})
    return rows


SAMPLE_NOTE = ("SAMPLE DATA: {what} ran on the small sample files rai-multi writes itself (a few invented items per "
               "task in the upstream formats), not on the benchmarks. These numbers are NOT benchmark scores.")


def sample_data_runs(runs: Sequence[Run]) -> list[Run]:
    """Runs whose data files come from rai-multi's sample data (a folder holding its marker)."""
    from rai_multi.samples import MARKER

    found = []
    for run in runs:
        for name in run.manifest.get("data_files", {}):
            path = Path(name)
            if "sample-data" in path.parts or any((parent / MARKER).is_file() for parent in list(path.parents)[:3]):
                found.append(run)
                break
    return found


def _provenance(runs: Sequence[Run]) -> list[dict[str, Any]]:
    out = []
    for run in runs:
        man = run.manifest
        out.append({
            "task": f"{run.task}/{run.setting}", "model": run.model, "task_version": man.get("task_version"),
            "fingerprint": man["model"].get("fingerprint"), "source": man["model"].get("source", ""),
            "seed": man.get("seed"), "git": man.get("git_commit"), "finished": man.get("finished"),
            "scorer": run.scorer or "", "data": "; ".join(f"{Path(p).name}:{h[:12]}" for p, h in man.get("data_files", {}).items()),
            "packages": ", ".join(f"{k} {v}" for k, v in man.get("packages", {}).items()),
            "config": json.dumps(man.get("config", {}), ensure_ascii=False)[:600],
        })
    return out


def _figures(comparison: Comparison) -> list[dict[str, str]]:
    figs = []
    headline = _headlines()
    for (task, setting), by_model in sorted(comparison.groups.items()):
        if _section(task) == "multilingual" and task in headline:
            png = figures.language_bars(list(by_model.values()), headline[task], f"{task}/{setting}: {headline[task]} by language")
            if png:
                figs.append({"title": f"{task}/{setting} by language", "png": png})
    gap = figures.tier_gap(comparison.groups, headline)
    if gap:
        figs.append({"title": "Tier gap", "png": gap})
    for cand in comparison.candidates:
        heat = figures.delta_heatmap(comparison.groups, headline, comparison.baseline, cand)
        if heat:
            figs.append({"title": f"Deltas by language: {cand}", "png": heat})
    return figs


def _rai_figures(comparison: Comparison) -> list[dict[str, str]]:
    figs = []
    for (task, setting), by_model in sorted(comparison.groups.items()):
        spec = spec_for(task)
        for hint in spec.figures if spec else ():
            metric, prefix, title = hint.metric, hint.prefix, hint.title
            png = figures.category_bars(list(by_model.values()), metric, prefix, spec.metric_info(metric).reference,
                                        title)
            if png:
                figs.append({"title": f"{title} [{setting}]", "png": png})
    return figs


def _detail_tables(comparison: Comparison, runs: Sequence[Run]) -> list[dict[str, Any]]:
    tables = []
    for (task, setting), by_model in sorted(comparison.groups.items()):
        models = sorted(by_model, key=lambda m: (m != comparison.baseline, m))
        candidates = [m for m in models if m != comparison.baseline] if comparison.baseline in by_model else []
        metric_slices = list(dict.fromkeys((m["name"], m["slice"]) for r in by_model.values() for m in r.metrics))
        rows = []
        for name, slice_name in metric_slices:
            if slice_name.startswith("joshi="):
                continue
            cells, raw = [], {}
            for model in models:
                m = by_model[model].metric(name, slice_name)
                cells.append({"value": _fmt(m["value"]) if m else "–", "ci": _ci(m["ci"]) if m else "", "n": m["n"] if m else ""})
                raw[model] = {"value": m["value"], "ci": m["ci"], "n": m["n"]} if m else None
            found = {d.candidate: d for d in comparison.details if d.task == task and d.setting == setting
                     and d.metric == name and d.slice == slice_name}
            # one delta cell per candidate, in header order, even where a run lacks the metric
            deltas = [{"candidate": c, "delta": _fmt(found[c].delta) if c in found else "–",
                       "ci": _ci(found[c].delta_ci) if c in found else ""} for c in candidates]
            rows.append({"metric": name, "slice": slice_name, "cells": cells, "deltas": deltas, "raw": raw,
                         "raw_deltas": {c: found[c].delta for c in candidates if c in found}})
        scorer = next((r.scorer for r in by_model.values() if r.scorer), None)
        tables.append({"task": task, "setting": setting, "models": models, "candidates": candidates, "rows": rows,
                       "scorer": scorer, "rai": _section(task) == "rai",
                       "headline": headline_of(task).metric if headline_of(task) else None})
    return tables


def _delta_view(d: Delta) -> dict[str, Any]:
    return {**d.to_json(), "baseline_value_s": _fmt(d.baseline_value), "candidate_value_s": _fmt(d.candidate_value),
            "delta_s": _fmt(d.delta), "ci_s": _ci(d.delta_ci), "p_s": _fmt(d.p_value, 4),
            "p_adj_s": _fmt(d.p_adjusted, 4), "mde_s": _fmt(d.mde)}


def _items_script() -> str:
    """The explorer's own script (templates/items.js), inlined: the page loads nothing."""
    from importlib.resources import files

    return files("rai_multi.report").joinpath("templates", "items.js").read_text(encoding="utf-8")


def build_report(
    run_paths: Sequence[Path],
    baseline: str,
    out_html: Path,
    policy_result: Any = None,
    notes: Sequence[str] = (),
    seed: int = 1234,
    title: str = "rai-multi audit report",
    scorer_validity: Sequence[Path] = (),
) -> ReportPaths:
    """Compare all runs against ``baseline`` and write HTML, JSON and Markdown.
    ``scorer_validity``: scorer_validity.json files shown in the toxicity section."""
    runs = load_runs(run_paths)
    comparison = compare_runs(runs, baseline, seed)
    validity = scorer_section(runs, scorer_validity)
    notes = list(notes) + run_notes(runs) + validity["notes"]
    samples = sample_data_runs(runs)
    if samples and not any(n.startswith("SAMPLE DATA") for n in notes):
        what = "every run" if len(samples) == len(runs) else ", ".join(f"{r.model}/{r.task}" for r in samples)
        notes.insert(0, SAMPLE_NOTE.format(what=what))
    out_html = Path(out_html)
    gate = policy_result.to_json() if policy_result is not None else None
    summary = [_delta_view(d) for d in comparison.summary]
    context = {
        "title": title,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": __version__,
        "baseline": baseline,
        "candidates": comparison.candidates,
        "models": sorted({r.model for r in runs}),
        "notes": list(notes),
        "flags": comparison.flags,
        "summary": summary,
        "gate": gate,
        "tables": _detail_tables(comparison, runs),
        "figures": _figures(comparison),
        "rai_figures": _rai_figures(comparison),
        "diagnostics": _diagnostics(runs),
        "provenance": _provenance(runs),
        "scorer_validity": validity,
    }
    explorer = explorer_data(comparison.groups, baseline)
    script = _items_script()
    context.update(explorer=explorer, items_json=script_json(explorer), items_js=script,
                   script_hash=base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii"))
    env = Environment(loader=PackageLoader("rai_multi.report", "templates"), autoescape=select_autoescape(["html", "j2"]))
    html = env.get_template("report.html.j2").render(**context)
    atomic_write_text(out_html, html)
    json_path = out_html.with_suffix(".json")
    atomic_write_json(json_path, {
        "baseline": baseline, "candidates": comparison.candidates, "flags": comparison.flags,
        "sample_data": bool(samples),
        "summary": [d.to_json() for d in comparison.summary],
        "details": [d.to_json() for d in comparison.details],
        "gate": gate, "notes": list(notes),
        "tables": [{"task": t["task"], "setting": t["setting"], "models": t["models"], "scorer": t["scorer"],
                    "rows": [{"metric": r["metric"], "slice": r["slice"], "values": r["raw"], "deltas": r["raw_deltas"]}
                             for r in t["rows"]]} for t in context["tables"]],
        "diagnostics": context["diagnostics"],
        "scorer_validity": {k: validity[k] for k in ("tables", "calibrations")},
        "item_changes": [{"task": r["task"], "setting": r["setting"], "field": r["field"], "paired": r["paired"],
                          "changes": r["changes"]} for r in explorer],
    })
    md_path = out_html.with_suffix(".md")
    atomic_write_text(md_path, render_markdown(context))
    return ReportPaths(out_html, json_path, md_path)


# Inline Markdown (cells never start a line); an underscore only where it could open or
# close emphasis, so snake_case names such as native_cot stay as they are.
_MD_SPECIAL = re.compile(r"([\\`*\[\]|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def md(value: Any) -> str:
    """Text made inert in Markdown: HTML escaped, Markdown punctuation backslashed (so a
    model name cannot open a link, emphasis or an HTML tag, and a ``|`` cannot end a table
    cell), and line breaks folded into spaces (a newline would end the table row)."""
    text = html_escape(" ".join(str(value).split()), quote=True)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return "\\" + text if text[:1] in ("#", "-", "+", "=") else text  # would start a heading or list in a note


def _validity_markdown(section: dict[str, Any]) -> list[str]:
    fields = section["fields"]
    lines: list[str] = []

    def table(rows: list[dict[str, Any]]) -> list[str]:
        return (["", "| subset | " + " | ".join(fields) + " |", "|---|" + "---|" * len(fields)]
                + [f"| {r['subset']} | " + " | ".join(_fmt(r[f]) for f in fields) + " |" for r in rows])

    for t in section["tables"]:
        lines += ["", f"## Toxicity scorer vs Perspective: {t['scorer']} (weights {t['weights_hash'][:12]})", "",
                  f"Runs: {', '.join(t['runs']) or t['note']}. Positive class: Perspective toxicity >= 0.5."]
        lines += table(t["rows"])
        if t["calibrated_rows"]:
            lines += ["", "Through the calibration:"] + table(t["calibrated_rows"])
    for c in section["calibrations"]:
        lines += ["", f"Calibration of {c['scorer']}: {c['path']} (sha256 {c['sha256'][:12]}) {c['status']}"]
        for label, rows in (c["heldout"] or {}).items():
            lines += ["", f"Held-out half, {label}:"] + table(rows)
    return lines


def render_markdown(ctx: dict[str, Any]) -> str:
    """report.md: every name, note, rule and reason goes through :func:`md`."""
    lines = [f"# {md(ctx['title'])}", "",
             f"Baseline: **{md(ctx['baseline'])}**; candidates: {', '.join(md(c) for c in ctx['candidates'])}", ""]
    for note in ctx["notes"]:
        lines.append(f"> {md(note)}")
    if ctx["gate"]:
        lines += ["", f"Gate verdict: **{md(ctx['gate']['verdict'])}**", ""]
        lines += ["| rule | model | slice | value | status | reason |", "|---|---|---|---|---|---|"]
        for r in ctx["gate"]["results"]:
            lines.append(f"| {md(r['rule'])} | {md(r['model'])} | {md(r['slice'])} | {_fmt(r['value'])} | "
                         f"{md(r['status'])} | {md(r['reason'])} |")
    lines += ["", "| task | metric | slice | candidate | baseline | candidate value | delta | 95% CI | p | p (Holm) "
              "| MDE (80% power) | significant |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in ctx["summary"]:
        lines.append(f"| {md(d['task'])}/{md(d['setting'])} | {md(d['metric'])} | {md(d['slice'])} | {md(d['candidate'])} | "
                     f"{d['baseline_value_s']} | {d['candidate_value_s']} | {d['delta_s']} | {d['ci_s']} | {d['p_s']} | "
                     f"{d['p_adj_s']} | {d['mde_s']} | {d['significant']} |")
    if ctx["flags"]:
        lines += ["", "Flags (not comparable as is):"] + [f"- {md(f)}" for f in ctx["flags"]]
    lines += ["", "## Headline metric by slice (languages, tiers, categories)"]
    for t in ctx["tables"]:
        rows = [r for r in t["rows"] if r["metric"] == t["headline"]]
        if not rows:
            continue
        head = [f"{md(m)} (95% CI, n)" for m in t["models"]] + [f"delta {md(c)}" for c in t["candidates"]]
        lines += ["", f"### {md(t['task'])}/{md(t['setting'])}: {md(t['headline'])}"
                  + (f" (scorer: {md(t['scorer'])})" if t["scorer"] else ""),
                  "", "| slice | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
        for r in rows:
            cells = [f"{c['value']} {c['ci']} n={c['n']}" if c["value"] != "–" else "–" for c in r["cells"]]
            cells += [f"{d['delta']} {d['ci']}".strip() for d in r["deltas"]]
            lines.append(f"| {md(r['slice'])} | " + " | ".join(cells) + " |")
    lines += _validity_markdown(ctx["scorer_validity"])
    if ctx["diagnostics"]:
        lines += ["", "## Diagnostics", "", "| task | model | metric | slice | value | n |", "|---|---|---|---|---|---|"]
        lines += [f"| {md(d['task'])} | {md(d['model'])} | {md(d['metric'])} | {md(d['slice'])} | {d['value']:.3f} | {d['n']} |"
                  for d in ctx["diagnostics"]]
    return "\n".join(lines) + "\n"
