"""evaluate(task, model) -> run directory, with caching, resumption and sharding.

The runner is the only place that talks to both a task and a model:
1. the task builds samples; their requests are looked up in the generation cache;
2. missing requests go to the model in length-sorted chunks, each chunk committed to the
   cache as soon as it is done (a killed run loses at most one chunk);
3. the task scores every sample, metrics are aggregated, and the run directory is written
   atomically, its manifest flipped from ``running`` to ``complete`` last.

Under ``accelerate launch``/``torchrun`` (WORLD_SIZE > 1) each process generates only its
own stride of the pending requests into the shared cache; rank 0 waits for the others and
writes the one run directory.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from rai_multi import progress
from rai_multi.cache import GenerationCache, NullCache, cache_key
from rai_multi.errors import RaiMultiError
from rai_multi.languages import tier_of
from rai_multi.models.base import ModelAdapter
from rai_multi.paths import cache_dir
from rai_multi.records import GenerationRequest, Response, Sample, canonical_json, prompt_hash, sha256_text
from rai_multi.store import (
    RunDir,
    file_sha256,
    git_commit,
    metrics_document,
    now_iso,
    package_versions,
    safe_name,
)
from rai_multi.tasks.base import Task
from rai_multi.tasks.table import spec_for

DEFAULT_SEED = 1234
# Requests per cache commit under --batch-size auto: one full decode batch of short prompts
# (auto's most rows on a CPU), so a killed run loses at most that much work.
AUTO_CHUNK = 64


@dataclass(frozen=True)
class RunOptions:
    """How to run (not what to evaluate): output folder, display name, seed, batching."""

    out_dir: Path
    name: str
    seed: int = DEFAULT_SEED
    batch_size: int | None = None  # None: auto (the adapter sizes its batches)
    use_cache: bool = True
    progress: bool = True
    chunk_size: int | None = None  # requests per cache commit; default 4 x batch size, 64 under auto


@dataclass(frozen=True)
class Shard:
    """This process's place among data-parallel workers."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls) -> "Shard":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
        return cls(rank=rank, world_size=world)


def run_key(task: Task, config_hash: str) -> str:
    """``<task>-<setting>-<first 8 hex of the comparison hash>``: two runs that differ in any
    setting (languages, k, dtype, chat template, ...) get their own folders, while a re-run
    of the same settings (new weights under the same model name included) replaces its own."""
    base = f"{task.name}-{task.setting}" if task.setting else task.name
    return safe_name(f"{base}-{config_hash[:8]}")


def run_dir_for(task: Task, options: RunOptions, config_hash: str) -> Path:
    """``<out>/<model name>/<run key>``."""
    return Path(options.out_dir) / safe_name(options.name) / run_key(task, config_hash)


def model_settings(model: ModelAdapter) -> dict[str, Any]:
    """What about the model's use changes its answers but is not the model itself: the
    dtype, the attention kernel and whether a chat template wraps the prompts. Runs that
    differ here are not compared."""
    desc = model.description()
    return {"backend": desc.get("backend", "unknown"), "dtype": desc.get("dtype"),
            "attention": desc.get("attention", "default"), "chat_template": bool(desc.get("chat_template", False))}


def model_identity(model: ModelAdapter) -> dict[str, Any]:
    """What identifies the model: weights, tokenizer files and the chat template text."""
    desc = model.description()
    return {"fingerprint": model.fingerprint, "tokenizer_hash": desc.get("tokenizer_hash"),
            "chat_template_hash": desc.get("chat_template_hash")}


PATH_OPTIONS = ("source", "files")  # task.config() keys naming local paths (their content is hashed instead)


def run_config(task: Task, model: ModelAdapter, samples: Sequence[Sample]) -> dict[str, Any]:
    """Everything that decides a run's numbers: the task's resolved options, the sample ids,
    the model's settings and identity. ``config_hash`` hashes all of it (the run key);
    ``comparison_hash`` leaves the model's identity out: two models are compared only when
    it is equal."""
    ids = sha256_text("\n".join(s.id for s in samples))
    # Data by content, not by where it lies: the same files on another machine compare.
    options = {k: v for k, v in task.config().items() if k not in PATH_OPTIONS}
    data = {Path(p).name: file_sha256(Path(p)) for p in task.data_files()}
    return {"task": {"name": task.name, "version": task.version, "setting": task.setting, "options": options,
                     "data_sha256": data, "sample_ids_sha256": ids, "n_samples": len(samples)},
            "model_settings": model_settings(model), "model_identity": model_identity(model)}


def config_hashes(config: dict[str, Any]) -> tuple[str, str]:
    """(config_hash, comparison_hash) of a run config (see run_config)."""
    full = sha256_text(canonical_json(config))
    comparable = sha256_text(canonical_json({k: v for k, v in config.items() if k != "model_identity"}))
    return full, comparable


def _request_length(sample: Sample) -> int:
    req = sample.request
    if isinstance(req, GenerationRequest):
        return len(req.prompt)
    return len(req.context) + max((len(c) for c in req.continuations), default=0)


def _check_unique_ids(samples: Sequence[Sample]) -> None:
    seen: set[str] = set()
    for sample in samples:
        if sample.id in seen:
            raise RaiMultiError(f"duplicate sample id {sample.id!r}: the data has repeated items")
        seen.add(sample.id)


@dataclass(frozen=True)
class Answers:
    """Responses by sample id, and how many came from the cache vs the model."""

    responses: dict[str, Response]
    from_cache: int
    generated: int


def _query_model(model: ModelAdapter, samples: Sequence[Sample]) -> list[Response]:
    """Send one chunk (all of one request kind) to the model."""
    ids = [s.id for s in samples]
    if isinstance(samples[0].request, GenerationRequest):
        outs = model.generate([s.request for s in samples], ids)  # type: ignore[misc]
        return [Response(outputs=tuple(o)) for o in outs]
    lls = model.loglikelihood([s.request for s in samples], ids)  # type: ignore[misc]
    return [Response(loglikelihoods=tuple(x)) for x in lls]


def _cache_keys(task: Task, model: ModelAdapter, samples: Sequence[Sample]) -> dict[str, str]:
    """Generation-cache key of every sample, by sample id."""
    return {s.id: cache_key(model.fingerprint, task.name, task.version, s.request) for s in samples}


def generate_responses(
    task: Task,
    model: ModelAdapter,
    samples: Sequence[Sample],
    options: RunOptions,
    shard: Shard = Shard(),
) -> "Answers":
    """Answers for every sample (by sample id), from the cache or the model.

    With several shards this process only fills its own stride of the missing requests
    and returns what it produced; rank 0 then re-reads everything from the cache."""
    use_cache = options.use_cache and model.cacheable
    cache_path = cache_dir(options.out_dir) / "generations.sqlite"
    cache = GenerationCache(cache_path) if use_cache else NullCache()
    try:
        keys = _cache_keys(task, model, samples)
        cached = cache.get_many(set(keys.values()))
        responses = {s.id: cached[keys[s.id]] for s in samples if keys[s.id] in cached}
        # The stride is taken over all samples, not over the ones missing from the cache:
        # ranks start at different times, and a rank that reads the cache after a faster
        # peer has committed would otherwise re-stride the remainder and leave some
        # samples to nobody (rank 0 then waits for them forever).
        pending = [s for s in samples[shard.rank :: shard.world_size] if s.id not in responses]
        progress.note_answers(task.name, len(responses), len(samples), cache_path if use_cache else None)
        # Length-sorted (longest first) so each batch pads little and OOM shows up early.
        pending.sort(key=_request_length, reverse=True)
        chunk = options.chunk_size or (max(1, options.batch_size * 4) if options.batch_size else AUTO_CHUNK)
        by_kind: dict[str, list[Sample]] = {}
        for s in pending:
            by_kind.setdefault(s.request.kind, []).append(s)
        bar = tqdm(
            total=len(pending),
            desc=f"{task.name}{'/' + task.setting if task.setting else ''} [{options.name}]",
            unit="sample",
            disable=not options.progress or not pending,
            leave=False,
        )
        try:
            for group in by_kind.values():
                for start in range(0, len(group), chunk):
                    part = group[start : start + chunk]
                    answers = _query_model(model, part)
                    cache.put_many({keys[s.id]: a for s, a in zip(part, answers)})
                    responses.update({s.id: a for s, a in zip(part, answers)})
                    progress.note_answers(task.name, len(responses), len(samples), cache_path if use_cache else None)
                    bar.update(len(part))
        finally:
            bar.close()  # clears the bar's line, so an error or interrupt message starts a clean line
        return Answers(responses, from_cache=len(samples) - len(pending) if shard.world_size == 1 else -1,
                       generated=len(pending))
    finally:
        cache.close()


SHARD_STALL_SECONDS = 3600.0


def _wait_for_shards(
    task: Task,
    model: ModelAdapter,
    samples: Sequence[Sample],
    options: RunOptions,
    stall_seconds: float | None = None,
    poll_seconds: float = 0.5,
) -> dict[str, Response]:
    """Rank 0: poll the shared cache until every sample has an answer.

    A peer that dies makes torchrun stop the whole job, but a peer that hangs would leave
    rank 0 polling for ever; so when no new answer arrives for ``stall_seconds``
    (``RAI_MULTI_SHARD_STALL_SECONDS``, default an hour: one chunk of a large model can be
    slow) rank 0 gives up with a clear error. Answers already committed stay in the cache
    and a re-run resumes from them."""
    if stall_seconds is None:
        stall_seconds = float(os.environ.get("RAI_MULTI_SHARD_STALL_SECONDS", SHARD_STALL_SECONDS))
    cache = GenerationCache(cache_dir(options.out_dir) / "generations.sqlite")
    try:
        keys = _cache_keys(task, model, samples)
        have, last_progress = -1, time.monotonic()
        while True:
            found = cache.get_many(set(keys.values()))
            if all(k in found for k in keys.values()):
                return {sid: found[k] for sid, k in keys.items()}
            if len(found) > have:
                have, last_progress = len(found), time.monotonic()
            elif time.monotonic() - last_progress > stall_seconds:
                missing = sum(k not in found for k in keys.values())
                raise RaiMultiError(
                    f"{task.name}: {missing} of {len(keys)} answers still missing after {stall_seconds:.0f} s "
                    "without progress from the other ranks; re-run to resume from the cache"
                )
            time.sleep(poll_seconds)
    finally:
        cache.close()


def build_manifest(task: Task, model: ModelAdapter, options: RunOptions, samples: Sequence[Sample]) -> dict[str, Any]:
    config = run_config(task, model, samples)
    config_hash, comparison_hash = config_hashes(config)
    return {
        "schema": 2,
        "config_hash": config_hash,
        "comparison_hash": comparison_hash,
        "run_config": config,
        "task": task.name,
        "task_version": task.version,
        "setting": task.setting,
        "model": {"name": options.name, "fingerprint": model.fingerprint, **model.description()},
        "config": task.config(),
        "seed": options.seed,
        "batch_size": options.batch_size or "auto",
        "data_files": {str(p): file_sha256(p) for p in task.data_files()},
        "n_samples": len(samples),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "started": now_iso(),
    }


PROMPT_CHARS = 1200  # prompt text kept per row: its end, where the item's own question is
OPTION_CHARS = 400  # each scored continuation (option) kept per row


def _clip_end(text: str, limit: int) -> str:
    """The last ``limit`` characters, marked when the start was cut: few-shot prompts repeat
    the same exemplars on every row, and the item itself comes last."""
    return text if len(text) <= limit else f"[... {len(text) - limit} characters cut] " + text[-limit:]


SHARED_START_MIN = 200  # a start shared by every prompt of a language, at least this long, is stored once


def _prompt_text(sample: Sample) -> str:
    req = sample.request
    return req.prompt if isinstance(req, GenerationRequest) else req.context


def shared_prompt_starts(samples: Sequence[Sample]) -> dict[str, str]:
    """Per language, the start every prompt shares (the few-shot exemplars), cut after its
    last blank line, where there is one of at least SHARED_START_MIN characters: the
    manifest keeps it once and each row only the item's own part of the prompt."""
    texts: dict[str, list[str]] = {}
    for s in samples:
        texts.setdefault(s.lang, []).append(_prompt_text(s))
    starts = {}
    for lang, prompts in texts.items():
        common = os.path.commonprefix(prompts) if len(prompts) > 1 else ""
        cut = common.rfind("\n\n") + 2
        if cut >= SHARED_START_MIN:
            starts[lang] = common[:cut]
    return starts


def base_row(sample: Sample, response: Response, shared_start: int = 0) -> dict[str, Any]:
    """The fields every samples.jsonl row has, whatever the task: the item, its prompt
    after the ``shared_start`` characters all its language's prompts share (the manifest's
    ``shared_prompt_starts``), clipped to its end (``prompt_hash`` identifies the full
    request), the scored options of a log-likelihood request, the gold target and the
    model's response."""
    req = sample.request
    own = _prompt_text(sample)[shared_start:]
    marker = f"[shared start: {shared_start} characters] " if shared_start else ""
    row: dict[str, Any] = {
        "id": sample.id,
        "lang": sample.lang,
        "tier": tier_of(sample.lang),
        "prompt_hash": prompt_hash(req),
        "prompt": marker + _clip_end(own, PROMPT_CHARS),
    }
    if not isinstance(req, GenerationRequest):
        row["continuations"] = [c if len(c) <= OPTION_CHARS else c[:OPTION_CHARS] + " [...]" for c in req.continuations]
    if sample.target is not None:
        row["gold"] = sample.target
    row.update(response.to_json())
    return row


def evaluate(task: Task, model: ModelAdapter, options: RunOptions, shard: Shard | None = None) -> Path:
    """Run ``task`` on ``model`` and write its run directory; returns the directory."""
    shard = shard or Shard.from_env()
    samples = task.build_samples()
    if not samples:
        raise RaiMultiError(f"{task.name}: no samples to evaluate (check --langs/--limit and the data files)")
    _check_unique_ids(samples)
    manifest = build_manifest(task, model, options, samples)
    starts = shared_prompt_starts(samples)
    manifest["shared_prompt_starts"] = starts
    run_dir = RunDir(run_dir_for(task, options, manifest["comparison_hash"]))
    if shard.rank == 0:
        run_dir.start(manifest)
    try:
        answers = generate_responses(task, model, samples, options, shard)
        responses = answers.responses
        if shard.world_size > 1:
            if shard.rank != 0:
                return run_dir.path
            responses = _wait_for_shards(task, model, samples, options)
        ordered = [responses[s.id] for s in samples]
        scored = task.score(samples, ordered)
        rows = [{**base_row(s, r, len(starts.get(s.lang, ""))), **extra} for s, r, extra in zip(samples, ordered, scored)]
        metrics = task.metrics(rows, options.seed)
        manifest["shards"] = shard.world_size
        manifest["answers"] = {"from_cache": answers.from_cache, "generated": answers.generated}
        spec = spec_for(task.name)
        if spec is None:
            raise RaiMultiError(f"task {task.name!r} has no entry in rai_multi/tasks/table.py: its metrics are undescribed")
        run_dir.finish(manifest, rows, metrics_document(task.name, task.version, task.setting, options.name, metrics,
                                                        spec, scorer=manifest["config"].get("scorer"),
                                                        config_hash=manifest["config_hash"],
                                                        notes=manifest["config"].get("notes")))
    except BaseException:
        run_dir.abandon()  # an earlier finished run at this path is left as it was
        raise
    progress.note_finished_run()
    return run_dir.path
