"""What a run has kept so far, for the one line Ctrl-C prints.

The runner records here, after every committed chunk, how many answers of which task are
safe in the generation cache; ``rai-multi``'s entry point reads it when interrupted. A
process-wide note rather than an argument because the interrupt can land anywhere (in
the middle of importing torch, loading a model, or a decode step).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Kept:
    task: str = ""
    cached: int = 0
    total: int = 0
    cache: Path | None = None
    finished_runs: int = 0
    training: Path | None = None  # a finetune's output folder while it trains
    checkpoint_step: int = 0      # its last saved checkpoint (0: none yet)


_KEPT = Kept()


def reset() -> None:
    global _KEPT
    _KEPT = Kept()


def note_answers(task: str, cached: int, total: int, cache: Path | None) -> None:
    """``cached`` of ``total`` answers of ``task`` are committed (to ``cache``; None: not cached)."""
    _KEPT.task, _KEPT.cached, _KEPT.total, _KEPT.cache = task, cached, total, cache


def note_finished_run() -> None:
    _KEPT.finished_runs += 1


def note_training(folder: Path | None, checkpoint_step: int = 0) -> None:
    """A finetune is training into ``folder`` (None: it finished), its checkpoints saved up
    to ``checkpoint_step``."""
    _KEPT.training, _KEPT.checkpoint_step = folder, checkpoint_step


def interrupted_message() -> str:
    """One line: what was kept and that the same command resumes."""
    k = _KEPT
    parts = []
    if k.finished_runs:
        parts.append(f"{k.finished_runs} finished run(s) are in place")
    if k.training is not None:
        parts.append(f"the finetune in {k.training} keeps its checkpoint of step {k.checkpoint_step} (an audit "
                     "resumes from it; `rai-multi finetune` needs --resume)" if k.checkpoint_step
                     else f"the finetune in {k.training} had saved no checkpoint yet")
    if k.task and k.cache is not None:
        parts.append(f"{k.cached} of {k.total} answers of {k.task} are kept in {k.cache}")
    elif k.task:
        parts.append(f"{k.task} was not cached (--no-cache or replayed predictions), so it starts over")
    if not parts:
        parts.append("nothing was lost (no run had started) and finished runs are untouched")
    return f"interrupted: {'; '.join(parts)}; run the same command again to resume"


class Interrupted(BaseException):
    """Ctrl-C, raised by :func:`install_sigint_handler`'s handler instead of KeyboardInterrupt:
    click/typer turn a KeyboardInterrupt into a silent exit, so the entry point could not
    say what was kept."""


def _on_sigint(signum: int, frame: object) -> None:
    raise Interrupted()


def install_sigint_handler() -> None:
    import signal

    signal.signal(signal.SIGINT, _on_sigint)
