"""The audit's one-line progress report: task i of n, items done, time left.

An audit runs every task for every model, one model after the other. The ETA is the
items still to do times the pace so far (seconds per item). Item counts of tasks not yet
run are known once the first model has run them (every model gets the same items); until
then a task not yet seen counts as the mean size of the tasks seen so far.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass
class AuditProgress:
    """Counts finished (model, task) runs; ``done`` returns the progress line."""

    n_models: int
    n_tasks: int  # benchmark runs per model
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)
    finished: int = field(init=False, default=0)
    items: int = field(init=False, default=0)
    sizes: dict[int, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.started = self.clock()

    @property
    def total(self) -> int:
        return self.n_models * self.n_tasks

    def remaining_items(self) -> float:
        """Items of the runs not yet done (a task not seen yet: the mean seen size)."""
        mean = sum(self.sizes.values()) / len(self.sizes) if self.sizes else 0.0
        return sum(self.sizes.get(k % self.n_tasks, mean) for k in range(self.finished, self.total))

    def done(self, label: str, n_items: int) -> str:
        """Record the next run (``label``: model and task) as finished with ``n_items``."""
        self.sizes.setdefault(self.finished % self.n_tasks, n_items)
        self.finished += 1
        self.items += n_items
        elapsed = self.clock() - self.started
        if self.finished == self.total:
            eta = "done"
        elif self.items:
            eta = f"ETA {_duration(self.remaining_items() * elapsed / self.items)}"
        else:
            eta = "ETA unknown"
        return (f"[audit] task {self.finished} of {self.total} done: {label} ({n_items} items); "
                f"{self.items} items done, {_duration(elapsed)} elapsed, {eta}")
