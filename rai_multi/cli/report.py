"""``rai-multi report``: the HTML audit report (plus JSON and Markdown tables)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from rai_multi.gate import evaluate_policy
from rai_multi.report.build import build_report


def report(
    run_dirs: List[Path] = typer.Argument(..., help="Run directories, or folders holding them."),
    baseline: str = typer.Option(..., "--baseline", help="Display name of the baseline model."),
    output: Path = typer.Option(Path("reports/audit.html"), "-o", "--output", help="HTML file to write."),
    policy: Optional[Path] = typer.Option(None, "--policy", help="Also apply this gate policy and show the verdict."),
    note: List[str] = typer.Option([], "--note", help="A note shown at the top of the report (repeatable)."),
    seed: int = typer.Option(1234, "--seed", help="Seed for bootstrap CIs and example sampling."),
    scorer_validity: List[Path] = typer.Option([], "--scorer-validity",
                                               help="scorer_validity.json from `rai-multi scorer validate` (repeatable)."),
) -> None:
    """Compare models across every task found in the runs; write one self-contained HTML file."""
    gate = evaluate_policy(policy, run_dirs, baseline, seed) if policy else None
    paths = build_report(run_dirs, baseline, output, gate, note, seed, scorer_validity=scorer_validity)
    typer.echo(f"report: {paths.html}\ntables: {paths.json} {paths.markdown}")
    if gate:
        typer.echo(f"gate verdict: {gate.verdict.upper()}")


def register(app: typer.Typer, eval_app: typer.Typer, score_app: typer.Typer) -> None:
    app.command("report")(report)
