"""``rai-multi langs``: the configured languages as a table."""

from __future__ import annotations

import typer

from rai_multi.languages import all_languages


def list_languages() -> None:
    """List every language config: code, name, script, tiers, digits, MGSM phrases' source."""
    header = f"{'code':<5} {'name':<12} {'native':<18} {'script':<6} {'tier':<5} {'joshi':<5} {'digits':<11} {'mgsm phrases'}"
    typer.echo(header)
    typer.echo("-" * len(header))
    for code, lang in sorted(all_languages().items()):
        phrases = lang.mgsm.source if lang.mgsm else "-"
        typer.echo(
            f"{code:<5} {lang.name:<12} {lang.native_name:<18} {lang.script:<6} {lang.tier:<5} "
            f"{lang.joshi_class:<5} {lang.native_digits or '0-9':<11} {phrases}"
        )


def register(app: typer.Typer, eval_app: typer.Typer, score_app: typer.Typer) -> None:
    app.command("langs")(list_languages)
