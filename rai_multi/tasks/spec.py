"""What rai-multi knows about one benchmark, in one place: its :class:`BenchmarkSpec`.

Every benchmark module (``rai_multi/tasks/<name>.py``) ends with a ``SPEC`` that holds its
name, a typed options dataclass, the builder that turns options into a task, where its
data lives (local layout and a hub dataset at a pinned revision), the headline metric and
the field that pairs two models on it, and per metric its direction, reference value and
aggregation. The CLI, the suite parser, the audit, the report, the gate and
decontamination read these specs (through ``rai_multi.tasks.table``) instead of keeping
their own lists, so a metric nobody described is an error rather than a silent
"higher is better".
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

from rai_multi.data.sources import DataSource
from rai_multi.errors import ConfigError

Direction = Literal["higher", "lower", "reference"]
Aggregation = Literal["macro", "micro", "statistic", "count"]


@dataclass(frozen=True)
class MetricInfo:
    """How to read one metric: which way is better, the unbiased reference value (for
    ``direction="reference"``), and how its number is formed from items.

    ``aggregation``: ``micro`` (a mean over the slice's items), ``statistic`` (a ratio or
    AUC over the slice's items, not a mean of per-item values), ``count`` (a tally, no CI).
    Language slices (``all``, ``all_excl_en``, ``tier=``, ``joshi=``) of language-sliced
    tasks are always macro-averages over languages; ``slice_aggregation`` says so per slice.
    """

    direction: Direction
    aggregation: Aggregation = "micro"
    reference: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if (self.direction == "reference") != (self.reference is not None):
            raise ValueError("a reference value goes with direction='reference', and only there")

    def better(self, baseline: float, candidate: float) -> bool | None:
        """Whether ``candidate`` is better than ``baseline`` (None: equally good)."""
        if self.direction == "reference":
            assert self.reference is not None
            db, dc = abs(baseline - self.reference), abs(candidate - self.reference)
            return None if db == dc else dc < db
        if candidate == baseline:
            return None
        return (candidate > baseline) == (self.direction == "higher")

    def to_json(self) -> dict[str, Any]:
        return {"direction": self.direction, "reference": self.reference, "aggregation": self.aggregation}


LANGUAGE_MACRO_SLICES = ("all", "all_excl_en")


def slice_aggregation(info: MetricInfo, slice_name: str, language_sliced: bool) -> str:
    """``macro`` for the language-average slices of a language-sliced task, else the
    metric's own aggregation (``pooled`` is the micro-average over every item)."""
    if language_sliced and info.aggregation == "micro":
        if slice_name in LANGUAGE_MACRO_SLICES or slice_name.split("=")[0] in ("tier", "joshi"):
            return "macro"
    return info.aggregation


@dataclass(frozen=True)
class Headline:
    """A task's headline metric and the per-sample field that pairs two models on it
    (None: no per-item pairing; only the CIs are compared). ``only`` restricts the rows
    the paired field is read from (BBQ accuracy in disambiguated contexts)."""

    metric: str
    field: str | None
    only: tuple[str, str] | None = None
    statistic: str = "mean"  # "mean" of the field, or "auc" of the field against the row's label
    unpaired: tuple[str, ...] = ()  # slice prefixes whose metric is not a mean over the slice's rows

    def pairs(self, slice_name: str) -> bool:
        return self.field is not None and not (self.unpaired and slice_name.startswith(self.unpaired))


@dataclass(frozen=True)
class FigureHint:
    """A bar chart of ``metric`` over the slices starting with ``prefix``."""

    metric: str
    prefix: str
    title: str


@dataclass(frozen=True)
class BuildContext:
    """What a builder may use besides its options: the data folder (None: the hub), the
    run seed, the toxicity scorer (for tasks that need one) and its optional calibration,
    and the loaded model, whose
    window bounds prompts (None when only checking data files or replaying predictions)."""

    data_dir: Path | None
    seed: int
    scorer: Any = None
    adapter: Any = None
    calibration: Any = None  # a scorer calibration onto the Perspective scale (scoring/calibration.py)


# Diagnostics several tasks emit; a task lists the ones it has in its own table.
COMMON_METRICS: dict[str, MetricInfo] = {
    "truncated_rate": MetricInfo("lower", description="prompts cut to fit the model's window"),
    "extraction_none_rate": MetricInfo("lower", description="outputs with no answer found"),
    "extraction_fallback_rate": MetricInfo("lower", description="answers taken from the last number, not a phrase"),
    "extraction_phrase_rate": MetricInfo("higher", description="answers found after the final-answer phrase"),
}


@dataclass(frozen=True)
class BenchmarkSpec:
    """The one source of truth about a benchmark (see the module docstring)."""

    name: str                       # the run's task name (manifest, metrics.json, policies)
    summary: str                    # one line: the CLI help and the README table
    options: type                   # a dataclass of typed options; see parse_options
    build: Callable[[Any, BuildContext], Any]
    headline: Headline
    metrics: Mapping[str, MetricInfo]
    data: DataSource                # rai_multi/data/sources.py: local layout, hub id and revision
    language_sliced: bool = False   # metrics come per language with macro slices
    needs_scorer: bool = False      # a toxicity scorer scores its outputs
    scorable: bool = True           # `score <name>` can replay predictions made elsewhere
    figures: tuple[FigureHint, ...] = ()
    diagnostics: tuple[str, ...] = ()
    section: Literal["multilingual", "rai"] = "rai"
    write_sample: Callable[[Path], None] | None = None
    decontam_texts: Callable[[Path], list[tuple[str, tuple[str, ...]]]] | None = None
    prediction_ids: str = ""        # how `score` expects ids, for the help text
    limit_field: str | None = "limit"  # the option `audit --limit N` overrides (None: none)
    score_options: Mapping[str, Any] = field(default_factory=dict)  # fixed by `score` (replayed text)

    @property
    def cli_name(self) -> str:
        return self.name.replace("_", "-")

    def metric_info(self, metric: str) -> MetricInfo:
        """The metric's description; a metric the spec does not list is a bug here, not a
        quiet "higher is better" downstream. Names ending in ``@`` in the table are
        prefixes (``maj@`` covers ``maj@1`` and ``maj@5``)."""
        if metric in self.metrics:
            return self.metrics[metric]
        for key, info in self.metrics.items():
            if key.endswith("@") and metric.startswith(key):
                return info
        raise KeyError(f"{self.name}: metric {metric!r} is not described in the task's spec")


# ---------------------------------------------------------------------------- options


def opt(default: Any, help: str = "", *, min: float | None = None, max: float | None = None,
        choices: Sequence[Any] | None = None, cli: bool = True, score: bool = True, flag: str | None = None) -> Any:
    """A typed option field: its default, help text, range or choices, and whether it is
    offered on the ``eval``/``score`` command line (``score=False``: model-side only)."""
    meta = {"help": help, "min": min, "max": max, "choices": tuple(choices) if choices else None,
            "cli": cli, "score": score, "flag": flag}
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _strip_optional(kind: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return kind, False


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) is tuple:
        return "a list of strings"
    return {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}.get(kind, str(kind))


def _coerce(value: Any, kind: Any, where: str) -> Any:
    """``value`` checked against ``kind``: no bool for a number, no string for a number,
    lists (or comma-separated strings) for tuples of strings."""
    if typing.get_origin(kind) is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be {_type_name(kind)}")
        return tuple(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number; got {value!r}")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number; got {value!r}")
        return value
    if kind in (str, bool) and not isinstance(value, kind):
        raise ConfigError(f"{where} must be {_type_name(kind)}; got {value!r}")
    return value


def option_fields(cls: type) -> list[tuple[dataclasses.Field, Any, bool]]:
    """Each option field with its value type and whether None is allowed."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind, optional = _strip_optional(hints[f.name])
        out.append((f, kind, optional))
    return out


def parse_options(cls: type, raw: Mapping[str, Any], where: str) -> Any:
    """An options instance from ``raw`` (a suite table or CLI values), every field checked
    for type, range and choice; an unknown key is an error naming ``where``."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for f, kind, optional in option_fields(cls):
        if f.name not in raw:
            continue
        value = raw[f.name]
        label = f"{where}: '{f.name}'"
        if value is None:
            if not optional:
                raise ConfigError(f"{label} must be {_type_name(kind)}, not empty")
            values[f.name] = None
            continue
        value = _coerce(value, kind, label)
        meta = f.metadata
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if meta.get("choices") and item not in meta["choices"]:
                raise ConfigError(f"{label} must be one of {', '.join(map(str, meta['choices']))}; got {item!r}")
            if meta.get("min") is not None and item < meta["min"]:
                raise ConfigError(f"{label} must be at least {meta['min']:g}; got {item!r}")
            if meta.get("max") is not None and item > meta["max"]:
                raise ConfigError(f"{label} must be at most {meta['max']:g}; got {item!r}")
        values[f.name] = value
    return cls(**values)


def options_json(options: Any) -> dict[str, Any]:
    """Options as plain JSON (tuples as lists), for manifests and hashing."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(options).items()}


def chosen_languages(langs: tuple[str, ...] | None, tier: str | None, available: tuple[str, ...]) -> list[str]:
    """The languages an options object asks for (``langs`` or ``tier``), checked."""
    from rai_multi.languages import resolve_languages

    return resolve_languages(",".join(langs) if langs else None, tier, available)


LANGS_HELP = "Comma-separated language codes (default: all of the task's)."
TIER_HELP = "Only languages of this tier: high, low or en."


def require_data_dir(ctx: BuildContext, benchmark: str) -> Path:
    """The data folder, for benchmarks read from local files only."""
    if ctx.data_dir is None:
        raise ConfigError(f"{benchmark} reads local files: pass --data-dir or set RAI_MULTI_DATA")
    return ctx.data_dir
