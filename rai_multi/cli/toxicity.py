"""CLI commands for toxicity (being written)."""

from __future__ import annotations

import typer


def register(app: typer.Typer, eval_app: typer.Typer, score_app: typer.Typer) -> None:
    """Add this module's commands to the app."""
