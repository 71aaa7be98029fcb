"""Release gate: a policy of rules over run metrics -> pass/fail, with CI exit codes.

Policy TOML: ``[[rule]]`` tables with keys task, metric, slice, severity (error|warn,
default error), optional name and direction (higher|lower; default from the metric), and
exactly one of ``min``, ``max``, ``max_abs`` (distance to the metric's reference value, 0
for signed bias scores and 50 for CrowS, at most this), ``max_regression`` (candidate may
be at most this much worse than the baseline; for reference-valued metrics, its distance
to the reference may grow at most this much) or ``non_inferiority_margin`` (the lower 95%
bound of the paired candidate-minus-baseline delta, oriented so positive is better, must
exceed -margin; not for reference-valued metrics). Directions and reference values come
from the task specs; a metric no spec describes needs ``direction``. Statistics: the gate
uses no p-values; non-inferiority reads the unadjusted 95% paired bootstrap CI (stratified
by language for macro slices), one decision per rule, with no multiplicity correction
(``GATE_TEST``); the report's Holm-adjusted p-values are for reading, not gating.
``slice = "lang=*"`` expands to every language slice of the metric. Fail closed: a rule whose
run, metric or slice is missing fails with that reason.

Exit codes (``GateResult.exit_code``): 0 all error rules pass, 1 any fails, 2 (raised as
ConfigError) when the policy or the runs cannot be used.
"""

from __future__ import annotations

import math
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rai_multi.errors import ConfigError
from rai_multi.inputs import read_text
from rai_multi.results.compare import paired_delta
from rai_multi.results.runs import Run, comparability_issues, group_runs, headline_of, load_runs
from rai_multi.tasks.spec import MetricInfo
from rai_multi.tasks.table import spec_for

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

KINDS = ("min", "max", "max_abs", "max_regression", "non_inferiority_margin")
GATE_TEST = "unadjusted 95% paired bootstrap CI (stratified by language for macro slices); no multiplicity correction"
ALLOWED_KEYS = {"task", "metric", "slice", "severity", "name", "direction", *KINDS}


@dataclass(frozen=True)
class Rule:
    index: int
    line: int
    task: str
    metric: str
    slice: str
    severity: str
    kind: str
    threshold: float
    name: str
    info: MetricInfo

    @property
    def higher_is_better(self) -> bool:
        return self.info.direction == "higher"

    @property
    def needs_baseline(self) -> bool:
        return self.kind in ("max_regression", "non_inferiority_margin")


@dataclass
class RuleResult:
    rule: str
    severity: str
    model: str
    task: str
    metric: str
    slice: str
    value: float | None
    status: str  # pass | fail
    reason: str


@dataclass
class GateResult:
    policy: str
    results: list[RuleResult] = field(default_factory=list)

    @property
    def n_failed_errors(self) -> int:
        return sum(1 for r in self.results if r.status == "fail" and r.severity == "error")

    @property
    def n_failed_warnings(self) -> int:
        return sum(1 for r in self.results if r.status == "fail" and r.severity == "warn")

    @property
    def verdict(self) -> str:
        return "fail" if self.n_failed_errors else "pass"

    @property
    def exit_code(self) -> int:
        return 1 if self.n_failed_errors else 0

    def to_json(self) -> dict[str, Any]:
        return {"policy": self.policy, "verdict": self.verdict, "n_failed_errors": self.n_failed_errors,
                "n_failed_warnings": self.n_failed_warnings, "results": [asdict(r) for r in self.results]}


def parse_policy(path: Path) -> list[Rule]:
    """Read and validate a policy; errors name the file and the line of the rule at fault."""
    path = Path(path)
    text = read_text(path, error=ConfigError, what="policy")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    extra = set(doc) - {"rule", "title", "description"}
    if extra:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(sorted(extra))} (rules go in [[rule]] tables)")
    raw_rules = doc.get("rule")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise ConfigError(f"{path}: no [[rule]] tables")
    text_lines = text.splitlines()
    lines = [i + 1 for i, line in enumerate(text_lines) if re.match(r"^\s*\[\[\s*rule\s*\]\]", line)]

    def key_line(k: int, key: str) -> int:
        """Line of ``key = ...`` inside rule k's table (the table's header line if absent)."""
        start = lines[k] if k < len(lines) else 0
        end = lines[k + 1] - 1 if k + 1 < len(lines) else len(text_lines)
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        return next((i for i in range(start + 1, end + 1) if pattern.match(text_lines[i - 1])), start)

    rules = []
    for k, raw in enumerate(raw_rules):
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: 'rule' must be an array of [[rule]] tables")
        line = lines[k] if k < len(lines) else 0

        def at(key: str | None = None) -> str:
            return f"{path}:{key_line(k, key) if key else line}: rule {k + 1}"

        where = at()
        unknown = set(raw) - ALLOWED_KEYS
        if unknown:
            first = sorted(unknown, key=lambda u: key_line(k, u))[0]
            raise ConfigError(f"{at(first)}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(ALLOWED_KEYS))}")
        for key in ("task", "metric", "slice"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise ConfigError(f"{at(key) if key in raw else where}: '{key}' (a string) is required")
        kinds = [kind for kind in KINDS if kind in raw]
        if len(kinds) != 1:
            raise ConfigError(f"{at(kinds[1]) if len(kinds) > 1 else where}: exactly one of {', '.join(KINDS)} is "
                              f"required, found {len(kinds)}{' (' + ', '.join(kinds) + ')' if kinds else ''}")
        threshold = raw[kinds[0]]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ConfigError(f"{at(kinds[0])}: '{kinds[0]}' must be a number")
        if not math.isfinite(threshold):  # nan compares false with everything: a rule that can never fail
            raise ConfigError(f"{at(kinds[0])}: '{kinds[0]}' must be a finite number, got {threshold}")
        if kinds[0] in ("max_regression", "non_inferiority_margin") and threshold < 0:
            raise ConfigError(f"{at(kinds[0])}: '{kinds[0]}' must be >= 0")
        severity = raw.get("severity", "error")
        if severity not in ("error", "warn"):
            raise ConfigError(f"{at('severity')}: severity must be 'error' or 'warn'")
        direction = raw.get("direction")
        if direction not in (None, "higher", "lower"):
            raise ConfigError(f"{at('direction')}: direction must be 'higher' or 'lower'")
        info = _rule_metric_info(raw["task"], raw["metric"], direction, at("metric"))
        if info.direction == "reference" and direction is not None:
            raise ConfigError(f"{at('direction')}: {raw['metric']} is best at {info.reference:g}, not at an extreme; "
                              "drop 'direction' (max_regression compares distances to it, max_abs bounds it)")
        if info.direction == "reference" and kinds[0] == "non_inferiority_margin":
            raise ConfigError(f"{at(kinds[0])}: {raw['metric']} is best at {info.reference:g}: a one-sided "
                              "non-inferiority test does not apply; use max_regression (distance to it) or max_abs")
        if kinds[0] == "max_abs" and threshold < 0:
            raise ConfigError(f"{at(kinds[0])}: 'max_abs' must be >= 0")
        if "name" in raw and not isinstance(raw["name"], str):
            raise ConfigError(f"{at('name')}: 'name' must be a string")
        name = raw.get("name") or f"{raw['task']}.{raw['metric']}[{raw['slice']}] {kinds[0]} {threshold}"
        rules.append(Rule(k + 1, line, raw["task"], raw["metric"], raw["slice"], severity, kinds[0], float(threshold),
                          name, info))
    return rules


def _rule_metric_info(task: str, metric: str, direction: str | None, where: str) -> MetricInfo:
    """Which way the rule's metric is better: the task's spec says, a policy's ``direction``
    may say so for a metric the spec does not know; neither is a policy error (a guess
    would flip the verdict)."""
    spec = spec_for(task)
    if spec is not None:
        try:
            info = spec.metric_info(metric)
        except KeyError:
            info = None
        if info is not None:
            if direction is not None and info.direction != "reference" and direction != info.direction:
                raise ConfigError(f"{where}: {task}.{metric} is {info.direction}-is-better; 'direction' says {direction}")
            return info
    if direction is None:
        raise ConfigError(f"{where}: metric {metric!r} of task {task!r} is not described by any task spec: "
                          "give 'direction' (higher or lower)")
    return MetricInfo(direction)  # type: ignore[arg-type]


def _slices(run: Run, rule: Rule) -> list[str]:
    if rule.slice == "lang=*":
        return [m["slice"] for m in run.metrics if m["name"] == rule.metric and m["slice"].startswith("lang=")]
    return [rule.slice]


def _check(rule: Rule, cand: Run, base: Run | None, slice_name: str, seed: int) -> RuleResult:
    def result(value: float | None, ok: bool, reason: str) -> RuleResult:
        return RuleResult(rule.name, rule.severity, cand.model, rule.task, rule.metric, slice_name, value,
                          "pass" if ok else "fail", reason)

    m = cand.metric(rule.metric, slice_name)
    if m is None:
        return result(None, False, f"metric {rule.metric} [{slice_name}] missing from {cand.model}'s run")
    value = m["value"]
    if value is None or value != value:
        return result(None, False, f"metric {rule.metric} [{slice_name}] has no value in {cand.model}'s run")
    if rule.kind == "min":
        return result(value, value >= rule.threshold, f"{value:.4f} {'>=' if value >= rule.threshold else '<'} min {rule.threshold}")
    if rule.kind == "max":
        return result(value, value <= rule.threshold, f"{value:.4f} {'<=' if value <= rule.threshold else '>'} max {rule.threshold}")
    if rule.kind == "max_abs":
        ref = rule.info.reference or 0.0
        distance = abs(value - ref)
        return result(value, distance <= rule.threshold,
                      f"|{value:.4f} - {ref:g}| = {distance:.4f} {'<=' if distance <= rule.threshold else '>'} "
                      f"max_abs {rule.threshold}")
    assert base is not None
    bm = base.metric(rule.metric, slice_name)
    if bm is None or bm["value"] is None or bm["value"] != bm["value"]:
        return result(value, False, f"metric {rule.metric} [{slice_name}] missing from the baseline {base.model}'s run")
    issues = comparability_issues(base, cand)
    if issues:
        return result(value, False, f"not comparable with the baseline {base.model}: {'; '.join(issues)}")
    sign = 1.0 if rule.higher_is_better else -1.0
    if rule.info.direction == "reference":
        assert rule.kind == "max_regression"  # non-inferiority is refused when the policy is parsed
        ref = rule.info.reference
        worse_by = abs(value - ref) - abs(bm["value"] - ref)
        return result(value, worse_by <= rule.threshold + 1e-12,
                      f"distance to unbiased {ref} grew by {worse_by:+.4f} (allowed {rule.threshold})")
    oriented = sign * (value - bm["value"])
    if rule.kind == "max_regression":
        return result(value, oriented >= -rule.threshold - 1e-12,
                      f"change vs {base.model} {oriented:+.4f} (better is +; allowed regression {rule.threshold})")
    headline = headline_of(rule.task)
    if not headline or headline.metric != rule.metric or not headline.pairs(slice_name):
        return result(value, False, f"no per-item pairing for {rule.task}.{rule.metric} [{slice_name}]: "
                                    "non-inferiority cannot be tested; use max_regression")
    paired = paired_delta(base, cand, headline.field, slice_name, rule.metric, seed, headline.only, headline.statistic)
    if paired is None or paired["ci"] is None:
        return result(value, False, "no shared items between candidate and baseline (or no interval)")
    lo, hi = sorted((sign * paired["ci"][0], sign * paired["ci"][1]))
    return result(value, lo > -rule.threshold,
                  f"lower 95% bound of the oriented delta {lo:+.4f} vs margin -{rule.threshold} (n={paired['n']}; "
                  f"{GATE_TEST})")


def evaluate_policy(policy: Path, run_paths: Sequence[Path], baseline: str | None, seed: int = 1234) -> GateResult:
    """Apply a policy to the runs; candidates are every model other than the baseline."""
    rules = parse_policy(policy)
    runs = load_runs(run_paths)
    groups = group_runs(runs)
    models = sorted({r.model for r in runs})
    if baseline is not None and baseline not in models:
        raise ConfigError(f"baseline {baseline!r} is not among the runs' models: {', '.join(models)}")
    needing = [r for r in rules if r.needs_baseline]
    if needing and baseline is None:
        raise ConfigError(f"{policy}:{needing[0].line}: rule {needing[0].index} compares with a baseline: pass --baseline")
    candidates = [m for m in models if m != baseline]
    if not candidates:
        raise ConfigError("no candidate model: every run belongs to the baseline")
    gate = GateResult(str(policy))
    for rule in rules:
        task_groups = {k: v for k, v in groups.items() if k[0] == rule.task}
        for model in candidates:
            cand_runs = [g[model] for g in task_groups.values() if model in g]
            if not cand_runs:
                gate.results.append(RuleResult(rule.name, rule.severity, model, rule.task, rule.metric, rule.slice, None,
                                               "fail", f"no run of task {rule.task!r} for {model}"))
                continue
            for cand in cand_runs:
                base = groups[cand.key].get(baseline) if baseline else None
                if rule.needs_baseline and base is None:
                    gate.results.append(RuleResult(rule.name, rule.severity, model, rule.task, rule.metric, rule.slice,
                                                   None, "fail", f"no baseline run of {rule.task}/{cand.setting}"))
                    continue
                slices = _slices(cand, rule)
                if not slices:
                    gate.results.append(RuleResult(rule.name, rule.severity, model, rule.task, rule.metric, rule.slice,
                                                   None, "fail", f"no language slices of {rule.metric}"))
                for slice_name in slices:
                    gate.results.append(_check(rule, cand, base, slice_name, seed))
    return gate


def junit_xml(gate: GateResult) -> str:
    """One testcase per rule, model and slice; error-severity failures are <failure>s,
    warnings are reported in <system-out> without failing the suite."""
    suite = ET.Element("testsuite", name="rai-multi gate", tests=str(len(gate.results)),
                       failures=str(gate.n_failed_errors), errors="0", skipped="0")
    for r in gate.results:
        case = ET.SubElement(suite, "testcase", classname=f"{r.task}.{r.metric}", name=f"{r.rule} [{r.slice}] {r.model}")
        if r.status == "fail" and r.severity == "error":
            ET.SubElement(case, "failure", message=r.reason, type="GateRuleFailed").text = r.reason
        elif r.status == "fail":
            ET.SubElement(case, "system-out").text = f"WARNING: {r.reason}"
    root = ET.Element("testsuites")
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def format_table(gate: GateResult) -> str:
    rows = [("status", "severity", "model", "rule", "slice", "value", "reason")]
    for r in gate.results:
        rows.append((r.status.upper(), r.severity, r.model, r.rule, r.slice, "–" if r.value is None else f"{r.value:.4f}", r.reason))
    widths = [min(60, max(len(str(row[i])) for row in rows)) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c)[:60].ljust(w) for c, w in zip(row, widths)) for row in rows]
    lines.append(f"verdict: {gate.verdict.upper()} ({gate.n_failed_errors} error rule(s) failed, {gate.n_failed_warnings} warning(s))")
    return "\n".join(lines)
