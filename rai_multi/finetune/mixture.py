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

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RENDERINGS = ("zero_shot_answer", "zero_shot_cot", "few_shot_answer", "few_shot_cot")
FORMATS = {
    "flan_cot_tsv": ("question", "answer", "rationale"),
    "gsm8k_jsonl": ("question", "answer", "rationale"),
    "tydiqa_json": ("context", "question", "answer"),
}
SOURCE_KEYS = {"name", "format", "path", "templates", "answer_template", "cot_template", "limit"}
TOP_KEYS = {"seed", "total_examples", "cap", "few_shot_exemplars", "max_input_tokens", "max_target_tokens",
            "cot_trigger", "renderings", "source"}


@dataclass(frozen=True)
class SourceConfig:
    name: str
    format: str
    path: Path
    templates: tuple[str, ...]
    answer_template: str
    cot_template: str | None
    limit: int | None = None


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

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "seed": self.seed, "total_examples": self.total_examples, "cap": self.cap,
                "few_shot_exemplars": self.few_shot_exemplars, "max_input_tokens": self.max_input_tokens,
                "max_target_tokens": self.max_target_tokens, "cot_trigger": self.cot_trigger,
                "renderings": self.renderings,
                "sources": [{"name": s.name, "format": s.format, "path": str(s.path), "templates": list(s.templates),
                             "answer_template": s.answer_template, "cot_template": s.cot_template, "limit": s.limit}
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
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def load_mixture(path: Path, data_dir: Path) -> MixtureConfig:
    """Parse and validate a mixture TOML; source paths are relative to ``data_dir``."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read mixture config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    shares = raw.get("renderings", {r: 0.25 for r in RENDERINGS})
    if set(shares) - set(RENDERINGS) or abs(sum(shares.values()) - 1.0) > 1e-6 or min(shares.values()) < 0:
        raise ConfigError(f"{path}: [renderings] takes shares of {', '.join(RENDERINGS)} that sum to 1")
    sources = []
    for i, s in enumerate(raw.get("source", [])):
        where = f"{path}: [[source]] {i + 1}"
        unknown = set(s) - SOURCE_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        if s.get("format") not in FORMATS:
            raise ConfigError(f"{where}: 'format' must be one of {', '.join(FORMATS)}")
        available = set(FORMATS[s["format"]])
        templates = tuple(s.get("templates", ()))
        if not templates:
            raise ConfigError(f"{where}: needs at least one input template")
        for t in (*templates, s.get("answer_template", "{answer}"), s.get("cot_template") or ""):
            missing = template_fields(t) - available
            if missing:
                raise ConfigError(f"{where} ({s.get('name')}): template {t!r} refers to missing field(s) "
                                  f"{', '.join(sorted(missing))}; {s['format']} has {', '.join(sorted(available))}")
        source_path = data_dir / s.get("path", "")
        if not source_path.is_file():
            raise ConfigError(f"{where} ({s.get('name')}): source file does not exist: {source_path}")
        sources.append(SourceConfig(str(s["name"]), s["format"], source_path, templates,
                                    s.get("answer_template", "{answer}"), s.get("cot_template"), s.get("limit")))
    if not sources:
        raise ConfigError(f"{path}: no [[source]] tables")
    if len({s.name for s in sources}) != len(sources):
        raise ConfigError(f"{path}: source names must be unique")
    return MixtureConfig(path, tuple(sources), dict(shares), int(raw.get("seed", 1234)),
                         int(raw.get("total_examples", 1000)), int(raw.get("cap", 3000)),
                         int(raw.get("few_shot_exemplars", 2)), int(raw.get("max_input_tokens", 512)),
                         int(raw.get("max_target_tokens", 128)), str(raw.get("cot_trigger", "Let's think step by step.")))


# ---------------------------------------------------------------- readers
def _unescape(text: str) -> str:
    return text.replace("\\n", "\n").strip()


def read_source(source: SourceConfig) -> list[dict[str, str]]:
    """Rows of a source as dicts of its format's fields."""
    rows: list[dict[str, str]] = []
    if source.format == "flan_cot_tsv":
        with open(source.path, encoding="utf-8", newline="") as fh:
            for lineno, parts in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
                if len(parts) != 3:
                    raise DataError(f"{source.path}:{lineno}: expected question, answer, rationale (3 fields)")
                rows.append({"question": _unescape(parts[0]), "answer": parts[1].strip(), "rationale": _unescape(parts[2])})
    elif source.format == "gsm8k_jsonl":
        with open(source.path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                try:
                    row = json.loads(line)
                    rationale, answer = row["answer"].rsplit("####", 1)
                except (json.JSONDecodeError, KeyError, ValueError):
                    raise DataError(f"{source.path}:{lineno}: expected GSM8K {{question, answer '... #### N'}}") from None
                rationale = re.sub(r"<<[^>]*>>", "", rationale).strip()
                rows.append({"question": row["question"].strip(), "answer": answer.strip(), "rationale": rationale})
    else:
        from rai_multi.data.tydiqa import read_squad_json

        rows = [{"context": i.context, "question": i.question, "answer": i.answers[0]} for i in read_squad_json(source.path)]
    return rows[: source.limit] if source.limit else rows


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


def build_mixture(config: MixtureConfig) -> list[Example]:
    """Draw ``total_examples`` examples across sources at the capped rates, each rendered
    with a template and one of the four renderings (seeded)."""
    rng = random.Random(config.seed)
    data = {s.name: read_source(s) for s in config.sources}
    mix = rates({k: len(v) for k, v in data.items()}, config.cap)
    examples: list[Example] = []
    for source in config.sources:
        rows = data[source.name]
        n = min(len(rows), round(config.total_examples * mix[source.name]))
        chosen = rng.sample(range(len(rows)), n)
        allowed = {r: w for r, w in config.renderings.items() if source.cot_template or not r.endswith("_cot")}
        names, weights = list(allowed), list(allowed.values())
        for index in chosen:
            rendering = rng.choices(names, weights=weights)[0] if sum(weights) > 0 else "zero_shot_answer"
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
