"""The report's scorer-validity block: how far the toxicity scorer the runs used agrees with
Perspective (from ``scorer_validity.json`` files the user passes, written by ``rai-multi
scorer validate``), the calibration runs were scored through, and run notes.

Design: the report does not score anything itself; it reads the validity file(s) it is
given and matches them to runs by scorer name and weights hash. A toxicity run whose
scorer has no matching file gets an explicit note instead of a silent gap, and a file
for a scorer no run used is shown with a note saying so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from rai_multi.errors import ConfigError
from rai_multi.results.runs import Run
from rai_multi.store import file_sha256

SCORED_TASKS = ("toxicity", "identity_toxicity")
SUBSETS = ("all", "challenging", "prompts", "continuations")
FIELDS = ("n", "n_positive", "spearman", "auc", "ece", "mae", "precision", "recall")


def _key(scorer: dict[str, Any]) -> tuple[str, str]:
    return str(scorer.get("name")), str(scorer.get("weights_hash"))


def _rows(block: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name in SUBSETS:
        figures = block if name == "all" else block.get(name)
        if isinstance(figures, dict) and figures.get("n"):
            out.append({"subset": name, **{f: figures.get(f) for f in FIELDS}})
    return out


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read scorer validity file {path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("scorer"), dict) or "auc" not in doc:
        raise ConfigError(f"{path}: not a scorer_validity.json written by `rai-multi scorer validate`")
    return doc


def _calibration_view(cal: dict[str, Any]) -> dict[str, Any]:
    """What the report says about a calibration a run recorded (held-out figures if the
    file is still there with the recorded hash)."""
    path = Path(str(cal.get("path", "")))
    view = {"path": str(path), "sha256": cal.get("sha256", ""), "fit": cal.get("fit", {}), "heldout": None,
            "status": ""}
    if not path.is_file():
        view["status"] = "calibration file not found here; held-out figures not shown"
    elif file_sha256(path) != cal.get("sha256"):
        view["status"] = "calibration file changed since the run (hash differs); held-out figures not shown"
    else:
        held = json.loads(path.read_text(encoding="utf-8")).get("heldout", {})
        view["heldout"] = {k: _rows(held[k]) for k in ("raw", "calibrated") if isinstance(held.get(k), dict)}
    return view


def scorer_section(runs: Sequence[Run], validity_paths: Sequence[Path] = ()) -> dict[str, Any]:
    """Tables and notes for the report (see module docstring)."""
    used: dict[tuple[str, str], list[str]] = {}
    calibrations: dict[str, dict[str, Any]] = {}
    for run in runs:
        scorer = run.manifest.get("config", {}).get("scorer")
        if run.task in SCORED_TASKS and isinstance(scorer, dict):
            used.setdefault(_key(scorer), []).append(f"{run.model} {run.task}/{run.setting}")
            cal = scorer.get("calibration")
            if isinstance(cal, dict) and cal.get("sha256") not in calibrations:
                calibrations[str(cal.get("sha256"))] = {**_calibration_view(cal), "scorer": scorer.get("name")}
    tables, notes = [], []
    shown: set[tuple[str, str]] = set()
    for path in validity_paths:
        doc = _load(path)
        key = _key(doc["scorer"])
        shown.add(key)
        runs_using = used.get(key, [])
        tables.append({
            "path": str(path), "scorer": key[0], "weights_hash": key[1], "version": doc["scorer"].get("version"),
            "runs": runs_using, "rows": _rows(doc), "definitions": doc.get("definitions", {}),
            "calibrated_rows": _rows(doc["calibrated"]) if isinstance(doc.get("calibrated"), dict) else [],
            "note": "" if runs_using else "no run in this report used this scorer (name and weights hash differ)",
        })
    for key, names in sorted(used.items()):
        if key not in shown:
            notes.append(f"Toxicity scorer {key[0]} (weights {key[1][:12]}), used by {', '.join(names)}: its agreement "
                         "with Perspective is not shown (no scorer_validity.json given; run `rai-multi scorer validate` "
                         "and pass --scorer-validity), so its numbers are not comparable with Perspective-scored papers.")
    return {"tables": tables, "calibrations": list(calibrations.values()), "notes": notes, "fields": list(FIELDS)}


def run_notes(runs: Sequence[Run]) -> list[str]:
    """Notes runs recorded about themselves (e.g. no identity columns, scorer language)."""
    out = []
    for run in runs:
        for note in run.manifest.get("config", {}).get("notes", []) or []:
            out.append(f"{run.model} {run.task}/{run.setting}: {note}")
    return out
