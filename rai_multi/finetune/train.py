"""One readable training loop for Flan-style instruction finetuning.

- seq2seq (T5 family): the encoder gets the input, the loss is on the target;
  causal LMs: input and target are concatenated and the loss is on target tokens only
  (prompt positions are labelled -100), so the model learns to answer, not to recite prompts;
- full finetuning or LoRA (peft), merged into a plain model directory at the end so that
  ``rai-multi eval --model DIR`` and ``audit`` take it as is (the adapter is kept too);
- length-grouped batches (less padding), gradient accumulation, bf16 autocast where the
  hardware has it;
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
    """The requested LoRA target modules, checked against the model, or a default that fits it."""
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


# ---------------------------------------------------------------- checkpoints
def _latest_checkpoint(out: Path) -> Path | None:
    found = [p for p in (out / "checkpoints").glob("step-*") if p.name.split("-")[1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[1])) if found else None


def _order_key(cfg: TrainConfig, mixture: MixtureConfig, examples: Sequence[Example], world: int) -> dict[str, Any]:
    """What fixes the data order and the trained parameters; a resume must match it."""
    digest = hashlib.sha256("\n".join(e.id + "|" + e.input + "|" + e.target for e in examples).encode()).hexdigest()
    return {"seed": cfg.seed, "global_batch": cfg.batch_size * cfg.grad_accum * world, "examples_sha256": digest,
            "lora": cfg.lora, "lora_r": cfg.lora_r if cfg.lora else None, "max_input_tokens": mixture.max_input_tokens,
            "max_target_tokens": mixture.max_target_tokens}


def _save_checkpoint(model: Any, optimizer: Any, schedule: Any, step: int, out: Path, key: dict[str, Any]) -> None:
    """Trainable weights + optimizer + schedule + RNG, written to a temp folder and renamed,
    so a crash mid-save never leaves a half checkpoint that --resume would pick."""
    import torch

    folder = out / "checkpoints" / f"step-{step}"
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
    torch.save({"weights": weights, "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "step": step, "torch_rng": torch.get_rng_state(), "order_key": key}, tmp / "trainer.pt")
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
def train(cfg: TrainConfig, mixture: MixtureConfig, progress: bool = True) -> Path:
    """Finetune ``cfg.model`` on ``mixture``; returns the output model directory."""
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
    examples, report = prepare(cfg, mixture)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), gradient_accumulation_steps=cfg.grad_accum,
                              mixed_precision="bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no")
    world, rank = accelerator.num_processes, accelerator.process_index
    key = _order_key(cfg, mixture, examples, world)
    state = torch.load(checkpoint / "trainer.pt", weights_only=False) if checkpoint else None
    if state is not None and state["order_key"] != key:
        changed = ", ".join(k for k in key if state["order_key"].get(k) != key[k])
        raise ConfigError(f"--resume: {checkpoint} was trained with a different {changed}; resuming would change "
                          "the data order or the parameters (use the same mixture, seed, batch size x grad-accum x processes)")
    lengths = [len(e.input) + len(e.target) for e in examples]
    order = batch_order(len(examples), key["global_batch"], cfg.steps, cfg.seed, lengths)
    if accelerator.is_main_process and progress:
        accelerator.print(f"decontamination: {report.summary()}; {len(examples)} training examples")

    # 2. model, optimizer, schedule (restored from the checkpoint on resume)
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    torch.manual_seed(cfg.seed)  # LoRA init and dropout
    model = (AutoModelForSeq2SeqLM if info.seq2seq else AutoModelForCausalLM).from_pretrained(cfg.model, dtype="float32")
    if cfg.lora:
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(model, LoraConfig(
            task_type=TaskType.SEQ_2_SEQ_LM if info.seq2seq else TaskType.CAUSAL_LM, r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha, target_modules=targets, lora_dropout=0.0))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))
    start_step = 0
    if state is not None:
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        for name, tensor in state["weights"].items():
            trainable[name].data.copy_(tensor)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_step = state["step"]
        torch.set_rng_state(state["torch_rng"])  # dropout continues exactly where it stopped
    model, optimizer = accelerator.prepare(model, optimizer)

    # 3. outputs: resolved config, per-rank log
    out.mkdir(parents=True, exist_ok=True)  # every rank: rank 1 must not race rank 0 to open its log
    log_path = out / (f"train_log.rank{rank}.jsonl" if world > 1 else "train_log.jsonl")
    if accelerator.is_main_process:
        atomic_write_json(out / "finetune_config.json", {
            "train": {**asdict(cfg), "out": str(cfg.out), "data_dir": str(cfg.data_dir), "lora_targets": targets},
            "mixture": mixture.to_json(), "order_key": key, "resumed_from_step": start_step,
            "decontamination": {"ngram_hits": report.ngram_hits, "exact_hits": report.exact_hits},
            "seq2seq": info.seq2seq, "world_size": world, "distributed_backend": accelerator.state.backend})
    if start_step:
        _truncate_log(log_path, start_step)

    # 4. the loop: one global batch per step, this rank's slice, grad_accum micro-batches
    model.train()
    bar = tqdm(total=cfg.steps, initial=start_step, unit="step", disable=not (progress and accelerator.is_main_process))
    started, tokens = time.time(), 0.0
    per_rank = cfg.batch_size * cfg.grad_accum
    with open(log_path, "a" if start_step else "w", encoding="utf-8") as log:
        for step in range(start_step, cfg.steps):
            mine = order[step][rank * per_rank : (rank + 1) * per_rank]  # disjoint slices of the global batch
            loss_sum, step_tokens = 0.0, 0
            for micro in range(cfg.grad_accum):
                part = [examples[i] for i in mine[micro * cfg.batch_size : (micro + 1) * cfg.batch_size]]
                batch = encode(tokenizer, part, info.seq2seq, mixture.max_input_tokens, mixture.max_target_tokens)
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                step_tokens += int(batch["attention_mask"].sum()) + (int((batch["labels"] != -100).sum()) if info.seq2seq else 0)
                with accelerator.accumulate(model), accelerator.autocast():
                    loss = model(**batch).loss
                    accelerator.backward(loss)  # scaled by 1/grad_accum; DDP all-reduces on the last micro-step
                    optimizer.step()            # no-ops until the last micro-step (accelerate)
                    if accelerator.sync_gradients:
                        schedule.step()
                    optimizer.zero_grad()
                loss_sum += float(loss.detach())
            both = accelerator.reduce(torch.tensor([loss_sum / cfg.grad_accum, step_tokens], device=accelerator.device),
                                      reduction="sum")
            loss_value, tokens = float(both[0]) / world, tokens + float(both[1])
            elapsed = time.time() - started
            record = {"step": step + 1, "loss": loss_value, "rank_loss": loss_sum / cfg.grad_accum,
                      "lr": schedule.get_last_lr()[0], "rank": rank, "examples": [examples[i].id for i in mine],
                      "tokens_per_s": tokens / max(elapsed, 1e-9), "elapsed_s": round(elapsed, 3)}
            log.write(json.dumps(record) + "\n")
            log.flush()
            bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")  # tqdm adds ETA
            bar.update(1)
            if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    _save_checkpoint(accelerator.unwrap_model(model), optimizer, schedule, step + 1, out, key)
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
    accelerator.wait_for_everyone()
    return out
