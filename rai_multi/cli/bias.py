"""``rai-multi eval bias`` and ``rai-multi score bias``: one run directory per benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rai_multi.cli import common
from rai_multi.cli.sample_opts import CategoriesOpt, LimitRuleOpt, split_list
from rai_multi.errors import ConfigError
from rai_multi.models.replay import ReplayAdapter
from rai_multi.paths import data_dir as resolve_data_dir
from rai_multi.tasks.bbq import BbqTask
from rai_multi.tasks.crows_pairs import CrowsPairsTask
from rai_multi.tasks.winobias import WinobiasTask
from rai_multi.tasks.winogender import WinogenderTask

BENCHMARKS = ("winogender", "winobias", "bbq", "crows_pairs")
BenchOpt = typer.Option(",".join(BENCHMARKS), "--benchmarks", help=f"Comma-separated: {', '.join(BENCHMARKS)}.")
SettingOpt = typer.Option("mc", "--setting", help="mc (log-likelihood choice) or generative (Winogender's paper setup).")
ShotsOpt = typer.Option(0, "--shots", min=0, help="Winogender few-shot exemplars (from other templates).")
LimitOpt = typer.Option(None, "--limit", min=1, help="At most N items: per BBQ category, per WinoBias file (minimal "
                                                    "pairs per type), Winogender sentences, CrowS-Pairs pairs.")


PromptOpt = typer.Option("default", "--prompt",
                         help="Prompt variant of the mc setting: default (rai-multi's) or lmeval (lm-evaluation-harness's "
                              "Winogender, BBQ and CrowS-Pairs formats).")


def build_bias_task(benchmark: str, data_dir: Path, setting: str, limit: Optional[int], shots: int = 0, seed: int = 1234,
                    limit_rule: str = "stratified", categories: Optional[list[str]] = None, prompt: str = "default"):
    """The task object of one bias benchmark (explicit table, no registry)."""
    if benchmark == "winogender":
        return WinogenderTask(data_dir, setting=setting, shots=shots, limit=limit, seed=seed, limit_rule=limit_rule,
                              prompt=prompt)
    if benchmark == "winobias":
        if prompt != "default":
            raise ConfigError(f"prompt variant {prompt!r} exists for winogender, bbq and crows_pairs only; "
                              "leave winobias out of --benchmarks")
        return WinobiasTask(data_dir, setting=setting, limit=limit, seed=seed, limit_rule=limit_rule)
    if benchmark == "bbq":
        return BbqTask(data_dir, setting=setting, limit=limit, seed=seed, limit_rule=limit_rule, categories=categories,
                       prompt=prompt)
    if benchmark == "crows_pairs":
        return CrowsPairsTask(data_dir, setting="mc", limit=limit, seed=seed, limit_rule=limit_rule, prompt=prompt)
    raise ConfigError(f"unknown bias benchmark {benchmark!r}; choose from {', '.join(BENCHMARKS)}")


def _tasks(benchmarks: str, data_dir: Optional[Path], setting: str, limit: Optional[int], shots: int, seed: int,
           generative_only: bool = False, limit_rule: str = "stratified", categories: Optional[str] = None,
           prompt: str = "default"):
    names = [b.strip() for b in benchmarks.split(",") if b.strip()]
    root = resolve_data_dir(data_dir)
    tasks = []
    for name in names:
        if name == "crows_pairs" and (setting == "generative" or generative_only):
            if generative_only:
                raise ConfigError("crows_pairs compares sentence likelihoods: it cannot be scored from predictions")
            tasks.append(build_bias_task(name, root, "mc", limit, shots, seed, limit_rule, prompt=prompt))
            continue
        tasks.append(build_bias_task(name, root, setting, limit, shots, seed, limit_rule, split_list(categories), prompt))
    return tasks


def eval_bias(
    model: str = common.ModelOpt,
    benchmarks: str = BenchOpt,
    setting: str = SettingOpt,
    shots: int = ShotsOpt,
    limit: Optional[int] = LimitOpt,
    limit_rule: str = LimitRuleOpt,
    categories: Optional[str] = CategoriesOpt,
    prompt: str = PromptOpt,
    batch_size: str = common.BatchOpt,
    name: Optional[str] = common.NameOpt,
    out: Path = common.OutOpt,
    data_dir: Optional[Path] = common.DataDirOpt,
    seed: int = common.SeedOpt,
    dtype: str = common.DtypeOpt,
    chat_template: bool = common.ChatOpt,
    no_cache: bool = common.NoCacheOpt,
) -> None:
    """Evaluate a model on Winogender, WinoBias, BBQ and CrowS-Pairs (authors' metrics)."""
    tasks = _tasks(benchmarks, data_dir, setting, limit, shots, seed, limit_rule=limit_rule, categories=categories,
                   prompt=prompt)
    for task in tasks:
        common.check_data_files(task)
    adapter = common.load_adapter(model, batch_size, dtype, chat_template)
    for task in tasks:
        common.run_and_print(task, adapter, name=name or common.default_name(model), out=out, seed=seed,
                             batch_size=batch_size, no_cache=no_cache,
                             metric_names=["accuracy", "accuracy_ambig", "accuracy_disambig", "pro_anti_gap",
                                           "bias_score_disambig", "bias_score_ambig", "crows_score"])


def score_bias(
    predictions: Path = common.PredictionsOpt,
    benchmarks: str = typer.Option("winogender,winobias,bbq", "--benchmarks", help="Generative benchmarks to score."),
    limit: Optional[int] = LimitOpt,
    limit_rule: str = LimitRuleOpt,
    categories: Optional[str] = CategoriesOpt,
    shots: int = ShotsOpt,
    name: Optional[str] = common.NameOpt,
    out: Path = common.OutOpt,
    data_dir: Optional[Path] = common.DataDirOpt,
    seed: int = common.SeedOpt,
) -> None:
    """Score generated answers produced elsewhere (ids: winogender/<sentid>, bbq/<Category>/<id>, ...)."""
    adapter = ReplayAdapter.from_file(predictions, name)
    for task in _tasks(benchmarks, data_dir, "generative", limit, shots, seed, generative_only=True,
                       limit_rule=limit_rule, categories=categories):
        common.run_and_print(task, adapter, name=adapter.name, out=out, seed=seed, batch_size=64,
                             metric_names=["accuracy", "pro_anti_gap", "bias_score_disambig", "bias_score_ambig"])


def register(app: typer.Typer, eval_app: typer.Typer, score_app: typer.Typer) -> None:
    eval_app.command("bias")(eval_bias)
    score_app.command("bias")(score_bias)
