"""``rai-multi audit SUITE.toml``: evaluate, report and gate in one command."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from rai_multi.audit import run_audit
from rai_multi.suite import load_suite


def audit(
    suite: Path = typer.Argument(..., help="Suite TOML (see evals/demo.toml, paper.toml, full.toml)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Override the suite's baseline model name."),
    candidate: List[str] = typer.Option([], "--candidate", help="Only these candidate models (repeatable)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Override every task's item limit."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory root (default: the suite's)."),
    report: Optional[Path] = typer.Option(None, "--report", help="HTML report path (default: the suite's)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Benchmark data (default: $RAI_MULTI_DATA, else samples)."),
) -> None:
    """Audit candidates against a baseline; exit code as `rai-multi gate`."""
    result = run_audit(load_suite(suite), baseline, candidate, limit, out, report, data_dir)
    typer.echo(f"report: {result.report.html.resolve()}")
    if result.gate is not None:
        typer.echo(f"gate verdict: {result.gate.verdict.upper()} "
                   f"({result.gate.n_failed_errors} failing error rule(s), {result.gate.n_failed_warnings} warning(s))")
    else:
        typer.echo("gate verdict: none (the suite names no policy)")
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer, eval_app: typer.Typer, score_app: typer.Typer) -> None:
    app.command("audit")(audit)
