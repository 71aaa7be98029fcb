"""Flan-style instruction mixtures: sources, several templates per task, and the four
renderings the paper mixes (zero-shot / few-shot x answer-only / chain of thought).

Mixing is examples-proportional with a per-source cap (Flan's scheme): a source's rate is
min(n, cap) / sum over sources of min(n, cap). Everything is seeded and pure: the same
config gives the same examples in the same order.
"""

from __future__ import annotations

import csv
import json
import random
import re
import string
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rai_multi.errors import ConfigError, DataError
from rai_multi.inputs import read_text, reading

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RENDERINGS = ("zero_shot_answer", "zero_shot_cot", "few_shot_answer", "few_shot_cot")
FORMATS = {
    "flan_cot_tsv": ("question", "answer", "rationale"),
    "gsm8k_jsonl": ("question", "answer", "rationale"),
    "tydiqa_json": ("context", "question", "answer"),
    "hub": (),  # a datasets.load_dataset source; its fields are the keys of its ``fields`` table
}
SOURCE_KEYS = {"name", "format", "path", "templates", "answer_template", "cot_template", "limit",
               "dataset", "subset", "split", "fields"}
TOP_KEYS = {"seed", "total_examples", "cap", "few_shot_exemplars", "max_input_tokens", "max_target_tokens",
            "cot_trigger", "renderings", "source", "on_contamination"}
CONTAMINATION_POLICIES = ("refuse", "drop", "allow")  # what to do with exact evaluation items in the mixture


@dataclass(frozen=True)
class SourceConfig:
    name: str
    format: str
    path: Path
    templates: tuple[str, ...]
    answer_template: str
    cot_template: str | None
    limit: int | None = None
    hub: dict[str, Any] | None = None  # format "hub": dataset, subset, split, fields (template field -> column)


@dataclass(frozen=True)
class MixtureConfig:
    path: Path
    sources: tuple[SourceConfig, ...]
    renderings: dict[str, float]
    seed: int = 1234
    total_examples: int = 1000
    cap: int = 3000
    few_shot_exemplars: int = 2
    max_input_tokens: int = 512
    max_target_tokens: int = 128
    cot_trigger: str = "Let's think step by step."
    on_contamination: str = "refuse"

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "seed": self.seed, "total_examples": self.total_examples, "cap": self.cap,
                "few_shot_exemplars": self.few_shot_exemplars, "max_input_tokens": self.max_input_tokens,
                "max_target_tokens": self.max_target_tokens, "cot_trigger": self.cot_trigger,
                "on_contamination": self.on_contamination, "renderings": self.renderings,
                "sources": [{"name": s.name, "format": s.format, "path": str(s.path), "templates": list(s.templates),
                             "answer_template": s.answer_template, "cot_template": s.cot_template, "limit": s.limit,
                             "hub": s.hub}
                            for s in self.sources]}


@dataclass(frozen=True)
class Example:
    id: str           # <source>/<row index>
    source: str
    rendering: str
    template: int
    input: str
    target: str
    fields: dict[str, str] = field(default_factory=dict, compare=False)


def template_fields(template: str) -> set[str]:
    """Field names a ``str.format`` template refers to; malformed braces raise ValueError."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _int(raw: dict[str, Any], key: str, default: int, where: Path, minimum: int = 0) -> int:
    """An integer setting, checked here so that a typo is a one-line error, not a traceback later."""
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: {key!r} must be an integer >= {minimum}, got {value!r}")
    return value


def load_mixture(path: Path, data_dir: Path) -> MixtureConfig:
    """Parse and validate a mixture TOML; source paths are relative to ``data_dir``.

    Everything a user can get wrong (unknown keys, missing files, templates naming fields the
    source format lacks, malformed braces) is a ConfigError here, before any data is read or
    any model is loaded."""
    path = Path(path)
    try:
        raw = tomllib.loads(read_text(path, error=ConfigError, what="mixture config"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    shares = raw.get("renderings", {r: 0.25 for r in RENDERINGS})
    if (not isinstance(shares, dict) or set(shares) - set(RENDERINGS)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in shares.values())
            or abs(sum(shares.values()) - 1.0) > 1e-6):
        raise ConfigError(f"{path}: [renderings] takes non-negative shares of {', '.join(RENDERINGS)} that sum to 1")
    policy = raw.get("on_contamination", "refuse")
    if policy not in CONTAMINATION_POLICIES:
        raise ConfigError(f"{path}: 'on_contamination' must be one of {', '.join(CONTAMINATION_POLICIES)}")
    sources = []
    for i, s in enumerate(raw.get("source", [])):
        where = f"{path}: [[source]] {i + 1}"
        unknown = set(s) - SOURCE_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        if not isinstance(s.get("name"), str) or not s["name"]:
            raise ConfigError(f"{where}: needs a 'name'")
        where = f"{where} ({s['name']})"
        if s.get("format") not in FORMATS:
            raise ConfigError(f"{where}: 'format' must be one of {', '.join(FORMATS)}")
        hub = None
        if s["format"] == "hub":
            fields = s.get("fields")
            if not isinstance(s.get("dataset"), str) or not isinstance(fields, dict) or not fields \
                    or not all(isinstance(v, str) for v in fields.values()):
                raise ConfigError(f"{where}: format 'hub' needs 'dataset' (a hub id, or json/csv with 'path') and "
                                  "'fields' (template field = column)")
            hub = {"dataset": s["dataset"], "subset": s.get("subset"), "split": s.get("split", "train"),
                   "fields": dict(fields)}
            available = set(fields)
            if s["dataset"] in ("json", "csv", "parquet") and not s.get("path"):
                raise ConfigError(f"{where}: dataset {s['dataset']!r} reads a local file: give its 'path'")
        elif not isinstance(s.get("path"), str) or not s["path"]:
            raise ConfigError(f"{where}: needs a 'path' (relative to the data dir)")
        else:
            available = set(FORMATS[s["format"]])
        templates = s.get("templates", ())
        if not isinstance(templates, list) or not templates or not all(isinstance(t, str) for t in templates):
            raise ConfigError(f"{where}: 'templates' must be a non-empty list of strings")
        answer_template = s.get("answer_template", "{answer}")
        cot_template = s.get("cot_template")
        for t in (*templates, answer_template, cot_template or ""):
            if not isinstance(t, str):
                raise ConfigError(f"{where}: templates must be strings, got {t!r}")
            try:
                missing = template_fields(t) - available
            except ValueError as exc:
                raise ConfigError(f"{where}: template {t!r} is not a valid format string ({exc})") from None
            if missing:
                raise ConfigError(f"{where}: template {t!r} refers to missing field(s) "
                                  f"{', '.join(sorted(missing))}; {s['format']} has {', '.join(sorted(available))}")
        limit = s.get("limit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ConfigError(f"{where}: 'limit' must be a positive integer")
        source_path = Path(data_dir) / s["path"] if s.get("path") else None
        if source_path is not None and not source_path.is_file():
            raise ConfigError(f"{where}: source file does not exist: {source_path}")
        sources.append(SourceConfig(s["name"], s["format"], source_path or Path(s["dataset"]), tuple(templates),
                                    answer_template, cot_template, limit, hub))
    if not sources:
        raise ConfigError(f"{path}: no [[source]] tables")
    if len({s.name for s in sources}) != len(sources):
        raise ConfigError(f"{path}: source names must be unique")
    trigger = raw.get("cot_trigger", "Let's think step by step.")
    if not isinstance(trigger, str):
        raise ConfigError(f"{path}: 'cot_trigger' must be a string")
    return MixtureConfig(path, tuple(sources), {r: float(v) for r, v in shares.items()},
                         _int(raw, "seed", 1234, path), _int(raw, "total_examples", 1000, path, 1),
                         _int(raw, "cap", 3000, path, 1), _int(raw, "few_shot_exemplars", 2, path),
                         _int(raw, "max_input_tokens", 512, path, 1), _int(raw, "max_target_tokens", 128, path, 1),
                         trigger, policy)


# ---------------------------------------------------------------- readers
def _unescape(text: str) -> str:
    return text.replace("\\n", "\n").strip()


def read_source(source: SourceConfig) -> list[dict[str, str]]:
    """Rows of a source as dicts of its format's fields (DataError naming file and line)."""
    try:
        rows = _read_rows(source)
    except UnicodeDecodeError as exc:
        raise DataError(f"{source.path}: not UTF-8 text (byte {exc.start})") from None
    if not rows:
        raise DataError(f"{source.path}: source {source.name!r} has no rows")
    return rows[: source.limit] if source.limit else rows


def _read_rows(source: SourceConfig) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    if source.format == "flan_cot_tsv":
        with reading(source.path), open(source.path, encoding="utf-8", newline="") as fh:
            for lineno, parts in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
                if len(parts) != 3:
                    raise DataError(f"{source.path}:{lineno}: expected question, answer, rationale (3 fields)")
                rows.append({"question": _unescape(parts[0]), "answer": parts[1].strip(), "rationale": _unescape(parts[2])})
    elif source.format == "gsm8k_jsonl":
        with reading(source.path), open(source.path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    rationale, answer = row["answer"].rsplit("####", 1)
                    row["question"].strip()
                except (json.JSONDecodeError, KeyError, ValueError, TypeError, AttributeError):
                    raise DataError(f"{source.path}:{lineno}: expected GSM8K {{question, answer '... #### N'}}") from None
                rationale = re.sub(r"<<[^>]*>>", "", rationale).strip()
                rows.append({"question": row["question"].strip(), "answer": answer.strip(), "rationale": rationale})
    elif source.format == "hub":
        rows = _read_hub(source)
    else:
        from rai_multi.data.tydiqa import read_squad_json

        rows = [{"context": i.context, "question": i.question, "answer": i.answers[0]} for i in read_squad_json(source.path)]
    return rows


def _read_hub(source: SourceConfig) -> list[dict[str, str]]:
    """Rows of a ``datasets`` source: a hub id (cached, or online), or a local json/csv file
    given as ``dataset = "json"`` and ``path``; only the mapped columns are kept."""
    hub = source.hub or {}
    try:
        from datasets import load_dataset

        kwargs = {"data_files": str(source.path)} if hub["dataset"] in ("json", "csv", "parquet") else {}
        ds = load_dataset(hub["dataset"], hub.get("subset"), split=hub.get("split", "train"), **kwargs)
    except Exception as exc:  # datasets raises many types (network, missing config, bad split)
        raise DataError(f"source {source.name!r}: cannot load dataset {hub.get('dataset')!r} "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    missing = sorted(set(hub["fields"].values()) - set(ds.column_names))
    if missing:
        raise DataError(f"source {source.name!r}: dataset {hub['dataset']!r} has no column(s) {', '.join(missing)}; "
                        f"it has {', '.join(ds.column_names)}")
    return [{name: str(row[column]).strip() for name, column in hub["fields"].items()} for row in ds]


# ---------------------------------------------------------------- rendering and mixing
def rates(counts: dict[str, int], cap: int) -> dict[str, float]:
    """Examples-proportional mixing rates with a per-source cap."""
    capped = {k: min(n, cap) for k, n in counts.items()}
    total = sum(capped.values())
    return {k: v / total for k, v in capped.items()}


def _render_one(source: SourceConfig, row: dict[str, str], template: int, cot: bool, trigger: str) -> tuple[str, str]:
    text = source.templates[template].format(**row)
    if cot:
        return f"{text}\n{trigger}", source.cot_template.format(**row)  # type: ignore[union-attr]
    return text, source.answer_template.format(**row)


def quotas(n: int, shares: dict[str, float]) -> dict[str, int]:
    """Split ``n`` examples by ``shares`` exactly (largest remainder), so the preview's counts
    are the config's shares and not a random draw around them."""
    total = sum(shares.values())
    if total <= 0:
        return {"zero_shot_answer": n}
    raw = {k: n * w / total for k, w in shares.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (counts[k] - raw[k], list(raw).index(k)))[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def build_mixture(config: MixtureConfig) -> list[Example]:
    """Draw ``total_examples`` examples across sources at the capped rates, each rendered
    with a random template and one of the four renderings in the configured shares (a source
    without rationales gives its CoT share to the answer-only renderings). Seeded."""
    rng = random.Random(config.seed)
    data = {s.name: read_source(s) for s in config.sources}
    mix = rates({k: len(v) for k, v in data.items()}, config.cap)
    examples: list[Example] = []
    for source in config.sources:
        rows = data[source.name]
        n = min(len(rows), round(config.total_examples * mix[source.name]))
        chosen = rng.sample(range(len(rows)), n)
        allowed = {r: w for r, w in config.renderings.items() if source.cot_template or not r.endswith("_cot")}
        assigned = [r for r, k in quotas(n, allowed).items() for _ in range(k)]
        rng.shuffle(assigned)
        for index, rendering in zip(chosen, assigned):
            template = rng.randrange(len(source.templates))
            cot = rendering.endswith("_cot")
            text, target = _render_one(source, rows[index], template, cot, config.cot_trigger)
            if rendering.startswith("few_shot"):
                others = [j for j in rng.sample(range(len(rows)), min(len(rows), config.few_shot_exemplars + 1)) if j != index]
                shots = [_render_one(source, rows[j], template, cot, config.cot_trigger)
                         for j in others[: config.few_shot_exemplars]]
                text = "\n\n".join(f"{q}\n{a}" for q, a in shots) + f"\n\n{text}"
            examples.append(Example(f"{source.name}/{index}", source.name, rendering, template, text, target,
                                    dict(rows[index])))
    rng.shuffle(examples)
    return examples


def preview_counts(examples: list[Example]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter] = {}
    for e in examples:
        table.setdefault(e.source, Counter())[e.rendering] += 1
    return {k: dict(v) for k, v in table.items()}
