"""``rai-multi audit``: every task of a suite for every model, then one report and one gate.

Each (model, task) is an ordinary run through the runner, so finished answers are reused
from the cache and a killed audit resumes where it stopped. Models are loaded one at a time.
Each suite task names benchmark specs (rai_multi/tasks/table.py); their builders make the tasks.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import typer

from rai_multi.audit_progress import AuditProgress
from rai_multi.errors import ConfigError
from rai_multi.gate import GateResult, evaluate_policy, parse_policy
from rai_multi.models.spec import load_backend
from rai_multi.paths import data_dir as resolve_data_dir
from rai_multi.report.build import ReportPaths, build_report
from rai_multi.runner import RunOptions, evaluate
from rai_multi.scoring.calibration import load_calibration
from rai_multi.scoring.toxicity import load_scorer
from rai_multi.store import RunDir
from rai_multi.suite import Suite
from rai_multi.tasks.spec import BenchmarkSpec, BuildContext


def apply_limit(spec: BenchmarkSpec, options: Any, limit: int | None) -> Any:
    """``audit --limit N`` overrides the spec's limit option (MGSM questions per language,
    RTP prompts per file, ...); a benchmark without one keeps its options."""
    if limit is None or spec.limit_field is None:
        return options
    return dataclasses.replace(options, **{spec.limit_field: limit})


@dataclass
class AuditResult:
    run_dirs: list[Path]
    report: ReportPaths
    gate: GateResult | None

    @property
    def exit_code(self) -> int:
        return self.gate.exit_code if self.gate else 0


def finetune_stage(suite: Suite, names: Sequence[str], data_root: Path, notes: list[str],
                   echo: Callable[[str], None]) -> dict[str, str]:
    """Train (or find in the model cache) every finetune row among ``names``; returns each
    one's model folder and adds a report note saying how and where it was trained. Every
    mixture is read and checked first, so a broken one fails before any training starts."""
    from rai_multi.finetune.mixture import load_mixture
    from rai_multi.finetune.stage import ensure_finetuned, report_note

    rows = [suite.model(n) for n in names if suite.model(n).finetune is not None]
    for row in rows:
        load_mixture(row.finetune.mixture, data_root)
    sources: dict[str, str] = {}
    for row in rows:
        spec = row.finetune
        base = suite.model(spec.of)
        started = time.time()
        outcome = ensure_finetuned(spec, base.source, data_root, suite.seed,
                                   revision=dict(base.backend_fields).get("revision"), echo=echo)
        verb = "found in the model cache" if outcome.cached else f"trained in {time.time() - started:.0f}s"
        echo(f"[{row.name}] finetune of {spec.of} {verb}: {outcome.path}")
        sources[row.name] = str(outcome.path)
        notes.append(report_note(row.name, spec, outcome))
    return sources


def run_audit(
    suite: Suite,
    baseline: str | None = None,
    candidates: Sequence[str] = (),
    limit: int | None = None,
    out: Path | None = None,
    report: Path | None = None,
    data_dir: Path | None = None,
    echo: Callable[[str], None] = typer.echo,
) -> AuditResult:
    baseline = baseline or suite.baseline
    suite.model(baseline)
    chosen = list(candidates) or [m.name for m in suite.models if m.name != baseline]
    if baseline in chosen:
        raise ConfigError(f"{baseline!r} is the baseline; it cannot also be a candidate")
    for name in chosen:
        suite.model(name)
    if suite.policy:
        parse_policy(suite.policy)  # a broken policy fails now, not after every model has run
    root = resolve_data_dir(data_dir, required=False)
    notes = list(suite.notes)
    if root is None:
        from rai_multi.samples import write_sample_data

        root = write_sample_data()
        from rai_multi.report.build import SAMPLE_NOTE

        notes.insert(0, SAMPLE_NOTE.format(what="RAI_MULTI_DATA was not set, so this audit"))
        echo(f"no RAI_MULTI_DATA: using sample data in {root} (not benchmark scores)")
    scorer_cfg = suite.scorer
    scorer = load_scorer(scorer_cfg.get("name", "profanity-check"),
                         Path(scorer_cfg["checkpoint"]) if scorer_cfg.get("checkpoint") else None,
                         Path(scorer_cfg["config"]) if scorer_cfg.get("config") else None, scorer_cfg.get("label"))
    out_dir = Path(out or suite.out)
    calibration = load_calibration(Path(scorer_cfg["calibration"])) if scorer_cfg.get("calibration") else None
    run_dirs: list[Path] = []
    sources = finetune_stage(suite, [baseline, *chosen], root, notes, echo)
    progress = AuditProgress(1 + len(chosen), sum(len(t.runs) for t in suite.tasks))
    for name in [baseline, *chosen]:
        spec = suite.model(name)
        echo(f"[{name}] loading {sources.get(name, spec.source)}")
        adapter = load_backend(spec.model_spec(sources.get(name)), name=name)
        context = BuildContext(root, suite.seed, scorer, adapter, calibration)
        for suite_task in suite.tasks:
            for bench, bench_options in suite_task.runs:
                task_started = time.time()
                task = bench.build(apply_limit(bench, bench_options, limit), context)
                options = RunOptions(out_dir=out_dir, name=name, seed=suite.seed, batch_size=spec.batch_size)
                run_dirs.append(evaluate(task, adapter, options))
                n_items = RunDir(run_dirs[-1]).read_manifest()["n_samples"]
                echo(progress.done(f"{name} {task.name}/{task.setting} in {time.time() - task_started:.0f}s", n_items))
        del adapter
        gc.collect()
    gate = evaluate_policy(suite.policy, run_dirs, baseline, suite.seed) if suite.policy else None
    descriptions = {m.name: m.description for m in suite.models if m.description}
    notes += [f"{name}: {text}" for name, text in descriptions.items()]
    validity = [Path(scorer_cfg["validity"])] if scorer_cfg.get("validity") else []
    paths = build_report(run_dirs, baseline, Path(report or suite.report), gate, notes, suite.seed, suite.title,
                         scorer_validity=validity)
    return AuditResult(run_dirs, paths, gate)
