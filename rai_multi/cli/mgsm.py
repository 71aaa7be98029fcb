"""``rai-multi eval mgsm`` and ``rai-multi score mgsm``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rai_multi.cli import common
from rai_multi.cli.sample_opts import LimitRuleOpt
from rai_multi.languages import MGSM_LANGS, resolve_languages
from rai_multi.models.replay import ReplayAdapter
from rai_multi.paths import data_dir as resolve_data_dir
from rai_multi.sampling import check_limit_rule
from rai_multi.tasks.mgsm import SETTINGS, MgsmTask

SettingOpt = typer.Option("native_cot", "--setting", help=f"One of: {', '.join(SETTINGS)}.")
SamplesOpt = typer.Option(1, "--samples", min=1, help="Self-consistency: sampled CoT answers per question (maj@k).")
MaxNewOpt = typer.Option(None, "--max-new-tokens", min=1, help="Default 256 for CoT, 16 for direct.")
ShotsOpt = typer.Option(8, "--shots", min=0, max=8, help="Exemplars in the prompt (0-8).")


def _task(setting: str, langs: Optional[str], tier: Optional[str], limit: Optional[int], samples: int,
          max_new_tokens: Optional[int], shots: int, data_dir: Optional[Path], seed: int) -> MgsmTask:
    codes = resolve_languages(langs, tier, MGSM_LANGS)
    return MgsmTask(
        langs=codes, data_dir=resolve_data_dir(data_dir, required=False), setting=setting, limit=limit,
        samples=samples, max_new_tokens=max_new_tokens, shots=shots, seed=seed,
    )


def eval_mgsm(
    model: str = common.ModelOpt,
    setting: str = SettingOpt,
    langs: Optional[str] = common.LangsOpt,
    tier: Optional[str] = common.TierOpt,
    limit: Optional[int] = common.LimitOpt,
    limit_rule: str = LimitRuleOpt,
    samples: int = SamplesOpt,
    shots: int = ShotsOpt,
    max_new_tokens: Optional[int] = MaxNewOpt,
    batch_size: str = common.BatchOpt,
    name: Optional[str] = common.NameOpt,
    out: Path = common.OutOpt,
    data_dir: Optional[Path] = common.DataDirOpt,
    seed: int = common.SeedOpt,
    dtype: str = common.DtypeOpt,
    chat_template: bool = common.ChatOpt,
    no_cache: bool = common.NoCacheOpt,
) -> None:
    """Evaluate a model on MGSM (language-sliced accuracy with bootstrap CIs)."""
    task = _task(setting, langs, tier, limit, samples, max_new_tokens, shots, data_dir, seed)
    task.limit_rule = check_limit_rule(limit_rule)
    common.check_data_files(task)  # data errors surface before the model is loaded
    adapter = common.load_adapter(model, batch_size, dtype, chat_template)
    common.run_and_print(task, adapter, name=name or common.default_name(model), out=out, seed=seed,
                         batch_size=batch_size, no_cache=no_cache, metric_names=["accuracy", f"maj@{samples}"])


def score_mgsm(
    predictions: Path = common.PredictionsOpt,
    setting: str = SettingOpt,
    langs: Optional[str] = common.LangsOpt,
    tier: Optional[str] = common.TierOpt,
    limit: Optional[int] = common.LimitOpt,
    limit_rule: str = LimitRuleOpt,
    samples: int = SamplesOpt,
    name: Optional[str] = common.NameOpt,
    out: Path = common.OutOpt,
    data_dir: Optional[Path] = common.DataDirOpt,
    seed: int = common.SeedOpt,
) -> None:
    """Score MGSM outputs produced elsewhere (rows {"id": "mgsm/<lang>/<i>", "output": ...})."""
    task = _task(setting, langs, tier, limit, samples, None, 8, data_dir, seed)
    task.limit_rule = check_limit_rule(limit_rule)
    adapter = ReplayAdapter.from_file(predictions, name)
    common.run_and_print(task, adapter, name=adapter.name, out=out, seed=seed, batch_size=64,
                         metric_names=["accuracy", f"maj@{samples}"])


def register(app: typer.Typer, eval_app: typer.Typer, score_app: typer.Typer) -> None:
    eval_app.command("mgsm")(eval_mgsm)
    score_app.command("mgsm")(score_mgsm)
