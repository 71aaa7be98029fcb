"""One readable training loop for Flan-style instruction finetuning.

- seq2seq (T5 family): the encoder gets the input, the loss is on the target;
  causal LMs: input and target are concatenated and the loss is on target tokens only
  (prompt positions are labelled -100), so the model learns to answer, not to recite prompts;
- full finetuning or LoRA (peft), merged into a plain model directory at the end so that
  ``rai-multi eval --model DIR`` and ``audit`` take it as is (the adapter is kept too);
- length-grouped batches (less padding), gradient accumulation, bf16 autocast where the
  hardware multiplies bf16 natively (a GPU that supports it; a CPU with AVX512-BF16 or AMX);
- causal LMs compute the output layer only at the positions whose next token is a target:
  on Gemma 3 the 262k-entry head is most of the FLOPs of a token, and a few-shot prompt is
  most of the tokens of an example (the loss equals the model's own, see target_loss);
- an optional held-out slice of the mixture, scored before training, every ``eval_every``
  steps and at the end, so that a run shows whether it learned rather than memorised;
- a checkpoint every N steps (trainable weights, optimizer, schedule, RNG, step) and
  ``resume``: the data order is a pure function of the seed and the global batch size, so a
  resumed run sees exactly the batches the uninterrupted run would have seen;
- data-parallel through accelerate: under ``torchrun`` or ``accelerate launch`` each rank
  takes its own slice of every global batch (disjoint), DDP averages the gradients.

Everything that can be wrong with the inputs (model directory, LoRA targets, checkpoint,
contamination) is checked before any weights are loaded or any step is run.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from rai_multi.errors import ConfigError, ModelLoadError
from rai_multi.finetune import decontam
from rai_multi.finetune.mixture import Example, MixtureConfig, build_mixture
from rai_multi.progress import note_training
from rai_multi.store import atomic_write_json

WINDOW_BATCHES = 16  # batches sorted by length together (length grouping, still shuffled)
DEFAULT_LORA_TARGETS = (["q", "v"], ["q_proj", "v_proj"], ["query", "value"], ["c_attn"])


@dataclass
class TrainConfig:
    model: str
    out: Path
    steps: int = 100
    batch_size: int = 8         # examples per process per micro-step; global batch = this x grad_accum x processes
    grad_accum: int = 1
    lr: float = 3e-4
    warmup_steps: int = 10
    lora: bool = True
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: list[str] | None = None
    save_every: int = 50
    seed: int = 1234
    resume: bool = False
    allow_contaminated: bool = False
    drop_contaminated: bool = False
    data_dir: Path | None = None  # where the evaluation sets live (decontamination); None skips the check
    precision: str = "auto"     # auto: bf16 autocast where the hardware multiplies bf16 natively, else fp32
    heldout: int = 0            # mixture examples kept out of training and scored (mean target-token loss)
    eval_every: int = 0         # score the held-out examples every N steps too (0: before and after only)


PRECISIONS = ("auto", "bf16", "fp32")
ALL_LINEAR = "all-linear"  # peft's name for every linear layer but the output layer


@dataclass(frozen=True)
class ModelInfo:
    config: Any
    seq2seq: bool
    linear_modules: frozenset[str]  # last name component of every linear layer (what LoRA can target)


# ---------------------------------------------------------------- checks before compute
def inspect_model(model_path: str) -> ModelInfo:
    """Config and linear-layer names of a local model, from an empty (meta-device) copy: no
    weights are read, so a wrong LoRA target fails in a second even for a large model."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    path = Path(model_path)
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"model directory does not exist or has no config.json: {path}")
    try:
        config = AutoConfig.from_pretrained(path)
        seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        with init_empty_weights():
            empty = (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_config(config)
    except (ValueError, OSError, KeyError) as exc:
        raise ModelLoadError(f"{path}: not a seq2seq or causal LM transformers can build ({str(exc).splitlines()[0]})") from None
    linear_types: tuple[type, ...] = (torch.nn.Linear,)
    try:
        from transformers.pytorch_utils import Conv1D  # GPT-2 style projections

        linear_types += (Conv1D,)
    except ImportError:  # pragma: no cover
        pass
    names = frozenset(n.rsplit(".", 1)[-1] for n, m in empty.named_modules() if isinstance(m, linear_types))
    return ModelInfo(config, seq2seq, names)


def resolve_lora_targets(info: ModelInfo, requested: Sequence[str] | None) -> list[str]:
    """The requested LoRA target modules, checked against the model, or a default that fits it.
    ``["all-linear"]`` is every linear layer but the output layer (peft resolves it)."""
    if requested and list(requested) == [ALL_LINEAR]:
        return [ALL_LINEAR]
    if not requested:
        for candidates in DEFAULT_LORA_TARGETS:
            if set(candidates) <= info.linear_modules:
                return list(candidates)
        raise ConfigError("cannot guess LoRA target modules for this model: pass --lora-targets "
                          f"(its linear layers: {', '.join(sorted(info.linear_modules))})")
    missing = [t for t in requested if t not in info.linear_modules]
    if missing:
        raise ConfigError(f"LoRA target module(s) {', '.join(missing)} not found in the model; "
                          f"its linear layers: {', '.join(sorted(info.linear_modules))}")
    return list(requested)


def prepare(cfg: TrainConfig, mixture: MixtureConfig) -> tuple[list[Example], decontam.ContaminationReport]:
    """Build the mixture and check it against the evaluation sets (no model compute).

    Exact evaluation items are refused, dropped or allowed: the CLI flags win, else the
    mixture's ``on_contamination``."""
    examples = build_mixture(mixture)
    report = decontam.check(examples, decontam.eval_texts(cfg.data_dir)) if cfg.data_dir else decontam.ContaminationReport()
    policy = "drop" if cfg.drop_contaminated else "allow" if cfg.allow_contaminated else mixture.on_contamination
    if report.n_exact and policy == "drop":
        bad = {train_id for hits in report.exact_hits.values() for train_id, _ in hits}
        examples = [e for e in examples if e.id not in bad]
    elif report.n_exact and policy == "refuse":
        first = next(h for hits in report.exact_hits.values() for h in hits)
        raise ConfigError(f"the mixture contains {report.n_exact} exact evaluation item(s) (e.g. training {first[0]} holds "
                          f"{first[1]}); pass --drop-contaminated to leave them out, or --allow-contaminated")
    return examples, report


# ---------------------------------------------------------------- data order and batches
def batch_order(n_examples: int, global_batch: int, steps: int, seed: int, lengths: Sequence[int]) -> list[list[int]]:
    """Example indices of every global batch, for all steps (each epoch reshuffled), grouped
    by length inside windows of WINDOW_BATCHES batches. A pure function of its arguments, and
    a longer run's order starts with a shorter run's: that is what makes resume exact."""
    if n_examples < global_batch:
        raise ConfigError(f"the mixture has {n_examples} examples, fewer than one global batch ({global_batch})")
    batches: list[list[int]] = []
    epoch = 0
    while len(batches) < steps:
        rng = random.Random(f"{seed}|epoch{epoch}")
        order = list(range(n_examples))
        rng.shuffle(order)
        window = global_batch * WINDOW_BATCHES
        epoch_batches = []
        for start in range(0, len(order) - global_batch + 1, window):
            chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
            epoch_batches += [chunk[k : k + global_batch] for k in range(0, len(chunk) - global_batch + 1, global_batch)]
        rng.shuffle(epoch_batches)
        batches += epoch_batches
        epoch += 1
    return batches[:steps]


def encode(tokenizer: Any, examples: Sequence[Example], seq2seq: bool, max_in: int, max_out: int) -> dict[str, Any]:
    """Tensors for one micro-batch. Labels are -100 wherever no loss should be taken: target
    padding (seq2seq), and for causal models the prompt and the padding, so the loss is on
    the target tokens (and the EOS that ends them) only."""
    import torch

    if seq2seq:
        enc = tokenizer([e.input for e in examples], max_length=max_in, truncation=True, padding=True, return_tensors="pt")
        tgt = tokenizer([e.target for e in examples], max_length=max_out, truncation=True, padding=True, return_tensors="pt")
        labels = tgt["input_ids"].masked_fill(tgt["attention_mask"] == 0, -100)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}
    side = tokenizer.truncation_side
    tokenizer.truncation_side = "left"  # a long few-shot prompt loses its oldest exemplar, not the question
    try:
        prompts = tokenizer([e.input for e in examples], truncation=True, max_length=max_in)["input_ids"]
    finally:
        tokenizer.truncation_side = side
    rows, label_rows = [], []
    for e, prompt in zip(examples, prompts):
        target = tokenizer(" " + e.target, add_special_tokens=False)["input_ids"][:max_out] + [tokenizer.eos_token_id]
        rows.append(prompt + target)
        label_rows.append([-100] * len(prompt) + target)
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, lab) in enumerate(zip(rows, label_rows)):
        ids[i, : len(r)] = torch.tensor(r)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(r)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# ---------------------------------------------------------------- loss
def _bool_selection_supported() -> bool:
    """Whether this transformers takes a boolean (batch, seq) ``logits_to_keep`` (the exact
    positions of every row); older 5.x releases take only a 1-D list shared by all rows."""
    try:
        import torch
        from transformers.modeling_utils import slice_logits_to_keep
    except ImportError:
        return False
    try:
        picked = slice_logits_to_keep(torch.zeros(1, 2, 1), torch.tensor([[False, True]]))
    except Exception:  # an older signature or behaviour
        return False
    return tuple(picked.shape) == (1, 1)


def target_positions(labels: Any, exact: bool) -> Any:
    """What to pass as ``logits_to_keep`` so that the output layer runs only where the next
    token is a target: position t predicts token t + 1. ``exact``: a boolean (batch, seq)
    mask; else the positions any row needs (a 1-D tensor, the union over rows)."""
    import torch

    wanted = torch.zeros_like(labels, dtype=torch.bool)
    wanted[:, :-1] = labels[:, 1:] != -100
    return wanted if exact else wanted.any(0).nonzero().squeeze(1)


def target_loss(model: Any, batch: dict[str, Any], exact: bool) -> Any:
    """Mean cross-entropy over the target tokens of a causal batch, with logits computed only
    where a target is predicted. Equal to ``model(**batch).loss`` (which projects every
    position through the output layer first): same tokens, same mean, logits in float32."""
    import torch

    labels = batch["labels"]
    keep = target_positions(labels, exact)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep).logits
    if exact:
        shifted = torch.zeros_like(keep)
        shifted[:, 1:] = keep[:, :-1]
        targets = labels[shifted]  # row-major, as the model flattened the kept positions
    else:
        targets = labels[:, keep + 1]
    return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                             ignore_index=-100)


def resolve_precision(precision: str) -> str:
    """``auto`` -> bf16 where the hardware multiplies bf16 natively, else fp32 (the same rule
    as evaluation's ``--dtype auto``); autocast keeps fp32 master weights either way."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision != "auto":
        return precision
    from rai_multi.models.loading import resolve_dtype

    return "bf16" if resolve_dtype("auto") == "bf16" else "fp32"


def heldout_loss(model: Any, tokenizer: Any, examples: Sequence[Example], seq2seq: bool, mixture: MixtureConfig,
                 batch_size: int, device: Any, autocast: Any, exact: bool) -> float:
    """Mean target-token loss over ``examples`` (token-weighted, so batching does not change
    it), in eval mode and without gradients; the model is put back in train mode."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad(), autocast():
        for start in range(0, len(examples), batch_size):
            batch = encode(tokenizer, examples[start : start + batch_size], seq2seq, mixture.max_input_tokens,
                           mixture.max_target_tokens)
            batch = {k: v.to(device) for k, v in batch.items()}
            n = int((batch["labels"] != -100).sum())
            loss = model(**batch).loss if seq2seq else target_loss(model, batch, exact)
            total, count = total + float(loss) * n, count + n
    model.train()
    return total / max(count, 1)


# ---------------------------------------------------------------- checkpoints
def _latest_checkpoint(out: Path) -> Path | None:
    found = [p for p in (out / "checkpoints").glob("step-*") if p.name.split("-")[1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[1])) if found else None


def examples_digest(examples: Sequence[Example]) -> str:
    """SHA-256 of the training examples as the model sees them (ids, inputs, targets)."""
    return hashlib.sha256("\n".join(e.id + "|" + e.input + "|" + e.target for e in examples).encode()).hexdigest()


def split_heldout(examples: Sequence[Example], n: int) -> tuple[list[Example], list[Example]]:
    """The last ``n`` examples of the (already shuffled) mixture are held out of training."""
    if n < 0 or (n and n >= len(examples)):
        raise ConfigError(f"heldout must be from 0 to {len(examples) - 1} (the mixture has {len(examples)} examples); got {n}")
    return list(examples[: len(examples) - n]), list(examples[len(examples) - n :])


def _order_key(cfg: TrainConfig, mixture: MixtureConfig, examples: Sequence[Example], world: int,
               precision: str) -> dict[str, Any]:
    """What fixes the data order and the trained parameters; a resume must match it."""
    return {"seed": cfg.seed, "global_batch": cfg.batch_size * cfg.grad_accum * world,
            "examples_sha256": examples_digest(examples), "lora": cfg.lora, "lora_r": cfg.lora_r if cfg.lora else None,
            "max_input_tokens": mixture.max_input_tokens, "max_target_tokens": mixture.max_target_tokens,
            "precision": precision}


def _save_checkpoint(model: Any, optimizer: Any, schedule: Any, step: int, out: Path, key: dict[str, Any],
                     trained_s: float = 0.0) -> None:
    """Trainable weights + optimizer + schedule + RNG, written to a temp folder and renamed,
    so a crash mid-save never leaves a half checkpoint that --resume would pick."""
    import torch

    folder = out / "checkpoints" / f"step-{step}"
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
    torch.save({"weights": weights, "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "step": step, "torch_rng": torch.get_rng_state(), "order_key": key, "trained_s": trained_s},
               tmp / "trainer.pt")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)


def _load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (ValueError, OSError) as exc:
        raise ModelLoadError(f"{path}: cannot load its tokenizer ({str(exc).splitlines()[0]})") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None:
        raise ModelLoadError(f"{path}: the tokenizer has no EOS token (needed to end targets)")
    return tokenizer


def _truncate_log(path: Path, step: int) -> None:
    """On resume, drop log lines past the checkpoint (the interrupted run's lost steps)."""
    if path.is_file():
        kept = [line for line in path.read_text(encoding="utf-8").splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


# ---------------------------------------------------------------- the loop
def train(cfg: TrainConfig, mixture: MixtureConfig, progress: bool = True,
          prepared: tuple[list[Example], decontam.ContaminationReport] | None = None) -> Path:
    """Finetune ``cfg.model`` on ``mixture``; returns the output model directory, which also
    holds ``train_summary.json`` (where and how long it trained, losses). ``prepared``: the
    result of :func:`prepare` for this config, when the caller has it already."""
    import torch
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    # 1. every check that needs no weights and no step
    info = inspect_model(cfg.model)
    tokenizer = _load_tokenizer(cfg.model)
    targets = resolve_lora_targets(info, cfg.lora_targets) if cfg.lora else None
    out = Path(cfg.out)
    checkpoint = _latest_checkpoint(out) if cfg.resume else None
    if cfg.resume and checkpoint is None:
        raise ConfigError(f"--resume: no checkpoint under {out / 'checkpoints'}")
    precision = resolve_precision(cfg.precision)
    examples, report = prepared if prepared is not None else prepare(cfg, mixture)
    examples, held = split_heldout(examples, cfg.heldout)
    # Autocast is ours, not accelerate's mixed_precision: accelerate keeps that in a process-wide
    # singleton, so a second run in one process (an audit with two finetunes) could not change it.
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), gradient_accumulation_steps=cfg.grad_accum)
    world, rank = accelerator.num_processes, accelerator.process_index
    key = _order_key(cfg, mixture, examples, world, precision)
    state = torch.load(checkpoint / "trainer.pt", weights_only=False) if checkpoint else None
    if state is not None and state["order_key"] != key:
        changed = ", ".join(k for k in key if state["order_key"].get(k) != key[k])
        raise ConfigError(f"--resume: {checkpoint} was trained with a different {changed}; resuming would change "
                          "the data order or the parameters (use the same mixture, seed, batch size x grad-accum x processes)")
    lengths = [len(e.input) + len(e.target) for e in examples]
    order = batch_order(len(examples), key["global_batch"], cfg.steps, cfg.seed, lengths)
    if accelerator.is_main_process and progress:
        accelerator.print(f"decontamination: {report.summary()}; {len(examples)} training examples"
                          + (f", {len(held)} held out" if held else ""))

    # 2. model, optimizer, schedule (restored from the checkpoint on resume)
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    torch.manual_seed(cfg.seed)  # LoRA init and dropout
    model = (AutoModelForSeq2SeqLM if info.seq2seq else AutoModelForCausalLM).from_pretrained(cfg.model, dtype="float32")
    if cfg.lora:
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(model, LoraConfig(
            task_type=TaskType.SEQ_2_SEQ_LM if info.seq2seq else TaskType.CAUSAL_LM, r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha, target_modules=ALL_LINEAR if targets == [ALL_LINEAR] else targets,
            lora_dropout=0.0))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))
    start_step, trained_s = 0, 0.0
    if state is not None:
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        for name, tensor in state["weights"].items():
            trainable[name].data.copy_(tensor)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_step, trained_s = state["step"], state.get("trained_s", 0.0)
        torch.set_rng_state(state["torch_rng"])  # dropout continues exactly where it stopped
    model, optimizer = accelerator.prepare(model, optimizer)
    exact = _bool_selection_supported()

    def autocast() -> Any:
        return torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step_loss(batch: dict[str, Any]) -> Any:
        return model(**batch).loss if info.seq2seq else target_loss(model, batch, exact)

    def score_heldout() -> float:
        return heldout_loss(model, tokenizer, held, info.seq2seq, mixture, cfg.batch_size, accelerator.device,
                            autocast, exact)

    # 3. outputs: resolved config, per-rank log
    out.mkdir(parents=True, exist_ok=True)  # every rank: rank 1 must not race rank 0 to open its log
    log_path = out / (f"train_log.rank{rank}.jsonl" if world > 1 else "train_log.jsonl")
    if accelerator.is_main_process:
        atomic_write_json(out / "finetune_config.json", {
            "train": {**asdict(cfg), "out": str(cfg.out), "data_dir": str(cfg.data_dir), "lora_targets": targets},
            "mixture": mixture.to_json(), "order_key": key, "resumed_from_step": start_step,
            "decontamination": {"ngram_hits": report.ngram_hits, "exact_hits": report.exact_hits},
            "heldout_ids": [e.id for e in held], "precision": precision,
            "seq2seq": info.seq2seq, "world_size": world, "distributed_backend": accelerator.state.backend})
    if start_step:
        _truncate_log(log_path, start_step)

    # 4. the loop: one global batch per step, this rank's slice, grad_accum micro-batches
    note_training(out, start_step)
    model.train()
    bar = tqdm(total=cfg.steps, initial=start_step, unit="step", disable=not (progress and accelerator.is_main_process))
    started, tokens = time.time(), 0.0
    per_rank = cfg.batch_size * cfg.grad_accum
    try:
        with open(log_path, "a" if start_step else "w", encoding="utf-8") as log:
            if held and start_step == 0:
                log.write(json.dumps({"step": 0, "heldout_loss": score_heldout(), "trained_s": 0.0}) + "\n")
            for step in range(start_step, cfg.steps):
                step_started = time.time()
                mine = order[step][rank * per_rank : (rank + 1) * per_rank]  # disjoint slices of the global batch
                micro_batches = [
                    encode(tokenizer, [examples[i] for i in mine[m * cfg.batch_size : (m + 1) * cfg.batch_size]],
                           info.seq2seq, mixture.max_input_tokens, mixture.max_target_tokens)
                    for m in range(cfg.grad_accum)]
                loss_sum, step_tokens = _optimizer_step(accelerator, model, optimizer, schedule, micro_batches,
                                                        step_loss, autocast, info.seq2seq)
                both = accelerator.reduce(torch.tensor([loss_sum / cfg.grad_accum, step_tokens], device=accelerator.device),
                                          reduction="sum")
                loss_value, tokens = float(both[0]) / world, tokens + float(both[1])
                trained_s += time.time() - step_started
                elapsed = time.time() - started
                record = {"step": step + 1, "loss": loss_value, "rank_loss": loss_sum / cfg.grad_accum,
                          "lr": schedule.get_last_lr()[0], "rank": rank, "examples": [examples[i].id for i in mine],
                          "tokens_per_s": tokens / max(elapsed, 1e-9), "elapsed_s": round(elapsed, 3),
                          "trained_s": round(trained_s, 3)}
                if held and (step + 1 == cfg.steps or (cfg.eval_every and (step + 1) % cfg.eval_every == 0)):
                    record["heldout_loss"] = score_heldout()
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")  # tqdm adds ETA
                bar.update(1)
                if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
                    accelerator.wait_for_everyone()
                    if accelerator.is_main_process:
                        _save_checkpoint(accelerator.unwrap_model(model), optimizer, schedule, step + 1, out, key, trained_s)
                        note_training(out, step + 1)
    finally:  # a Ctrl-C line must start on a line of its own
        bar.close()

    # 5. a plain model directory: LoRA merged (adapter kept under adapter/), tokenizer beside it
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(model)
        if cfg.lora:
            final.save_pretrained(out / "adapter")
            final = final.merge_and_unload()
        final.save_pretrained(out)
        tokenizer.save_pretrained(out)
        atomic_write_json(out / "train_summary.json", train_summary(
            cfg, precision, accelerator.device, world, len(examples), held, log_path, trained_s, start_step))
    accelerator.wait_for_everyone()
    note_training(None)
    return out


def _optimizer_step(accelerator: Any, model: Any, optimizer: Any, schedule: Any, micro_batches: Sequence[dict[str, Any]],
                    step_loss: Any, autocast: Any, seq2seq: bool) -> tuple[float, int]:
    """One optimizer step over this rank's micro-batches (gradient accumulation through
    accelerate); returns the summed micro-batch losses and the tokens processed."""
    loss_sum, tokens = 0.0, 0
    for batch in micro_batches:
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        tokens += int(batch["attention_mask"].sum()) + (int((batch["labels"] != -100).sum()) if seq2seq else 0)
        with accelerator.accumulate(model), autocast():
            loss = step_loss(batch)
            accelerator.backward(loss)  # scaled by 1/grad_accum; DDP all-reduces on the last micro-step
            optimizer.step()            # no-ops until the last micro-step (accelerate)
            if accelerator.sync_gradients:
                schedule.step()
            optimizer.zero_grad()
        loss_sum += float(loss.detach())
    return loss_sum, tokens


def device_name(device: Any) -> str:
    """What a person would call the machine a run used: the GPU's name, or the CPU's model
    name (from /proc/cpuinfo, else the platform's processor string)."""
    import platform

    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def train_summary(cfg: TrainConfig, precision: str, device: Any, world: int, n_train: int, held: Sequence[Example],
                  log_path: Path, trained_s: float, resumed_from: int) -> dict[str, Any]:
    """Where and how a finished run trained, read back from its log: what a report shows
    beside the finetuned model (device, precision, seconds, losses)."""
    import os

    import torch

    rows = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    losses = [r["loss"] for r in rows if "loss" in r]
    heldout = [{"step": r["step"], "loss": r["heldout_loss"]} for r in rows if "heldout_loss" in r]
    tail = losses[-max(1, len(losses) // 10):]
    return {"device": str(device), "device_type": getattr(device, "type", str(device)), "device_name": device_name(device),
            "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "processes": world,
            "precision": precision, "steps": cfg.steps, "global_batch": cfg.batch_size * cfg.grad_accum * world,
            "train_examples": n_train, "heldout_examples": len(held), "lora": cfg.lora,
            "lora_r": cfg.lora_r if cfg.lora else None, "train_seconds": round(trained_s, 1),
            "resumed_from_step": resumed_from, "first_loss": losses[0] if losses else None,
            "last_loss_mean": sum(tail) / len(tail) if tail else None, "heldout": heldout,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
