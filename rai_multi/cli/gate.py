"""``rai-multi gate``: apply a release policy; exit 0 pass, 1 fail, 2 unusable input."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from rai_multi.gate import evaluate_policy, format_table, junit_xml
from rai_multi.store import atomic_write_text


def gate(
    run_dirs: List[Path] = typer.Argument(..., help="Run directories, or folders holding them."),
    policy: Path = typer.Option(..., "--policy", help="Policy TOML with [[rule]] tables."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Baseline model name (for regression rules)."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Write JUnit XML here (one testcase per rule and slice)."),
    seed: int = typer.Option(1234, "--seed"),
) -> None:
    """Gate a release: every error rule must pass."""
    result = evaluate_policy(policy, run_dirs, baseline, seed)
    typer.echo(format_table(result))
    if junit:
        atomic_write_text(junit, junit_xml(result))
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer, eval_app: typer.Typer, score_app: typer.Typer) -> None:
    app.command("gate")(gate)
