"""CLI options that choose which items a limited run evaluates (see rai_multi.sampling)."""

from __future__ import annotations

import typer

from rai_multi.sampling import DEFAULT_LIMIT_RULE, LIMIT_RULES

LimitRuleOpt = typer.Option(
    DEFAULT_LIMIT_RULE, "--limit-rule",
    help=f"How --limit picks items: {' or '.join(LIMIT_RULES)} (stratified: a seeded sample spread over the "
         "benchmark's strata; head: the first N of each file).")
CategoriesOpt = typer.Option(
    None, "--categories",
    help="BBQ categories, comma-separated (default: the full-BBQ ones; bbq_lite-only ones only when named).")


def split_list(raw: str | None) -> list[str] | None:
    """``"a, b"`` -> ``["a", "b"]``; None or blank -> None."""
    names = [x.strip() for x in (raw or "").split(",") if x.strip()]
    return names or None
