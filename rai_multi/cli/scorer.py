"""``rai-multi scorer validate | calibrate``: a toxicity scorer against Perspective."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from rai_multi.paths import data_dir as resolve_data_dir
from rai_multi.runner import DEFAULT_SEED
from rai_multi.scoring.calibration import load_calibration
from rai_multi.scoring.toxicity import SCORER_NAMES, load_scorer
from rai_multi.scoring.validate import fit_calibration, rtp_files, table, validity_report
from rai_multi.store import atomic_write_json, file_sha256

VALIDITY_FILE = "scorer_validity.json"
ScorerOpt = typer.Option("profanity-check", "--scorer", help=f"One of: {', '.join(SCORER_NAMES)}.")
CheckpointOpt = typer.Option(None, "--scorer-checkpoint", help="Local Detoxify checkpoint (.ckpt), for offline use.")
ScorerConfigOpt = typer.Option(None, "--scorer-config", help="Local HF config/tokenizer folder for the Detoxify checkpoint.")
LabelOpt = typer.Option(None, "--scorer-label", help="Toxic label name of an hf: classifier.")
RtpFileOpt = typer.Option(None, "--rtp-file", help="RTP jsonl file(s); default every .jsonl in <data dir>/realtoxicityprompts.")
DataDirOpt = typer.Option(None, "--data-dir", help="Benchmark data folder (default: $RAI_MULTI_DATA).")


def _files(rtp_file: Optional[List[Path]], data_dir: Optional[Path]) -> list[Path]:
    return [Path(f) for f in rtp_file] if rtp_file else rtp_files(resolve_data_dir(data_dir))


def validate(
    out: Path = typer.Option(..., "--out", help="Folder that receives scorer_validity.json."),
    scorer: str = ScorerOpt,
    scorer_checkpoint: Optional[Path] = CheckpointOpt,
    scorer_config: Optional[Path] = ScorerConfigOpt,
    scorer_label: Optional[str] = LabelOpt,
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Also give figures through this calibration."),
    rtp_file: Optional[List[Path]] = RtpFileOpt,
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Agreement with Perspective on every RTP prompt and continuation: Spearman, AUC, ECE, P/R at 0.5."""
    tox = load_scorer(scorer, scorer_checkpoint, scorer_config, scorer_label)
    cal = load_calibration(calibration) if calibration else None
    doc = validity_report(tox, _files(rtp_file, data_dir), cal)
    path = Path(out) / VALIDITY_FILE
    atomic_write_json(path, doc)
    typer.echo(f"scorer {doc['scorer']['name']} (weights {str(doc['scorer']['weights_hash'])[:12]}) vs Perspective, "
               f"positive = Perspective >= 0.5; scored in {doc['score_seconds']:.1f} s")
    for line in table(doc):
        typer.echo("  " + line)
    if cal is not None:
        typer.echo(f"through calibration {cal.path} ({cal.sha256[:12]}):")
        for line in table(doc["calibrated"]):
            typer.echo("  " + line)
    typer.echo(f"written: {path}")


def calibrate(
    out: Path = typer.Option(..., "--out", help="Calibration file to write (JSON)."),
    scorer: str = ScorerOpt,
    scorer_checkpoint: Optional[Path] = CheckpointOpt,
    scorer_config: Optional[Path] = ScorerConfigOpt,
    scorer_label: Optional[str] = LabelOpt,
    rtp_file: Optional[List[Path]] = RtpFileOpt,
    data_dir: Optional[Path] = DataDirOpt,
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Seed of the fit/held-out split of the RTP rows."),
) -> None:
    """Fit an isotonic map onto Perspective's scale on half the RTP rows; figures on the other half."""
    tox = load_scorer(scorer, scorer_checkpoint, scorer_config, scorer_label)
    doc = fit_calibration(tox, _files(rtp_file, data_dir), seed)
    atomic_write_json(Path(out), doc)
    typer.echo(f"isotonic calibration of {doc['scorer']['name']}: fit on {doc['fit_n']} texts, "
               f"held out {doc['heldout_n']} (seed {seed}); {len(doc['x'])} knots")
    for label in ("raw", "calibrated"):
        typer.echo(f"held-out half, {label}:")
        for line in table(doc["heldout"][label], ("all", "challenging")):
            typer.echo("  " + line)
    typer.echo(f"written: {out} (sha256 {file_sha256(Path(out))})")


def register(app: typer.Typer, eval_app: typer.Typer, score_app: typer.Typer) -> None:
    scorer_app = typer.Typer(help="Toxicity scorers against Perspective: validity figures, calibration.",
                             no_args_is_help=True)
    scorer_app.command("validate")(validate)
    scorer_app.command("calibrate")(calibrate)
    app.add_typer(scorer_app, name="scorer")
