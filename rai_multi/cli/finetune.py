"""``rai-multi finetune`` and ``rai-multi mixture preview``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rai_multi.errors import ConfigError
from rai_multi.finetune.mixture import RENDERINGS, build_mixture, load_mixture, preview_counts, rates, read_source
from rai_multi.paths import data_dir as resolve_data_dir

mixture_app = typer.Typer(help="Inspect Flan-style instruction mixtures.", no_args_is_help=True)


def preview(
    config: Path = typer.Argument(..., help="Mixture TOML (e.g. evals/finetune/flan_cot_mini.toml)."),
    examples: int = typer.Option(3, "--examples", min=0, help="Rendered examples to show."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    decontaminate: bool = typer.Option(True, "--decontam/--no-decontam",
                                       help="Also check the mixture against the evaluation sets (a few seconds)."),
) -> None:
    """Counts per source and rendering, the mixing rates, and a few rendered examples."""
    mixture = load_mixture(config, resolve_data_dir(data_dir))
    sizes = {s.name: len(read_source(s)) for s in mixture.sources}
    mix = rates(sizes, mixture.cap)
    built = build_mixture(mixture)
    counts = preview_counts(built)
    names = list(RENDERINGS)
    typer.echo(f"{'source':<18}{'rows':>7}{'rate':>8}" + "".join(f"{n:>18}" for n in names) + f"{'total':>8}")
    for source in mixture.sources:
        row = counts.get(source.name, {})
        typer.echo(f"{source.name:<18}{sizes[source.name]:>7}{mix[source.name]:>8.3f}"
                   + "".join(f"{row.get(n, 0):>18}" for n in names) + f"{sum(row.values()):>8}")
    typer.echo(f"total examples: {len(built)} (asked for {mixture.total_examples}; cap {mixture.cap}; "
               f"rendering shares {', '.join(f'{n} {mixture.renderings.get(n, 0):g}' for n in names)})")
    if decontaminate:
        from rai_multi.finetune import decontam

        report = decontam.check(built, decontam.eval_texts(resolve_data_dir(data_dir)))
        typer.echo(f"decontamination: {report.summary()}; on exact hits: {mixture.on_contamination}")
    for example in built[:examples]:
        typer.echo(f"\n--- {example.id} [{example.rendering}, template {example.template}]\n{example.input}\n>>> {example.target}")


def finetune(
    config: Path = typer.Argument(..., help="Mixture TOML."),
    model: str = typer.Option(..., "--model", "-m", help="Local model directory (seq2seq or causal)."),
    out: Path = typer.Option(..., "--out", help="Output model directory."),
    steps: int = typer.Option(100, "--steps", min=1),
    batch_size: int = typer.Option(8, "--batch-size", min=1,
                                   help="Examples per process per micro-step; global batch = this x grad-accum x processes."),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1, help="Micro-steps per optimizer step."),
    lr: float = typer.Option(3e-4, "--lr"),
    warmup_steps: int = typer.Option(10, "--warmup-steps", min=0, help="Linear learning-rate warmup."),
    lora: bool = typer.Option(True, "--lora/--full", help="LoRA (default; merged into the output) or full finetuning."),
    lora_r: int = typer.Option(8, "--lora-r"),
    lora_targets: Optional[str] = typer.Option(None, "--lora-targets",
                                               help="Comma-separated module names (e.g. q,v), or all-linear."),
    save_every: int = typer.Option(50, "--save-every", min=1),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint in --out."),
    allow_contaminated: bool = typer.Option(False, "--allow-contaminated", help="Train even on exact evaluation items."),
    drop_contaminated: bool = typer.Option(False, "--drop-contaminated", help="Leave exact evaluation items out and train."),
    seed: int = typer.Option(1234, "--seed"),
    precision: str = typer.Option("auto", "--precision",
                                  help="auto (bf16 autocast where the hardware multiplies bf16 natively), bf16 or fp32."),
    heldout: int = typer.Option(0, "--heldout", min=0,
                                help="Keep the mixture's last N examples out of training and log their loss."),
    eval_every: int = typer.Option(0, "--eval-every", min=0, help="Also score the held-out examples every N steps."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
) -> None:
    """Flan-style instruction finetuning; the output directory works with `rai-multi eval --model`."""
    from rai_multi.finetune.train import TrainConfig, train

    if allow_contaminated and drop_contaminated:
        raise ConfigError("--allow-contaminated and --drop-contaminated exclude each other")
    root = resolve_data_dir(data_dir)
    mixture = load_mixture(config, root)
    cfg = TrainConfig(model=model, out=out, steps=steps, batch_size=batch_size, grad_accum=grad_accum,
                      lr=lr, warmup_steps=warmup_steps, lora=lora, lora_r=lora_r, lora_alpha=2 * lora_r,
                      lora_targets=[t.strip() for t in lora_targets.split(",")] if lora_targets else None,
                      save_every=save_every, seed=seed, resume=resume, allow_contaminated=allow_contaminated,
                      drop_contaminated=drop_contaminated, data_dir=root, precision=precision, heldout=heldout,
                      eval_every=eval_every)
    path = train(cfg, mixture)
    typer.echo(f"model: {path}")


def register(app: typer.Typer, eval_app: typer.Typer, score_app: typer.Typer) -> None:
    app.command("finetune")(finetune)
    mixture_app.command("preview")(preview)
    app.add_typer(mixture_app, name="mixture")
