"""``rai-multi eval <benchmark>`` and ``rai-multi score <benchmark>``, made from the specs.

Each benchmark in rai_multi/tasks/table.py gets an ``eval`` command (and a ``score``
command when its outputs can be replayed) whose flags are its options dataclass's fields,
plus one shared group of model and run options. Groups (``bias``) get one command that runs
each member. Nothing here names a benchmark: a new spec in the table is a new command.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from rai_multi.cli import common
from rai_multi.errors import ConfigError
from rai_multi.tasks.spec import BenchmarkSpec, BuildContext, option_fields
from rai_multi.tasks.table import GROUPS, SPECS, BY_NAME, Group, resolve_task_table

MODEL_PANEL = "Model and run options"
SCORER_PANEL = "Toxicity scorer"


def _param(name: str, default: Any, annotation: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _model_params(mode: str) -> list[inspect.Parameter]:
    """The shared model and run options (``eval``) or the replay options (``score``)."""
    p = MODEL_PANEL
    if mode == "score":
        return [
            _param("predictions", typer.Option(..., "--predictions", "-p", help='JSONL of {"id": ..., "output": ...} rows.',
                                               rich_help_panel=p), Path),
            _param("name", typer.Option(None, "--name", help="Display name of the model.", rich_help_panel=p),
                   Optional[str]),
            _param("out", typer.Option(Path("runs"), "--out", help="Folder that receives run directories.",
                                       rich_help_panel=p), Path),
            _param("data_dir", typer.Option(None, "--data-dir", help="Benchmark data folder (default: $RAI_MULTI_DATA).",
                                            rich_help_panel=p), Optional[Path]),
            _param("seed", typer.Option(common.DEFAULT_SEED, "--seed", help="The one seed.", rich_help_panel=p), int),
        ]
    return [
        _param("model", typer.Option(..., "--model", "-m", help="Local model directory, GGUF file, hub id or demo:<name> "
                                     "(transformers); vllm:<path or id>; openai:<served name> (/v1/completions); "
                                     "openai-chat:<served name>.", rich_help_panel=p), str),
        _param("batch_size", typer.Option("auto", "--batch-size", help="Prompts per decode batch, or 'auto'.",
                                          rich_help_panel=p), str),
        _param("name", typer.Option(None, "--name", help="Display name of the model in run dirs and reports.",
                                    rich_help_panel=p), Optional[str]),
        _param("out", typer.Option(Path("runs"), "--out", help="Folder that receives run directories.",
                                   rich_help_panel=p), Path),
        _param("data_dir", typer.Option(None, "--data-dir", help="Benchmark data folder (default: $RAI_MULTI_DATA).",
                                        rich_help_panel=p), Optional[Path]),
        _param("seed", typer.Option(common.DEFAULT_SEED, "--seed", help="The one seed (sampling, exemplars, bootstrap).",
                                    rich_help_panel=p), int),
        _param("dtype", typer.Option("auto", "--dtype", help="fp32, bf16, int8 (dynamic) or auto.", rich_help_panel=p),
               str),
        _param("chat_template", typer.Option(False, "--chat-template/--no-chat-template",
                                             help="Wrap prompts in the model's chat template.", rich_help_panel=p), bool),
        _param("no_cache", typer.Option(False, "--no-cache", help="Ignore and do not fill the generation cache.",
                                        rich_help_panel=p), bool),
        *_backend_params(p),
    ]


# Model spec fields beyond the ones above (models/spec.py); each goes to load_adapter by name.
BACKEND_FIELDS = ("revision", "device", "base_url", "api_key_env", "concurrency", "tensor_parallel_size",
                  "max_model_len")


def _backend_params(p: str) -> list[inspect.Parameter]:
    return [
        _param("revision", typer.Option(None, "--revision", help="Hub revision (served models: a label of the weights).",
                                        rich_help_panel=p), Optional[str]),
        _param("device", typer.Option(None, "--device", help="cpu, cuda, cuda:N (default cuda:$LOCAL_RANK or cpu).",
                                      rich_help_panel=p), Optional[str]),
        _param("base_url", typer.Option(None, "--base-url", help="openai: server URL (default $OPENAI_BASE_URL).",
                                        rich_help_panel=p), Optional[str]),
        _param("api_key_env", typer.Option(None, "--api-key-env", help="openai: variable holding the key "
                                           "(default OPENAI_API_KEY).", rich_help_panel=p), Optional[str]),
        _param("concurrency", typer.Option(None, "--concurrency", help="openai: requests in flight (default 4).",
                                           rich_help_panel=p), Optional[int]),
        _param("tensor_parallel_size", typer.Option(None, "--tensor-parallel-size", help="vllm: GPUs per model.",
                                                    rich_help_panel=p), Optional[int]),
        _param("max_model_len", typer.Option(None, "--max-model-len", help="vllm: context window.",
                                             rich_help_panel=p), Optional[int]),
    ]


def _scorer_params() -> list[inspect.Parameter]:
    from rai_multi.scoring.toxicity import SCORER_NAMES

    p = SCORER_PANEL
    return [
        _param("scorer", typer.Option("profanity-check", "--scorer", help=f"One of: {', '.join(SCORER_NAMES)}.",
                                      rich_help_panel=p), str),
        _param("scorer_checkpoint", typer.Option(None, "--scorer-checkpoint", help="Local Detoxify checkpoint (.ckpt).",
                                                 rich_help_panel=p), Optional[Path]),
        _param("scorer_config", typer.Option(None, "--scorer-config", help="Local HF config/tokenizer folder for it.",
                                             rich_help_panel=p), Optional[Path]),
        _param("scorer_label", typer.Option(None, "--scorer-label", help="Toxic label name of an hf: classifier.",
                                            rich_help_panel=p), Optional[str]),
        _param("scorer_calibration", typer.Option(None, "--scorer-calibration",
                                                  help="Calibration file from `rai-multi scorer calibrate`: metrics "
                                                       "are also given on the calibrated scale.", rich_help_panel=p),
               Optional[Path]),
    ]


def _cli_type(kind: Any) -> Any:
    """The type a flag takes on the command line: tuples of strings are comma-separated."""
    return str if kind not in (int, float, bool) else kind


def _option_params(fields: list[tuple[dataclasses.Field, Any, bool]], mode: str, group: bool) -> list[inspect.Parameter]:
    params = []
    for f, kind, optional in fields:
        meta = f.metadata
        if not meta.get("cli", True) or (mode == "score" and not meta.get("score", True)):
            continue
        help_text = meta.get("help", "")
        if meta.get("choices"):
            help_text += f" One of: {', '.join(map(str, meta['choices']))}."
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        # A group's flags default to "not given", so each member keeps its own default.
        default = None if group or optional else f.default
        if isinstance(default, tuple):
            default = ",".join(default)
        annotation = Optional[_cli_type(kind)] if default is None else _cli_type(kind)
        params.append(_param(f.name, typer.Option(default, flag, help=help_text), annotation))
    return params


def _load_scorer(values: dict[str, Any]) -> Any:
    from rai_multi.scoring.toxicity import load_scorer

    return load_scorer(values["scorer"], values["scorer_checkpoint"], values["scorer_config"], values["scorer_label"])


def _execute(mode: str, resolve: Callable[[dict[str, Any]], list[tuple[BenchmarkSpec, Any]]], values: dict[str, Any]) -> None:
    """Resolve the runs, check their data before loading anything, then run each."""
    from rai_multi.paths import data_dir as resolve_data_dir

    runs = resolve(values)
    if mode == "score":
        runs = [(spec, dataclasses.replace(opts, **spec.score_options)) for spec, opts in runs]
    root = resolve_data_dir(values["data_dir"], required=False)
    scorer = _load_scorer(values) if any(spec.needs_scorer for spec, _ in runs) else None
    calibration = None
    if scorer is not None and values.get("scorer_calibration"):
        from rai_multi.scoring.calibration import load_calibration

        calibration = load_calibration(values["scorer_calibration"])
    for spec, opts in runs:  # data errors surface before the model is loaded
        common.check_data_files(spec.build(opts, BuildContext(root, values["seed"], scorer, None, calibration)))
    if mode == "score":
        from rai_multi.models.replay import ReplayAdapter

        adapter = ReplayAdapter.from_file(values["predictions"], values["name"])
        name, batch_size, no_cache = adapter.name, 64, False
    else:
        adapter = common.load_adapter(values["model"], values["batch_size"], values["dtype"], values["chat_template"],
                                      **{k: values[k] for k in BACKEND_FIELDS})
        name = values["name"] or common.default_name(values["model"])
        batch_size, no_cache = values["batch_size"], values["no_cache"]
    context = BuildContext(root, values["seed"], scorer, adapter, calibration)
    for spec, opts in runs:
        common.run_and_print(spec.build(opts, context), adapter, name=name, out=values["out"], seed=values["seed"],
                             batch_size=batch_size, no_cache=no_cache)


def _command(title: str, doc: str, params: list[inspect.Parameter],
             run: Callable[[dict[str, Any]], None]) -> Callable[..., None]:
    def command(**values: Any) -> None:
        run(values)

    command.__name__ = title.replace("-", "_")
    command.__doc__ = doc
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return command


def _spec_resolver(spec: BenchmarkSpec, names: list[str]) -> Callable[[dict[str, Any]], list[tuple[BenchmarkSpec, Any]]]:
    def resolve(values: dict[str, Any]) -> list[tuple[BenchmarkSpec, Any]]:
        raw = {k: values[k] for k in names if values.get(k) is not None}
        return resolve_task_table(spec.name, raw, f"{spec.cli_name} options")
    return resolve


def _group_resolver(group: Group, names: list[str], mode: str) -> Callable[[dict[str, Any]], list[tuple[BenchmarkSpec, Any]]]:
    def resolve(values: dict[str, Any]) -> list[tuple[BenchmarkSpec, Any]]:
        raw = {k: values[k] for k in names if values.get(k) is not None}
        raw["benchmarks"] = values["benchmarks"]
        runs = group.member_options(raw, f"{group.name} options")
        if mode == "score":
            for spec, _ in runs:
                if not spec.scorable:
                    raise ConfigError(f"{spec.name} compares likelihoods: it cannot be scored from predictions")
        return runs
    return resolve


def _group_fields(group: Group, mode: str) -> list[tuple[dataclasses.Field, Any, bool]]:
    seen: dict[str, tuple[dataclasses.Field, Any, bool]] = {}
    for member in group.members:
        for f, kind, optional in option_fields(BY_NAME[member].options):
            seen.setdefault(f.name, (f, kind, optional))
    return list(seen.values())


def register(app: typer.Typer, eval_app: typer.Typer, score_app: typer.Typer) -> None:
    for spec in SPECS:
        for mode, target in (("eval", eval_app), ("score", score_app)):
            if mode == "score" and not spec.scorable:
                continue
            option_params = _option_params(option_fields(spec.options), mode, group=False)
            params = option_params + _model_params(mode) + (_scorer_params() if spec.needs_scorer else [])
            resolve = _spec_resolver(spec, [p.name for p in option_params])
            doc = spec.summary if mode == "eval" else f"Score outputs produced elsewhere ({spec.prediction_ids})."
            target.command(spec.cli_name)(_command(spec.cli_name, doc, params,
                                                   lambda values, m=mode, r=resolve: _execute(m, r, values)))
    for group in GROUPS.values():
        for mode, target in (("eval", eval_app), ("score", score_app)):
            members = [m for m in group.members if mode == "eval" or BY_NAME[m].scorable]
            option_params = _option_params(_group_fields(group, mode), mode, group=True)
            bench = _param("benchmarks", typer.Option(",".join(members), "--benchmarks",
                                                      help=f"Comma-separated: {', '.join(members)}."), str)
            needs_scorer = any(BY_NAME[m].needs_scorer for m in members)
            params = [bench] + option_params + _model_params(mode) + (_scorer_params() if needs_scorer else [])
            resolve = _group_resolver(group, [p.name for p in option_params], mode)
            target.command(group.name)(_command(group.name, group.summary, params,
                                                lambda values, m=mode, r=resolve: _execute(m, r, values)))
