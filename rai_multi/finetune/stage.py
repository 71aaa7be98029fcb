"""The audit's finetune stage: a suite's ``[[model]]`` row can be a Flan-style finetune of
another row, trained before the audit evaluates it and cached by what decides its weights.

Why a stage of the audit and not a separate command: the paper's claim is about a base
model and *its own* instruction-finetuned version, so the comparison a user wants is "this
base, and what this mixture makes of it", in one reproducible command. The trained model
lands in ``<model cache>/finetune-<key>``, where the key hashes the base weights'
fingerprint, the training examples as the model sees them (after decontamination), and
every setting that changes the trained weights. A second audit finds the folder complete and
trains nothing; an audit killed mid-training resumes from the last checkpoint (the data
order is a pure function of the seed, train.batch_order). The folder counts as finished
only once ``finetune_complete.json`` is written, after the model, so a half-written model
is never evaluated.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rai_multi.errors import ConfigError, ModelLoadError
from rai_multi.records import canonical_json, sha256_text

COMPLETE = "finetune_complete.json"
STAGE_VERSION = "1"  # bump when the trainer changes what a config's weights are


@dataclass(frozen=True)
class FinetuneSpec:
    """A suite row's ``finetune = {...}`` table: which row to finetune, on which mixture,
    and how. Defaults are the ones measured for Gemma 3 270M on a 2-core CPU (README)."""

    of: str
    mixture: Path
    steps: int
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 3e-4
    warmup_steps: int = 10
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int | None = None  # None: 2 x lora_r
    lora_targets: tuple[str, ...] | None = None  # None: the trainer's default for the model; ("all-linear",)
    precision: str = "auto"
    heldout: int = 0
    eval_every: int = 0
    save_every: int = 25
    seed: int | None = None  # None: the suite's seed

    def describe(self) -> str:
        method = f"LoRA r={self.lora_r} ({', '.join(self.lora_targets) if self.lora_targets else 'default targets'})" \
            if self.lora else "full finetuning"
        return f"{method} of {self.of} on {self.mixture.name}, {self.steps} steps x {self.batch_size * self.grad_accum}"


_INT_FIELDS = {"steps": 1, "batch_size": 1, "grad_accum": 1, "warmup_steps": 0, "lora_r": 1, "lora_alpha": 1,
               "heldout": 0, "eval_every": 0, "save_every": 1, "seed": 0}
FINETUNE_KEYS = {"of", "mixture", "lr", "lora", "lora_targets", "precision", *_INT_FIELDS}


def parse_finetune(raw: Any, where: str, suite_dir: Path) -> FinetuneSpec:
    """Check a ``finetune`` table of a suite row; every mistake is one ConfigError naming the
    row and the key, raised when the suite is read (before any model loads)."""
    from rai_multi.finetune.train import PRECISIONS

    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'finetune' must be a table, e.g. finetune = {{ of = \"base\", "
                          "mixture = \"finetune/mix.toml\", steps = 100 }")
    unknown = set(raw) - FINETUNE_KEYS
    if unknown:
        raise ConfigError(f"{where}: finetune: unknown key(s) {', '.join(sorted(unknown))}; "
                          f"allowed: {', '.join(sorted(FINETUNE_KEYS))}")
    for key in ("of", "mixture", "steps"):
        if key not in raw:
            raise ConfigError(f"{where}: finetune needs '{key}'")
    for key in ("of", "mixture"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise ConfigError(f"{where}: finetune.{key} must be a non-empty string")
    values: dict[str, Any] = {}
    for key, minimum in _INT_FIELDS.items():
        if key in raw:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"{where}: finetune.{key} must be a whole number >= {minimum}; got {value!r}")
            values[key] = value
    if "lr" in raw:
        lr = raw["lr"]
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < 1:
            raise ConfigError(f"{where}: finetune.lr must be a number between 0 and 1; got {lr!r}")
        values["lr"] = float(lr)
    if "lora" in raw:
        if not isinstance(raw["lora"], bool):
            raise ConfigError(f"{where}: finetune.lora must be true or false")
        values["lora"] = raw["lora"]
    if "lora_targets" in raw:
        targets = raw["lora_targets"]
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
            raise ConfigError(f"{where}: finetune.lora_targets must be \"all-linear\" or a list of module names")
        values["lora_targets"] = tuple(targets)
    if "precision" in raw:
        if raw["precision"] not in PRECISIONS:
            raise ConfigError(f"{where}: finetune.precision must be one of {', '.join(PRECISIONS)}; got {raw['precision']!r}")
        values["precision"] = raw["precision"]
    mixture = Path(raw["mixture"])
    mixture = mixture if mixture.is_absolute() else suite_dir / mixture
    if not mixture.is_file():
        raise ConfigError(f"{where}: finetune.mixture: no such file {mixture}")
    return FinetuneSpec(of=raw["of"], mixture=mixture, **values)


# ---------------------------------------------------------------- the base model's weights
def local_weights(source: str, revision: str | None = None) -> tuple[Path, str]:
    """A local transformers folder holding the base model, and its fingerprint: ``demo:``
    names and ``.gguf`` files are dequantised once (models.loading.convert_gguf), a hub id
    is downloaded to the hub cache (users with the internet), a folder is used as it is."""
    from rai_multi.demo_models import resolve_demo_model
    from rai_multi.models.loading import convert_gguf, directory_fingerprint
    from rai_multi.store import file_sha256

    path = Path(resolve_demo_model(source)).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"model file does not exist: {path}")
        return convert_gguf(path), f"gguf:{file_sha256(path)[:32]}"
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"not a model directory (no config.json): {path}")
        return path, directory_fingerprint(path)
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(source, revision=revision))
    except Exception as exc:  # offline, unknown id, gated repo: huggingface_hub raises many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot fetch {source!r} to finetune it (offline or unknown hub id? "
                             f"give a local directory): {first}") from None
    return folder, directory_fingerprint(folder)


# ---------------------------------------------------------------- the stage
@dataclass(frozen=True)
class FinetuneOutcome:
    path: Path                # the finished model folder (what the audit evaluates)
    summary: dict[str, Any]   # train_summary.json: device, precision, seconds, losses
    cached: bool              # True: found complete, nothing trained now


def stage_key(base_fingerprint: str, examples_sha256: str, settings: dict[str, Any]) -> str:
    """What decides a finetune's weights, hashed: the folder name of its result."""
    return sha256_text(canonical_json({"stage": STAGE_VERSION, "base": base_fingerprint,
                                       "examples": examples_sha256, "train": settings}))


def train_config(spec: FinetuneSpec, base: Path, out: Path, seed: int, data_dir: Path) -> Any:
    from rai_multi.finetune.train import TrainConfig

    return TrainConfig(model=str(base), out=out, steps=spec.steps, batch_size=spec.batch_size,
                       grad_accum=spec.grad_accum, lr=spec.lr, warmup_steps=spec.warmup_steps, lora=spec.lora,
                       lora_r=spec.lora_r, lora_alpha=spec.lora_alpha or 2 * spec.lora_r,
                       lora_targets=list(spec.lora_targets) if spec.lora_targets else None,
                       save_every=spec.save_every, seed=seed, data_dir=data_dir, precision=spec.precision,
                       heldout=spec.heldout, eval_every=spec.eval_every)


def _settings(cfg: Any, precision: str) -> dict[str, Any]:
    """The training settings that change the weights (not where they are written, not how
    often checkpoints are saved or the held-out set is scored)."""
    fields = dataclasses.asdict(cfg)
    for transient in ("model", "out", "save_every", "resume", "data_dir", "eval_every", "allow_contaminated",
                      "drop_contaminated"):
        fields.pop(transient)
    fields["precision"] = precision
    return fields


def ensure_finetuned(spec: FinetuneSpec, base_source: str, data_dir: Path, seed: int,
                     revision: str | None = None, echo: Callable[[str], None] = print) -> FinetuneOutcome:
    """The finetuned model folder for ``spec``: found complete in the model cache, or trained
    now (resuming a killed run from its last checkpoint)."""
    from rai_multi.finetune.mixture import load_mixture
    from rai_multi.finetune.train import (
        _latest_checkpoint, examples_digest, prepare, resolve_precision, split_heldout, train,
    )
    from rai_multi.models.loading import model_cache_dir
    from rai_multi.store import atomic_write_json, read_json

    mixture = load_mixture(spec.mixture, data_dir)
    base, fingerprint = local_weights(base_source, revision)
    run_seed = spec.seed if spec.seed is not None else seed
    cfg = train_config(spec, base, Path(), run_seed, data_dir)
    prepared = prepare(cfg, mixture)
    split_heldout(prepared[0], spec.heldout)  # a heldout too large fails before the key is made
    precision = resolve_precision(spec.precision)
    key = stage_key(fingerprint, examples_digest(prepared[0]), {**_settings(cfg, precision),
                                                                "mixture_seed": mixture.seed})
    out = model_cache_dir() / f"finetune-{key[:16]}"
    if (out / COMPLETE).is_file():
        return FinetuneOutcome(out, read_json(out / "train_summary.json"), cached=True)
    resume = _latest_checkpoint(out) is not None
    echo(f"finetuning {spec.of} into {out}: {spec.describe()}" + (" (resuming)" if resume else ""))
    train(dataclasses.replace(cfg, out=out, resume=resume), mixture, prepared=prepared)
    summary = read_json(out / "train_summary.json")
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # the finished model makes them redundant
    atomic_write_json(out / COMPLETE, {"key": key, "base": fingerprint, "base_source": base_source,
                                       "mixture": str(spec.mixture), "settings": _settings(cfg, precision),
                                       "pid": os.getpid()})
    return FinetuneOutcome(out, summary, cached=False)


def report_note(name: str, spec: FinetuneSpec, outcome: FinetuneOutcome) -> str:
    """One line for the audit report: what the finetuned model is and where it was trained."""
    s = outcome.summary
    where = f"{s['device_type'].upper() if s['device_type'] == 'cuda' else s['device_type']} ({s['device_name']}"
    where += f", {s['cpu_threads']} threads)" if s["device_type"] == "cpu" else ")"
    held = s.get("heldout") or []
    loss = (f"; held-out loss {held[0]['loss']:.3f} -> {held[-1]['loss']:.3f} on {s['heldout_examples']} mixture "
            "examples it did not train on") if len(held) >= 2 else ""
    cached = "; reused from the model cache" if outcome.cached else ""
    seen, pool = s["steps"] * s["global_batch"], s["train_examples"]
    data = f"{seen} of its {pool} training examples" if seen <= pool else f"{pool} training examples, {seen / pool:.1f} epochs"
    return (f"{name}: {spec.describe()} ({data}, {s['precision']}), trained on "
            f"{where} in {s['train_seconds']:.0f} s, finished {s['finished_at']}{loss}{cached}.")
