"""``rai-multi eval tydiqa`` and ``rai-multi score tydiqa``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rai_multi.cli import common
from rai_multi.cli.sample_opts import LimitRuleOpt
from rai_multi.data.tydiqa import GOLDP_LANGS
from rai_multi.languages import resolve_languages
from rai_multi.models.replay import ReplayAdapter
from rai_multi.paths import data_dir as resolve_data_dir
from rai_multi.tasks.tydiqa import TydiqaTask

ShotsOpt = typer.Option(1, "--shots", min=0, max=1, help="0 or 1 (the Flan protocol is one-shot).")
MaxNewOpt = typer.Option(32, "--max-new-tokens", min=1, help="Answer length limit (generation also stops at a newline).")
METRICS = ["squad_em", "squad_f1", "em", "f1"]


def eval_tydiqa(
    model: str = common.ModelOpt,
    langs: Optional[str] = common.LangsOpt,
    tier: Optional[str] = common.TierOpt,
    shots: int = ShotsOpt,
    limit: Optional[int] = common.LimitOpt,
    limit_rule: str = LimitRuleOpt,
    max_new_tokens: int = MaxNewOpt,
    batch_size: str = common.BatchOpt,
    name: Optional[str] = common.NameOpt,
    out: Path = common.OutOpt,
    data_dir: Optional[Path] = common.DataDirOpt,
    seed: int = common.SeedOpt,
    dtype: str = common.DtypeOpt,
    chat_template: bool = common.ChatOpt,
    no_cache: bool = common.NoCacheOpt,
) -> None:
    """Evaluate a model on TyDiQA GoldP (SQuAD-comparable and language-aware EM/F1)."""
    task = TydiqaTask(langs=resolve_languages(langs, tier, GOLDP_LANGS), data_dir=resolve_data_dir(data_dir, required=False),
                      shots=shots, limit=limit, max_new_tokens=max_new_tokens, seed=seed,
                      limit_rule=limit_rule)
    common.check_data_files(task)
    adapter = common.load_adapter(model, batch_size, dtype, chat_template)
    task.count_tokens = adapter.count_tokens
    task.max_prompt_tokens = common.prompt_budget(adapter, max_new_tokens)
    common.run_and_print(task, adapter, name=name or common.default_name(model), out=out, seed=seed,
                         batch_size=batch_size, no_cache=no_cache, metric_names=["squad_em", "em"])


def score_tydiqa(
    predictions: Path = common.PredictionsOpt,
    langs: Optional[str] = common.LangsOpt,
    tier: Optional[str] = common.TierOpt,
    shots: int = ShotsOpt,
    limit: Optional[int] = common.LimitOpt,
    limit_rule: str = LimitRuleOpt,
    name: Optional[str] = common.NameOpt,
    out: Path = common.OutOpt,
    data_dir: Optional[Path] = common.DataDirOpt,
    seed: int = common.SeedOpt,
) -> None:
    """Score TyDiQA answers produced elsewhere (rows {"id": <upstream question id>, "output": ...})."""
    task = TydiqaTask(langs=resolve_languages(langs, tier, GOLDP_LANGS), data_dir=resolve_data_dir(data_dir, required=False),
                      shots=shots, limit=limit, seed=seed, limit_rule=limit_rule)
    adapter = ReplayAdapter.from_file(predictions, name)
    common.run_and_print(task, adapter, name=adapter.name, out=out, seed=seed, batch_size=64, metric_names=["squad_em", "em"])


def register(app: typer.Typer, eval_app: typer.Typer, score_app: typer.Typer) -> None:
    eval_app.command("tydiqa")(eval_tydiqa)
    score_app.command("tydiqa")(score_tydiqa)
