"""Loading run directories for comparison, and which runs can be compared.

Runs are grouped by (task, setting); within a group each model contributes one run. Two
runs are comparable only when their run configs are equal apart from the model itself
(task options, sample ids, k, shots, new tokens, dtype, attention kernel, chat template,
scorer): anything else is flagged and never compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rai_multi.errors import RaiMultiError
from rai_multi.store import RunDir, find_run_dirs
from rai_multi.tasks.spec import Headline, MetricInfo
from rai_multi.tasks.table import spec_for


def headline_of(task: str) -> Headline | None:
    """The task's headline metric and pairing field, from its spec."""
    spec = spec_for(task)
    return spec.headline if spec else None


def metric_info(task: str, metric: dict[str, Any] | str) -> MetricInfo:
    """How to read a metric of a run: from metrics.json itself (schema 2 writes direction
    and reference beside every number), else from the task's spec. A metric described in
    neither is an error: guessing "higher is better" would flip verdicts."""
    if isinstance(metric, dict) and metric.get("direction") in ("higher", "lower", "reference"):
        return MetricInfo(metric["direction"], metric.get("aggregation") or "micro", metric.get("reference"))
    name = metric["name"] if isinstance(metric, dict) else metric
    spec = spec_for(task)
    if spec is None:
        raise RaiMultiError(f"task {task!r} is unknown to this rai-multi and its metrics.json does not say which "
                            f"way {name!r} is better")
    try:
        return spec.metric_info(name)
    except KeyError as exc:
        raise RaiMultiError(str(exc.args[0])) from None


@dataclass
class Run:
    path: Path
    manifest: dict[str, Any]
    metrics: list[dict[str, Any]]
    _samples: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def model(self) -> str:
        return self.manifest["model"]["name"]

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def setting(self) -> str:
        return self.manifest.get("setting", "")

    @property
    def key(self) -> tuple[str, str]:
        return (self.task, self.setting)

    @property
    def scorer(self) -> str | None:
        scorer = self.manifest.get("config", {}).get("scorer")
        if isinstance(scorer, dict):
            cal = scorer.get("calibration")  # a calibrated run is flagged against an uncalibrated one
            suffix = f"+cal:{str(cal.get('sha256', ''))[:12]}" if isinstance(cal, dict) else ""
            return f"{scorer.get('name')}@{scorer.get('version', '?')}:{str(scorer.get('weights_hash', ''))[:12]}{suffix}"
        return scorer

    def samples(self) -> list[dict[str, Any]]:
        if self._samples is None:
            self._samples = RunDir(self.path).read_samples()
        return self._samples

    def metric(self, name: str, slice_name: str) -> dict[str, Any] | None:
        return next((m for m in self.metrics if m["name"] == name and m["slice"] == slice_name), None)


def load_runs(paths: Sequence[Path]) -> list[Run]:
    """Complete runs under ``paths`` (incomplete ones are an error naming the folder)."""
    runs = []
    for path in find_run_dirs([Path(p) for p in paths]):
        run_dir = RunDir(path)
        doc = run_dir.read_metrics()
        runs.append(Run(path, run_dir.read_manifest(), doc["metrics"]))
    if not runs:
        raise RaiMultiError("no runs found")
    return runs


def group_runs(runs: Sequence[Run]) -> dict[tuple[str, str], dict[str, Run]]:
    groups: dict[tuple[str, str], dict[str, Run]] = {}
    for run in runs:
        by_model = groups.setdefault(run.key, {})
        if run.model in by_model:
            raise RaiMultiError(
                f"two runs of model {run.model!r} for {run.task}/{run.setting}: {by_model[run.model].path} and {run.path}"
            )
        by_model[run.model] = run
    return groups


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def config_differences(baseline: dict[str, Any], candidate: dict[str, Any], limit: int = 6) -> list[str]:
    """The settings (dotted paths) in which two run configs differ, model identity left out."""
    a = _flatten({k: v for k, v in baseline.items() if k != "model_identity"})
    b = _flatten({k: v for k, v in candidate.items() if k != "model_identity"})
    diffs = [f"{key} {_short(a.get(key))} vs {_short(b.get(key))}" for key in sorted(set(a) | set(b))
             if a.get(key) != b.get(key)]
    return diffs[:limit] + ([f"and {len(diffs) - limit} more"] if len(diffs) > limit else [])


def comparability_issues(baseline: Run, candidate: Run) -> list[str]:
    """Why two runs of the same task must not be compared (empty if they may be): any
    difference of their run configs other than the model itself."""
    issues = []
    if baseline.manifest.get("task_version") != candidate.manifest.get("task_version"):
        issues.append(f"task version {baseline.manifest.get('task_version')} vs {candidate.manifest.get('task_version')}")
    if baseline.setting != candidate.setting:
        issues.append(f"setting {baseline.setting} vs {candidate.setting}")
    if baseline.scorer != candidate.scorer:
        issues.append(f"toxicity scorer {baseline.scorer} vs {candidate.scorer}")
    base_cfg, cand_cfg = baseline.manifest.get("run_config"), candidate.manifest.get("run_config")
    if not isinstance(base_cfg, dict) or not isinstance(cand_cfg, dict):
        old = baseline if not isinstance(base_cfg, dict) else candidate
        issues.append(f"{old.model}'s run has no run config (made by an older rai-multi): re-run it")
    elif baseline.manifest.get("comparison_hash") != candidate.manifest.get("comparison_hash"):
        diffs = config_differences(base_cfg, cand_cfg)
        issues.append("run configs differ: " + ("; ".join(diffs) if diffs else "comparison hashes differ"))
    if not issues:
        base_ids = {r["id"] for r in baseline.samples()}
        cand_ids = {r["id"] for r in candidate.samples()}
        if base_ids != cand_ids:
            issues.append(f"sample sets differ ({len(base_ids)} vs {len(cand_ids)} items, "
                          f"{len(base_ids & cand_ids)} shared)")
    return issues


def model_names(runs: Sequence[Run]) -> list[str]:
    return sorted({r.model for r in runs})
