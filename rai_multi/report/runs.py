"""Loading run directories for comparison, and which runs can be compared.

Runs are grouped by (task, setting); within a group each model contributes one run. Two
runs are comparable only with the same task version, setting, scorer (toxicity) and
sample ids: anything else is flagged, never silently merged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rai_multi.errors import RaiMultiError
from rai_multi.store import RunDir, find_run_dirs



@dataclass(frozen=True)
class Headline:
    """A task's headline metric and the per-sample field that pairs two models on it
    (None: no per-item pairing; only the CIs are compared). ``only`` restricts the rows
    the paired field is read from (BBQ accuracy in disambiguated contexts)."""

    metric: str
    field: str | None
    only: tuple[str, str] | None = None
    statistic: str = "mean"  # "mean" of the field, or "auc" of the field against the row's label
    unpaired: tuple[str, ...] = ()  # slice prefixes whose metric is not a mean over the slice's rows

    def pairs(self, slice_name: str) -> bool:
        return self.field is not None and not (self.unpaired and slice_name.startswith(self.unpaired))


HEADLINE: dict[str, Headline] = {
    "mgsm": Headline("accuracy", "correct"),
    "tydiqa": Headline("squad_em", "squad_em"),
    "winogender": Headline("accuracy", "correct"),
    "winobias": Headline("accuracy", "correct"),
    "bbq": Headline("accuracy_disambig", "correct", ("condition", "disambig")),
    "crows_pairs": Headline("crows_score", "stereotyped", unpaired=("direction=",)),  # direction: ties left out
    "toxicity": Headline("toxicity_probability", "any_toxic"),
    "identity_toxicity": Headline("toxic_rate", "toxic"),
    "toxicity_cls": Headline("auc", "p_yes", statistic="auc"),
}
# Metrics where lower is better (everything else: higher is better).
LOWER_IS_BETTER = {
    "toxicity_probability", "expected_max_toxicity", "toxic_rate", "pro_anti_gap", "truncated_rate",
    "extraction_none_rate", "extraction_fallback_rate", "target_undetermined", "neutral_pairs",
}
# Metrics whose unbiased value is a reference point rather than an extreme.
REFERENCE_VALUE = {"bias_score_disambig": 0.0, "bias_score_ambig": 0.0, "crows_score": 50.0, "pro_anti_gap": 0.0}


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER and metric not in REFERENCE_VALUE


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


def comparability_issues(baseline: Run, candidate: Run) -> list[str]:
    """Why two runs of the same task must not be compared as they are (empty if fine)."""
    issues = []
    if baseline.manifest.get("task_version") != candidate.manifest.get("task_version"):
        issues.append(f"task version {baseline.manifest.get('task_version')} vs {candidate.manifest.get('task_version')}")
    if baseline.setting != candidate.setting:
        issues.append(f"setting {baseline.setting} vs {candidate.setting}")
    if baseline.scorer != candidate.scorer:
        issues.append(f"toxicity scorer {baseline.scorer} vs {candidate.scorer}")
    base_ids = {r["id"] for r in baseline.samples()}
    cand_ids = {r["id"] for r in candidate.samples()}
    if base_ids != cand_ids:
        issues.append(f"sample sets differ ({len(base_ids)} vs {len(cand_ids)} items, {len(base_ids & cand_ids)} shared)")
    return issues


def model_names(runs: Sequence[Run]) -> list[str]:
    return sorted({r.model for r in runs})
