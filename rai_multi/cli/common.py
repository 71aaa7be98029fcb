"""Pieces every command shares: option types, model loading, running and printing."""

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

ModelOpt = typer.Option(..., "--model", "-m", help="Local model directory, GGUF file, or hub id.")
LangsOpt = typer.Option(None, "--langs", help="Comma-separated language codes (default: all of the task's).")
TierOpt = typer.Option(None, "--tier", help="Only languages of this tier: high, low or en.")
LimitOpt = typer.Option(None, "--limit", min=1, help="At most N items per language (or per file).")


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


BatchOpt = typer.Option("auto", "--batch-size",
                        help="Prompts per decode batch (pairs per forward when scoring), or 'auto': sized by "
                             "prompt length (16-64 on a CPU).")
NameOpt = typer.Option(None, "--name", help="Display name of the model in run dirs and reports.")
OutOpt = typer.Option(Path("runs"), "--out", help="Folder that receives run directories.")
DataDirOpt = typer.Option(None, "--data-dir", help="Benchmark data folder (default: $RAI_MULTI_DATA).")
SeedOpt = typer.Option(DEFAULT_SEED, "--seed", help="The one seed (sampling, exemplars, bootstrap).")
DtypeOpt = typer.Option("auto", "--dtype", help="fp32, bf16, int8 (dynamic) or auto.")
ChatOpt = typer.Option(False, "--chat-template/--no-chat-template", help="Wrap prompts in the model's chat template.")
NoCacheOpt = typer.Option(False, "--no-cache", help="Ignore and do not fill the generation cache.")
PredictionsOpt = typer.Option(..., "--predictions", "-p", help='JSONL of {"id": ..., "output": ...} rows.')


def default_name(model: str) -> str:
    """Display name derived from a model path or hub id (last path component)."""
    path = Path(model.rstrip("/"))
    return path.stem if path.suffix == ".gguf" else path.name


def load_adapter(model: str, batch_size: str | int | None, dtype: str = "auto",
                 chat_template: bool = False) -> ModelAdapter:
    from rai_multi.demo_models import resolve_demo_model
    from rai_multi.models.loading import load_model

    demo = model[len("demo:"):] if model.startswith("demo:") else None  # demo:<name>, as in audit suites
    return load_model(resolve_demo_model(model), batch_size=parse_batch_size(batch_size), dtype=dtype,
                      chat_template=chat_template, name=demo)


def prompt_budget(adapter: ModelAdapter, max_new_tokens: int) -> int | None:
    """Prompt tokens a model can take: its window, less the new tokens for decoder-only models."""
    window = adapter.max_context
    if window is None:
        return None
    return window if adapter.description().get("seq2seq") else max(1, window - max_new_tokens)


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
