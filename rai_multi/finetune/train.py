"""One readable training loop for Flan-style instruction finetuning.

- seq2seq (T5 family): encoder gets the input, the loss is on the target;
  causal LMs: input and target are concatenated and the loss is on target tokens only;
- full finetuning or LoRA (peft), merged into a plain model directory at the end so that
  ``rai-multi eval --model DIR`` and ``audit`` take it as is;
- length-grouped batches, gradient accumulation, bf16 autocast where the hardware has it;
- a checkpoint every N steps (weights, optimizer, step) and ``resume``: the data order is
  a pure function of the seed and the step, so a resumed run sees the same batches;
- data-parallel through accelerate: under ``accelerate launch`` each rank takes its own
  slice of every global batch (disjoint), and gradients are averaged by DDP.
Everything that can be wrong with the inputs is checked before any compute is spent.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rai_multi.errors import ConfigError, ModelLoadError
from rai_multi.finetune import decontam
from rai_multi.finetune.mixture import Example, MixtureConfig, build_mixture
from rai_multi.store import atomic_write_json

WINDOW_BATCHES = 16  # batches sorted by length together (length grouping)


@dataclass
class TrainConfig:
    model: str
    out: Path
    steps: int = 100
    batch_size: int = 8
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
    data_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _load(model_path: str):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    path = Path(model_path)
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"model directory does not exist or has no config.json: {path}")
    config = AutoConfig.from_pretrained(path)
    seq2seq = bool(getattr(config, "is_encoder_decoder", False))
    cls = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return cls.from_pretrained(path, dtype="float32"), tokenizer, seq2seq


def default_lora_targets(model: Any) -> list[str]:
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    for candidates in (["q", "v"], ["q_proj", "v_proj"], ["query", "value"], ["c_attn"]):
        if set(candidates) <= names:
            return candidates
    raise ConfigError("cannot guess LoRA target modules for this model: pass --lora-targets")


def check_lora_targets(model: Any, targets: Sequence[str]) -> None:
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing:
        raise ConfigError(f"LoRA target module(s) {', '.join(missing)} not found in the model; "
                          f"linear layers it has: {', '.join(sorted(n for n in names if n and not n.isdigit())[:30])}")


def batch_order(n_examples: int, global_batch: int, steps: int, seed: int, lengths: Sequence[int]) -> list[list[int]]:
    """Example indices of every global batch, for all steps (epochs reshuffled), grouped by
    length inside windows of WINDOW_BATCHES batches; pure function of its arguments."""
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
        if not epoch_batches:
            raise ConfigError(f"the mixture has {n_examples} examples, fewer than one global batch ({global_batch})")
        batches += epoch_batches
        epoch += 1
    return batches[:steps]


def _encode(tokenizer: Any, examples: Sequence[Example], seq2seq: bool, max_in: int, max_out: int):
    import torch

    if seq2seq:
        enc = tokenizer([e.input for e in examples], max_length=max_in, truncation=True, padding=True, return_tensors="pt")
        tgt = tokenizer([e.target for e in examples], max_length=max_out, truncation=True, padding=True, return_tensors="pt")
        labels = tgt["input_ids"].masked_fill(tgt["attention_mask"] == 0, -100)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}
    rows, label_rows = [], []
    for e in examples:
        prompt = tokenizer(e.input, add_special_tokens=True)["input_ids"][-max_in:]
        target = tokenizer(" " + e.target, add_special_tokens=False)["input_ids"][:max_out] + [tokenizer.eos_token_id]
        rows.append(prompt + target)
        label_rows.append([-100] * len(prompt) + target)
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    ids = torch.full((len(rows), width), pad)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, lab) in enumerate(zip(rows, label_rows)):
        ids[i, : len(r)] = torch.tensor(r)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(r)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _latest_checkpoint(out: Path) -> Path | None:
    found = sorted((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


def prepare(cfg: TrainConfig, mixture: MixtureConfig) -> tuple[list[Example], decontam.ContaminationReport]:
    """Build the mixture and check it against the evaluation sets (no model compute)."""
    examples = build_mixture(mixture)
    report = decontam.check(examples, decontam.eval_texts(cfg.data_dir)) if cfg.data_dir else decontam.ContaminationReport()
    if report.n_exact and cfg.drop_contaminated:
        bad = {train_id for hits in report.exact_hits.values() for train_id, _ in hits}
        examples = [e for e in examples if e.id not in bad]
    elif report.n_exact and not cfg.allow_contaminated:
        first = next(h for hits in report.exact_hits.values() for h in hits)
        raise ConfigError(f"the mixture contains {report.n_exact} exact evaluation item(s) (e.g. training {first[0]} holds "
                          f"{first[1]}); pass --drop-contaminated to leave them out, or --allow-contaminated")
    return examples, report


def train(cfg: TrainConfig, mixture: MixtureConfig, progress: bool = True) -> Path:
    """Finetune ``cfg.model`` on ``mixture``; returns the output model directory."""
    import torch
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    model, tokenizer, seq2seq = _load(cfg.model)
    targets = None
    if cfg.lora:
        targets = cfg.lora_targets or default_lora_targets(model)
        check_lora_targets(model, targets)
    examples, report = prepare(cfg, mixture)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), gradient_accumulation_steps=cfg.grad_accum,
                              mixed_precision="bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no")
    out = Path(cfg.out)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    if cfg.lora:
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(model, LoraConfig(
            task_type=TaskType.SEQ_2_SEQ_LM if seq2seq else TaskType.CAUSAL_LM, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
            target_modules=targets, lora_dropout=0.0))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))
    start_step = 0
    checkpoint = _latest_checkpoint(out) if cfg.resume else None
    if cfg.resume and checkpoint is None:
        raise ConfigError(f"--resume: no checkpoint under {out / 'checkpoints'}")
    if checkpoint is not None:
        state = torch.load(checkpoint / "trainer.pt", weights_only=False)
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        for name, tensor in state["weights"].items():
            trainable[name].data.copy_(tensor)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_step = state["step"]
        torch.set_rng_state(state["torch_rng"])  # dropout continues exactly where it stopped
    model, optimizer = accelerator.prepare(model, optimizer)
    world, rank = accelerator.num_processes, accelerator.process_index
    lengths = [len(e.input) + len(e.target) for e in examples]
    order = batch_order(len(examples), cfg.batch_size * world * cfg.grad_accum, cfg.steps, cfg.seed, lengths)
    log_path = out / f"train_log.rank{rank}.jsonl" if world > 1 else out / "train_log.jsonl"
    if accelerator.is_main_process:
        atomic_write_json(out / "finetune_config.json", {
            "train": {**asdict(cfg), "out": str(cfg.out), "data_dir": str(cfg.data_dir), "lora_targets": targets},
            "mixture": mixture.to_json(), "decontamination": {"ngram_hits": report.ngram_hits,
                                                              "exact_hits": report.exact_hits},
            "seq2seq": seq2seq, "world_size": world})
    model.train()
    bar = tqdm(total=cfg.steps, initial=start_step, disable=not (progress and accelerator.is_main_process), unit="step")
    started, tokens = time.time(), 0
    with open(log_path, "a" if cfg.resume else "w", encoding="utf-8") as log:
        for step in range(start_step, cfg.steps):
            global_batch = order[step]
            per_rank = len(global_batch) // world
            mine = global_batch[rank * per_rank : (rank + 1) * per_rank]
            losses = []
            for micro in range(cfg.grad_accum):
                size = len(mine) // cfg.grad_accum
                part = [examples[i] for i in mine[micro * size : (micro + 1) * size]]
                batch = _encode(tokenizer, part, seq2seq, mixture.max_input_tokens, mixture.max_target_tokens)
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                tokens += int(batch["attention_mask"].sum())
                with accelerator.accumulate(model), accelerator.autocast():
                    loss = model(**batch).loss
                    accelerator.backward(loss)
                    optimizer.step()
                    schedule.step() if accelerator.sync_gradients else None
                    optimizer.zero_grad()
                losses.append(float(loss.detach()))
            loss_value = sum(losses) / len(losses)
            elapsed = time.time() - started
            record = {"step": step + 1, "loss": loss_value, "lr": schedule.get_last_lr()[0], "rank": rank,
                      "examples": [examples[i].id for i in mine], "tokens_per_s": tokens / max(elapsed, 1e-9)}
            log.write(json.dumps(record) + "\n")
            log.flush()
            bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
            bar.update(1)
            if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    _save_checkpoint(accelerator.unwrap_model(model), optimizer, schedule, step + 1, out)
    bar.close()
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


def _save_checkpoint(model: Any, optimizer: Any, schedule: Any, step: int, out: Path) -> None:
    import torch

    folder = out / "checkpoints" / f"step-{step}"
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    weights = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
    torch.save({"weights": weights, "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "step": step,
                "torch_rng": torch.get_rng_state()}, tmp / "trainer.pt")
    tmp.replace(folder) if not folder.exists() else None


def count_tokens_estimate(examples: Sequence[Example]) -> int:
    return sum(math.ceil((len(e.input) + len(e.target)) / 4) for e in examples)
