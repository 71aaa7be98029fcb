"""``rai-multi audit``: every task of a suite for every model, then one report and one gate.

Each (model, task) is an ordinary run through the runner, so finished answers are reused
from the cache and a killed audit resumes where it stopped. Models are loaded one at a time.
The task table below is explicit: suite task type -> the function that builds its tasks.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import typer

from rai_multi.cli.bias import build_bias_task
from rai_multi.cli.common import prompt_budget
from rai_multi.data.tydiqa import GOLDP_LANGS
from rai_multi.demo_models import resolve_demo_model
from rai_multi.errors import ConfigError
from rai_multi.gate import GateResult, evaluate_policy, parse_policy
from rai_multi.languages import MGSM_LANGS, resolve_languages
from rai_multi.models.base import ModelAdapter
from rai_multi.models.loading import load_model
from rai_multi.paths import data_dir as resolve_data_dir
from rai_multi.report.build import ReportPaths, build_report
from rai_multi.runner import RunOptions, evaluate
from rai_multi.scoring.calibration import Calibration, load_calibration
from rai_multi.scoring.toxicity import ToxicityScorer, load_scorer
from rai_multi.suite import Suite
from rai_multi.tasks.identity_toxicity import IdentityToxicityTask
from rai_multi.tasks.mgsm import MgsmTask
from rai_multi.tasks.toxicity import DEFAULT_FILES, ToxicityTask
from rai_multi.tasks.toxicity_cls import ToxicityClsTask
from rai_multi.tasks.tydiqa import TydiqaTask


@dataclass
class Context:
    data_dir: Path
    seed: int
    limit: int | None
    scorer: ToxicityScorer
    calibration: Calibration | None = None  # suite scorer key `calibration = "path"`


def _langs(opts: dict[str, Any], available: tuple[str, ...]) -> list[str]:
    langs = opts.get("langs")
    return resolve_languages(",".join(langs) if isinstance(langs, list) else langs, opts.get("tier"), available)


def _mgsm(o: dict[str, Any], c: Context, adapter: ModelAdapter) -> list[Any]:
    return [MgsmTask(langs=_langs(o, MGSM_LANGS), data_dir=c.data_dir, setting=o.get("setting", "native_cot"),
                     limit=c.limit or o.get("limit"), samples=o.get("samples", 1), shots=o.get("shots", 8),
                     max_new_tokens=o.get("max_new_tokens"), seed=c.seed)]


def _tydiqa(o: dict[str, Any], c: Context, adapter: ModelAdapter) -> list[Any]:
    new = o.get("max_new_tokens", 32)
    return [TydiqaTask(langs=_langs(o, GOLDP_LANGS), data_dir=c.data_dir, shots=o.get("shots", 1),
                       limit=c.limit or o.get("limit"), max_new_tokens=new, seed=c.seed,
                       max_prompt_tokens=prompt_budget(adapter, new), count_tokens=adapter.count_tokens)]


def _toxicity(o: dict[str, Any], c: Context, adapter: ModelAdapter) -> list[Any]:
    files = [c.data_dir / "realtoxicityprompts" / f for f in DEFAULT_FILES]
    return [ToxicityTask(c.scorer, files, c.limit or o.get("prompts", 100), o.get("samples", 5),
                         o.get("max_new_tokens", 20), seed=c.seed, calibration=c.calibration)]


def _identity(o: dict[str, Any], c: Context, adapter: ModelAdapter) -> list[Any]:
    return [IdentityToxicityTask(c.scorer, c.data_dir, o.get("descriptors_per_axis", 5),
                                 o.get("templates_per_descriptor", 2), o.get("samples", 2), o.get("max_new_tokens", 20),
                                 c.seed)]


def _toxicity_cls(o: dict[str, Any], c: Context, adapter: ModelAdapter) -> list[Any]:
    return [ToxicityClsTask(o.get("dataset", "davidson"), c.data_dir, o.get("shots", 0), c.limit or o.get("limit"), c.seed,
                            path=Path(o["path"]) if o.get("path") else None)]


def _bias(o: dict[str, Any], c: Context, adapter: ModelAdapter) -> list[Any]:
    names = o.get("benchmarks", ["winogender", "winobias", "bbq", "crows_pairs"])
    setting = o.get("setting", "mc")
    return [build_bias_task(b, c.data_dir, "mc" if b == "crows_pairs" else setting, c.limit or o.get("limit"),
                            o.get("shots", 0), c.seed) for b in names]


TASK_BUILDERS: dict[str, Callable[[dict[str, Any], Context, ModelAdapter], list[Any]]] = {
    "mgsm": _mgsm,
    "tydiqa": _tydiqa,
    "toxicity": _toxicity,
    "identity_toxicity": _identity,
    "toxicity_cls": _toxicity_cls,
    "bias": _bias,
}


@dataclass
class AuditResult:
    run_dirs: list[Path]
    report: ReportPaths
    gate: GateResult | None

    @property
    def exit_code(self) -> int:
        return self.gate.exit_code if self.gate else 0


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
    context = Context(root, suite.seed, limit, scorer, calibration)
    run_dirs: list[Path] = []
    for name in [baseline, *chosen]:
        spec = suite.model(name)
        started = time.time()
        echo(f"[{name}] loading {spec.source}")
        adapter = load_model(resolve_demo_model(spec.source), batch_size=spec.batch_size, dtype=spec.dtype,
                             chat_template=spec.chat_template, name=name)
        for task_spec in suite.tasks:
            for task in TASK_BUILDERS[task_spec.type](task_spec.options, context, adapter):
                options = RunOptions(out_dir=out_dir, name=name, seed=suite.seed, batch_size=spec.batch_size)
                run_dirs.append(evaluate(task, adapter, options))
                echo(f"[{name}] {task.name}/{task.setting} done ({time.time() - started:.0f}s)")
        del adapter
        gc.collect()
    gate = evaluate_policy(suite.policy, run_dirs, baseline, suite.seed) if suite.policy else None
    descriptions = {m.name: m.description for m in suite.models if m.description}
    notes += [f"{name}: {text}" for name, text in descriptions.items()]
    validity = [Path(scorer_cfg["validity"])] if scorer_cfg.get("validity") else []
    paths = build_report(run_dirs, baseline, Path(report or suite.report), gate, notes, suite.seed, suite.title,
                         scorer_validity=validity)
    return AuditResult(run_dirs, paths, gate)
