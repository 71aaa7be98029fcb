"""``rai-multi eval toxicity | identity-toxicity | toxicity-cls`` and ``score toxicity``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from rai_multi.cli import common
from rai_multi.models.replay import ReplayAdapter
from rai_multi.paths import data_dir as resolve_data_dir
from rai_multi.scoring.calibration import load_calibration
from rai_multi.scoring.toxicity import SCORER_NAMES, load_scorer
from rai_multi.tasks.identity_toxicity import IdentityToxicityTask
from rai_multi.tasks.toxicity import DEFAULT_FILES, ToxicityTask
from rai_multi.tasks.toxicity_cls import ToxicityClsTask

ScorerOpt = typer.Option("profanity-check", "--scorer", help=f"One of: {', '.join(SCORER_NAMES)}.")
CheckpointOpt = typer.Option(None, "--scorer-checkpoint", help="Local Detoxify checkpoint (.ckpt), for offline use.")
ScorerConfigOpt = typer.Option(None, "--scorer-config", help="Local HF config/tokenizer folder for the Detoxify checkpoint.")
LabelOpt = typer.Option(None, "--scorer-label", help="Toxic label name of an hf: classifier.")
PromptsOpt = typer.Option(100, "--prompts", min=1, help="Prompts sampled (seeded) per RTP file.")
SamplesOpt = typer.Option(5, "--samples", min=1, help="Continuations per prompt (paper: 25).")
MaxNewOpt = typer.Option(20, "--max-new-tokens", min=1)
RtpFileOpt = typer.Option(None, "--rtp-file", help="RTP jsonl file(s); default toxic.jsonl and nontoxic.jsonl in the data dir.")
CalibrationOpt = typer.Option(None, "--scorer-calibration",
                              help="Calibration file from `rai-multi scorer calibrate`: metrics also given calibrated.")


def _rtp_task(scorer, rtp_file, data_dir, prompts, samples, max_new_tokens, seed, calibration=None) -> ToxicityTask:
    if rtp_file:
        files = [Path(f) for f in rtp_file]
    else:
        root = resolve_data_dir(data_dir, required=False)
        files = [root / "realtoxicityprompts" / f for f in DEFAULT_FILES] if root else []
    cal = load_calibration(calibration) if calibration else None
    return ToxicityTask(scorer, files, prompts, samples, max_new_tokens, seed=seed, calibration=cal)


def eval_toxicity(
    model: str = common.ModelOpt,
    prompts: int = PromptsOpt,
    samples: int = SamplesOpt,
    max_new_tokens: int = MaxNewOpt,
    rtp_file: Optional[List[Path]] = RtpFileOpt,
    scorer: str = ScorerOpt,
    scorer_checkpoint: Optional[Path] = CheckpointOpt,
    scorer_config: Optional[Path] = ScorerConfigOpt,
    scorer_label: Optional[str] = LabelOpt,
    scorer_calibration: Optional[Path] = CalibrationOpt,
    batch_size: str = common.BatchOpt,
    name: Optional[str] = common.NameOpt,
    out: Path = common.OutOpt,
    data_dir: Optional[Path] = common.DataDirOpt,
    seed: int = common.SeedOpt,
    dtype: str = common.DtypeOpt,
    chat_template: bool = common.ChatOpt,
    no_cache: bool = common.NoCacheOpt,
) -> None:
    """Toxic degeneration on RealToxicityPrompts (expected max toxicity, toxicity probability)."""
    tox = load_scorer(scorer, scorer_checkpoint, scorer_config, scorer_label)
    task = _rtp_task(tox, rtp_file, data_dir, prompts, samples, max_new_tokens, seed, scorer_calibration)
    common.check_data_files(task)
    adapter = common.load_adapter(model, batch_size, dtype, chat_template)
    common.run_and_print(task, adapter, name=name or common.default_name(model), out=out, seed=seed,
                         batch_size=batch_size, no_cache=no_cache)


def eval_identity_toxicity(
    model: str = common.ModelOpt,
    descriptors_per_axis: int = typer.Option(5, "--descriptors-per-axis", min=1),
    templates_per_descriptor: int = typer.Option(2, "--templates-per-descriptor", min=1),
    samples: int = typer.Option(2, "--samples", min=1, help="Continuations per prompt (paper: 50)."),
    max_new_tokens: int = MaxNewOpt,
    scorer: str = ScorerOpt,
    scorer_checkpoint: Optional[Path] = CheckpointOpt,
    scorer_config: Optional[Path] = ScorerConfigOpt,
    scorer_label: Optional[str] = LabelOpt,
    batch_size: str = common.BatchOpt,
    name: Optional[str] = common.NameOpt,
    out: Path = common.OutOpt,
    data_dir: Optional[Path] = common.DataDirOpt,
    seed: int = common.SeedOpt,
    dtype: str = common.DtypeOpt,
    chat_template: bool = common.ChatOpt,
    no_cache: bool = common.NoCacheOpt,
) -> None:
    """Toxicity of continuations of HolisticBias identity-term prompts, per axis, vs a neutral baseline."""
    tox = load_scorer(scorer, scorer_checkpoint, scorer_config, scorer_label)
    task = IdentityToxicityTask(tox, resolve_data_dir(data_dir), descriptors_per_axis, templates_per_descriptor,
                                samples, max_new_tokens, seed)
    common.check_data_files(task)
    adapter = common.load_adapter(model, batch_size, dtype, chat_template)
    common.run_and_print(task, adapter, name=name or common.default_name(model), out=out, seed=seed,
                         batch_size=batch_size, no_cache=no_cache)


def eval_toxicity_cls(
    model: str = common.ModelOpt,
    dataset: str = typer.Option("davidson", "--dataset", help="davidson (offline), civil_comments (hub) or jigsaw (a CSV)."),
    dataset_path: Optional[Path] = typer.Option(None, "--dataset-path",
                                                help="Jigsaw Unintended Bias CSV (all_data.csv, train.csv, test_*_expanded.csv)."),
    shots: int = typer.Option(0, "--shots", min=0, help="Class-balanced exemplars (even; paper: 0 and 10)."),
    limit: Optional[int] = common.LimitOpt,
    batch_size: str = common.BatchOpt,
    name: Optional[str] = common.NameOpt,
    out: Path = common.OutOpt,
    data_dir: Optional[Path] = common.DataDirOpt,
    seed: int = common.SeedOpt,
    dtype: str = common.DtypeOpt,
    chat_template: bool = common.ChatOpt,
    no_cache: bool = common.NoCacheOpt,
) -> None:
    """Toxicity classification by yes/no log-likelihood; AUC-ROC (and subgroup AUCs on CivilComments)."""
    task = ToxicityClsTask(dataset, resolve_data_dir(data_dir, required=dataset == "davidson"), shots, limit, seed,
                           path=dataset_path)
    common.check_data_files(task)
    adapter = common.load_adapter(model, batch_size, dtype, chat_template)
    common.run_and_print(task, adapter, name=name or common.default_name(model), out=out, seed=seed,
                         batch_size=batch_size, no_cache=no_cache)


def score_toxicity(
    predictions: Path = common.PredictionsOpt,
    prompts: int = PromptsOpt,
    rtp_file: Optional[List[Path]] = RtpFileOpt,
    scorer: str = ScorerOpt,
    scorer_checkpoint: Optional[Path] = CheckpointOpt,
    scorer_config: Optional[Path] = ScorerConfigOpt,
    scorer_label: Optional[str] = LabelOpt,
    scorer_calibration: Optional[Path] = CalibrationOpt,
    name: Optional[str] = common.NameOpt,
    out: Path = common.OutOpt,
    data_dir: Optional[Path] = common.DataDirOpt,
    seed: int = common.SeedOpt,
) -> None:
    """Score RTP continuations produced elsewhere (rows {"id": "rtp/<stem>/<i>", "outputs": [...]})."""
    tox = load_scorer(scorer, scorer_checkpoint, scorer_config, scorer_label)
    adapter = ReplayAdapter.from_file(predictions, name)
    task = _rtp_task(tox, rtp_file, data_dir, prompts, 1, 20, seed, scorer_calibration)
    common.run_and_print(task, adapter, name=adapter.name, out=out, seed=seed, batch_size=64)


def register(app: typer.Typer, eval_app: typer.Typer, score_app: typer.Typer) -> None:
    eval_app.command("toxicity")(eval_toxicity)
    eval_app.command("identity-toxicity")(eval_identity_toxicity)
    eval_app.command("toxicity-cls")(eval_toxicity_cls)
    score_app.command("toxicity")(score_toxicity)
