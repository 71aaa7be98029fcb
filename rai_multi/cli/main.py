"""Entry point of ``rai-multi``.

Each command group lives in its own module with a ``register(app, eval_app, score_app)``
function; this file lists them explicitly (no import-time discovery) and turns user
errors into one line on stderr and a non-zero exit, with no traceback.
"""

from __future__ import annotations

import sys

from rai_multi import progress

try:  # Ctrl-C while the command modules import (typer, and through them numpy) is one line too
    import typer

    from rai_multi.cli import audit, finetune, gate, langs, report, scorer, tasks
    from rai_multi.errors import RaiMultiError
except KeyboardInterrupt:
    print(progress.interrupted_message(), file=sys.stderr)
    sys.exit(130)

app = typer.Typer(
    name="rai-multi",
    help="Multilingual and responsible-AI evaluation of base and Flan-style language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
eval_app = typer.Typer(help="Evaluate a model on a benchmark; writes a run directory.", no_args_is_help=True)
score_app = typer.Typer(
    help="Score predictions produced elsewhere (JSONL with id and output) without a model.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")
app.add_typer(score_app, name="score")

COMMAND_MODULES = (langs, tasks, report, gate, audit, finetune, scorer)
for _module in COMMAND_MODULES:
    _module.register(app, eval_app, score_app)


def main() -> None:
    try:
        progress.reset()
        progress.install_sigint_handler()
        app()
    except RaiMultiError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (progress.Interrupted, KeyboardInterrupt):
        typer.echo(progress.interrupted_message(), err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
