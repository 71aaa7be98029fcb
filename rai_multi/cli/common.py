"""Pieces every command shares: batch sizes, model loading, running and printing."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import typer

from rai_multi.errors import ConfigError
from rai_multi.models.base import ModelAdapter
from rai_multi.records import Metric
from rai_multi.runner import DEFAULT_SEED, RunOptions, Shard, evaluate
from rai_multi.store import RunDir
from rai_multi.tasks.base import Task

def parse_batch_size(value: str | int | None) -> int | None:
    """``auto`` (None: the model adapter sizes each batch) or a positive number of rows."""
    if value is None or str(value).strip().lower() == "auto":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        try:
            number = int(str(value).strip())
        except ValueError:
            number = 0
    if number < 1:
        raise ConfigError(f"--batch-size must be a positive whole number or 'auto'; got {value!r}")
    return number


def default_name(model: str) -> str:
    """Display name derived from a model path or hub id (last path component); a backend
    prefix (``vllm:``, ``openai:``) is dropped."""
    for prefix in ("openai-chat:", "openai:", "vllm:"):
        if model.startswith(prefix):
            model = model[len(prefix):]
            break
    path = Path(model.rstrip("/"))
    return path.stem if path.suffix == ".gguf" else path.name


def load_adapter(model: str, batch_size: str | int | None, dtype: str = "auto",
                 chat_template: bool = False, **fields: object) -> ModelAdapter:
    """The model behind ``model``, parsed into the one model spec suites use too
    (models/spec.py: hf, ``vllm:``, ``openai:``, ``openai-chat:``; ``demo:<name>``
    resolves to the demo model's file), with every field checked before anything loads.
    ``fields`` are the other spec fields (base_url, api_key_env, concurrency, ...)."""
    from rai_multi.models.spec import load_backend, parse_model

    size = parse_batch_size(batch_size)
    spec = parse_model(model, batch_size=size, dtype=dtype, chat_template=chat_template, **fields)
    return load_backend(spec)


def check_data_files(task: Task) -> None:
    """Fail on a missing data file before spending time on loading a model."""
    from rai_multi.paths import require_file

    for path in task.data_files():
        require_file(Path(path), f"{task.name} data file")


def print_metrics(run_dir: Path, names: Sequence[str] | None = None, max_rows: int = 40) -> None:
    """Short table of a finished run's metrics on stdout, then the run directory."""
    doc = RunDir(run_dir).read_metrics()
    rows = [
        m for m in doc["metrics"]
        if (names is None or m["name"] in names) and not m["slice"].startswith("joshi=")
    ]
    typer.echo(f"{doc['task']} {doc['setting']} [{doc['model']}]")
    for m in rows[:max_rows]:
        ci = m["ci"]
        ci_text = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        typer.echo(f"  {m['name']:<28} {m['slice']:<22} {m['value']:>8.4f} {ci_text:<18} n={m['n']}")
    if len(rows) > max_rows:
        typer.echo(f"  ... {len(rows) - max_rows} more in metrics.json")
    typer.echo(f"run directory: {run_dir}")


def run_and_print(
    task: Task,
    adapter: ModelAdapter,
    *,
    name: Optional[str],
    out: Path,
    seed: int,
    batch_size: str | int | None,
    no_cache: bool = False,
    metric_names: Sequence[str] | None = None,
) -> Path:
    options = RunOptions(
        out_dir=out, name=name or adapter.name, seed=seed, batch_size=parse_batch_size(batch_size),
        use_cache=not no_cache
    )
    run_dir = evaluate(task, adapter, options)
    if Shard.from_env().rank == 0:  # other data-parallel ranks only generate
        print_metrics(run_dir, metric_names)
    return run_dir


def summarize(metrics: Sequence[Metric]) -> str:
    return ", ".join(f"{m.name}[{m.slice}]={m.value:.3f}" for m in metrics)
