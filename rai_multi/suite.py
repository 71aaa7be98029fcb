"""Audit suites (TOML): which models (one the baseline), which tasks with which settings,
languages and limits, which toxicity scorer, and which gate policy.

Validation is strict: an unknown key or a wrong type is an error naming the file and the
table at fault, because a silently ignored typo in a release audit is a wrong verdict.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rai_multi.errors import ConfigError, RaiMultiError
from rai_multi.finetune.stage import FinetuneSpec, parse_finetune
from rai_multi.inputs import read_text
from rai_multi.tasks.spec import BenchmarkSpec
from rai_multi.tasks.table import resolve_task_table, suite_types

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Backend fields of a model row (models/spec.py), with their types.
BACKEND_KEYS: dict[str, type] = {"revision": str, "device": str, "base_url": str, "api_key_env": str,
                                 "concurrency": int, "tensor_parallel_size": int, "max_model_len": int}
MODEL_KEYS = {"name", "source", "finetune", "batch_size", "dtype", "chat_template", "description", *BACKEND_KEYS}
# rai_multi.models.loading.DTYPES, repeated so that reading a suite does not import torch
# (tests/test_bad_input.py checks the two agree).
DTYPES = ("auto", "fp32", "bf16", "fp16", "int8")
TOP_KEYS = {"title", "notes", "seed", "baseline", "policy", "out", "report", "scorer", "model", "task"}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str  # local dir, .gguf, hub id, demo:<name>, vllm:<...>, openai:<served name>, openai-chat:<...>
    batch_size: int | None = None  # None: auto
    dtype: str = "auto"
    chat_template: bool = False
    description: str = ""
    backend_fields: tuple[tuple[str, Any], ...] = ()  # (key, value) of the BACKEND_KEYS the row sets
    finetune: FinetuneSpec | None = None  # a Flan-style finetune of another row; its source is the trained folder

    def model_spec(self, source: str | None = None) -> Any:
        """The one model spec (models/spec.py) the CLI's --model and its options also make;
        ``source`` replaces the row's (a finetune row's trained folder)."""
        from rai_multi.models.spec import parse_model

        return parse_model(source or self.source, batch_size=self.batch_size, dtype=self.dtype,
                           chat_template=self.chat_template, **dict(self.backend_fields))


@dataclass(frozen=True)
class SuiteTask:
    """One ``[[task]]`` table: its type (a benchmark or a group such as ``bias``) and the
    benchmark runs it stands for, each with its checked options."""

    type: str
    runs: tuple[tuple[BenchmarkSpec, Any], ...]


@dataclass(frozen=True)
class Suite:
    path: Path
    title: str
    models: list[ModelSpec]
    baseline: str
    tasks: list[SuiteTask]
    seed: int = 1234
    policy: Path | None = None
    out: Path = Path("runs")
    report: Path = Path("reports/audit.html")
    scorer: dict[str, Any] = field(default_factory=lambda: {"name": "profanity-check"})
    notes: list[str] = field(default_factory=list)

    def model(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise ConfigError(f"{self.path}: no model named {name!r} (models: {', '.join(m.name for m in self.models)})")


def _check_keys(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}")


def _typed(raw: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    if key not in raw:
        return default
    value = raw[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{where}: '{key}' must be {names}")
    return value


def _nonempty_str(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: '{key}' (a non-empty string) is required")
    return value


def _batch_size(raw: dict[str, Any], where: str) -> int | None:
    """A model's ``batch_size``: a positive int, or "auto" (the default) for None."""
    value = raw.get("batch_size", "auto")
    if value == "auto":
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: 'batch_size' must be a positive int or \"auto\"")
    return value


def _check_finetune_rows(models: list[ModelSpec], path: Path) -> None:
    """A finetune row names another row (``of``) whose weights are local to this process:
    not itself, not a finetune (train one model at a time), not a served or vLLM model."""
    rows = {m.name: m for m in models}
    for i, m in enumerate(models):
        if m.finetune is None:
            continue
        where = f"{path}: [[model]] {i + 1} ({m.name})"
        base = rows.get(m.finetune.of)
        if base is None or base is m:
            others = ", ".join(n for n in rows if n != m.name)
            raise ConfigError(f"{where}: finetune.of must name another model row ({others}); got {m.finetune.of!r}")
        if base.finetune is not None:
            raise ConfigError(f"{where}: finetune.of names {base.name!r}, itself a finetune; finetune its base "
                              "with a mixture that holds both")
        backend = base.model_spec().backend
        if backend != "hf":
            raise ConfigError(f"{where}: finetune.of names {base.name!r}, a {backend} model; "
                              "finetuning needs weights in this process (a folder, .gguf, hub id or demo: model)")


def load_suite(path: Path) -> Suite:
    path = Path(path)
    try:
        raw = tomllib.loads(read_text(path, error=ConfigError, what="suite"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    _check_keys(raw, TOP_KEYS, str(path))
    for key in ("model", "task"):
        if not isinstance(raw.get(key, []), list):
            raise ConfigError(f"{path}: '{key}' must be [[{key}]] tables (an array of tables)")
    models = []
    for i, m in enumerate(raw.get("model", [])):
        where = f"{path}: [[model]] {i + 1}"
        if not isinstance(m, dict):
            raise ConfigError(f"{where}: must be a table")
        _check_keys(m, MODEL_KEYS, where)
        name = _nonempty_str(m, "name", where)
        finetune = parse_finetune(m["finetune"], where, path.parent) if "finetune" in m else None
        if finetune is not None and "source" in m:
            raise ConfigError(f"{where}: give 'source' or 'finetune', not both (a finetune's source is the "
                              "model it trains)")
        source = "" if finetune is not None else _nonempty_str(m, "source", where)
        dtype = _typed(m, "dtype", str, where, "auto")
        if dtype not in DTYPES:
            raise ConfigError(f"{where}: 'dtype' must be one of {', '.join(DTYPES)}; got {dtype!r}")
        backend = tuple((k, _typed(m, k, kind, where)) for k, kind in BACKEND_KEYS.items() if k in m)
        row = ModelSpec(name, source, _batch_size(m, where), dtype,
                        _typed(m, "chat_template", bool, where, False), _typed(m, "description", str, where, ""),
                        backend, finetune)
        try:
            row.model_spec("finetune-placeholder" if finetune else None)  # a bad backend field fails now, naming the row
        except RaiMultiError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        models.append(row)
    if len(models) < 2:
        raise ConfigError(f"{path}: an audit needs at least two [[model]] tables (a baseline and a candidate)")
    if len({m.name for m in models}) != len(models):
        raise ConfigError(f"{path}: model names must be unique")
    _check_finetune_rows(models, path)
    tasks = []
    for i, t in enumerate(raw.get("task", [])):
        where = f"{path}: [[task]] {i + 1}"
        if not isinstance(t, dict):
            raise ConfigError(f"{where}: must be a table")
        kind = t.get("type")
        if not isinstance(kind, str) or kind not in suite_types():
            raise ConfigError(f"{where}: 'type' must be one of {', '.join(suite_types())}; got {kind!r}")
        runs = resolve_task_table(kind, {k: v for k, v in t.items() if k != "type"}, where)
        tasks.append(SuiteTask(kind, tuple(runs)))
    if not tasks:
        raise ConfigError(f"{path}: no [[task]] tables")
    baseline = _typed(raw, "baseline", str, str(path))
    if baseline is None or baseline not in {m.name for m in models}:
        raise ConfigError(f"{path}: 'baseline' must name one of the models ({', '.join(m.name for m in models)})")
    policy = _typed(raw, "policy", str, str(path))
    scorer = _typed(raw, "scorer", (str, dict), str(path), "profanity-check")
    if isinstance(scorer, str):
        scorer = {"name": scorer}
    _check_keys(scorer, {"name", "checkpoint", "config", "label", "calibration", "validity"}, f"{path}: scorer")
    notes = _typed(raw, "notes", list, str(path), [])
    if not all(isinstance(n, str) for n in notes):
        raise ConfigError(f"{path}: 'notes' must be a list of strings")
    seed = _typed(raw, "seed", int, str(path), 1234)
    if not 0 <= seed < 2**32:
        raise ConfigError(f"{path}: 'seed' must be a whole number from 0 to 2**32 - 1, got {seed}")
    for key in ("out", "report", "policy", "title"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise ConfigError(f"{path}: '{key}' must be a non-empty string")
    return Suite(
        path=path,
        title=_typed(raw, "title", str, str(path), f"rai-multi audit: {path.stem}"),
        models=models,
        baseline=baseline,
        tasks=tasks,
        seed=seed,
        policy=(path.parent / policy) if policy else None,
        out=Path(_typed(raw, "out", str, str(path), "runs")),
        report=Path(_typed(raw, "report", str, str(path), "reports/audit.html")),
        scorer=scorer,
        notes=[str(n) for n in notes],
    )
