"""XCOPA (Ponti et al. 2020): causal commonsense reasoning in 11 languages.

Each item is a premise, a question (``cause`` or ``effect``) and two alternatives.
``mc``: both alternatives scored by log-likelihood after the premise and question;
``generative``: the alternatives listed as 1 and 2, the model's text matched to one (a
leading 1 or 2, else the alternative's text). Accuracy per language, with the macro
slices of every language-sliced task (``all``, ``tier=``, ``joshi=``). The prompt
scaffold is English for every language, so the premise and alternatives are the only
target-language text; a native scaffold would need per-language connectives.

Ids are ``xcopa/<lang>/<idx>`` with the row's own ``idx``; ``score xcopa`` takes rows
whose output is the chosen alternative's text, or 1 or 2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from rai_multi.aggregate import by_language
from rai_multi.data.xcopa import (
    HUB_DATASET, HUB_REVISION, SPLITS, XCOPA_LANGS, XcopaItem, load_xcopa, write_xcopa_sample, xcopa_path,
)
from rai_multi.errors import ConfigError
from rai_multi.records import GenerationRequest, LoglikelihoodRequest, Metric, Response, Sample
from rai_multi.sampling import DEFAULT_LIMIT_RULE, LIMIT_RULES, check_limit_rule, limit_items, sample_record
from rai_multi.tasks.choice import MC_SCORING, NORMALISED, SETTINGS, match_option, mc_fields
from rai_multi.data.sources import source
from rai_multi.tasks.spec import (
    LANGS_HELP, TIER_HELP, BenchmarkSpec, BuildContext, Headline, MetricInfo, chosen_languages, opt,
)

QUESTIONS = {"cause": "What was the cause?", "effect": "What happened as a result?"}
_LEADING_NUMBER = re.compile(r"^\(?([12])(?:[\).:]|\s|$)")


def prompt(item: XcopaItem, generative: bool) -> str:
    head = f"Premise: {item.premise}\nQuestion: {QUESTIONS[item.question]}"
    if generative:
        return f"{head}\n1. {item.choice1}\n2. {item.choice2}\nAnswer:"
    return f"{head}\nAnswer:"


def match_alternative(output: str, alternatives: Sequence[str]) -> int | None:
    """0 or 1 for the alternative a free-text answer names (a leading "1"/"2", else its
    text, see ``match_option``); None when it names neither or both."""
    text = output.strip()
    number = _LEADING_NUMBER.match(text)
    if number:
        return int(number.group(1)) - 1
    return match_option(text, alternatives, letters="")


@dataclass
class XcopaTask:
    langs: Sequence[str]
    data_dir: Path | None
    setting: str = "mc"
    split: str = "test"
    limit: int | None = None  # per language
    seed: int = 1234
    limit_rule: str = DEFAULT_LIMIT_RULE

    name = "xcopa"
    version = "1"

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise ConfigError(f"unknown XCOPA setting {self.setting!r}; choose one of {', '.join(SETTINGS)}")
        if self.split not in SPLITS:
            raise ConfigError(f"XCOPA split must be one of {', '.join(SPLITS)}")
        check_limit_rule(self.limit_rule)
        self._ids: list[str] | None = None

    def config(self) -> dict[str, Any]:
        if self._ids is None:
            self.build_samples()
        return {"setting": self.setting, "split": self.split, "langs": list(self.langs), "limit": self.limit,
                "sample": sample_record(self.limit_rule, self.limit, "per language: question (cause/effect)",
                                        self._ids),
                "mc_scoring": MC_SCORING if self.setting == "mc" else None,
                "prompt": prompt(XcopaItem("xx", self.split, 0, "{premise}", "{choice1}", "{choice2}", "cause", 0),
                                 self.setting == "generative"),
                "source": str(self.data_dir) if self.data_dir else f"hub:{HUB_DATASET}@{HUB_REVISION}"}

    def data_files(self) -> list[Path]:
        if self.data_dir is None:
            return []
        return [xcopa_path(self.data_dir, code, self.split) for code in self.langs]

    def build_samples(self) -> list[Sample]:
        samples = []
        generative = self.setting == "generative"
        for code in self.langs:
            items = limit_items(load_xcopa(self.data_dir, code, self.split), lambda i: i.question, self.limit,
                                self.seed, self.limit_rule)
            for item in items:
                alternatives = (item.choice1, item.choice2)
                request = (GenerationRequest(prompt=prompt(item, True), max_new_tokens=24, stop=("\n",))
                           if generative else LoglikelihoodRequest(prompt(item, False), tuple(f" {a}" for a in alternatives)))
                samples.append(Sample(item.id, code, request, item.label,
                                      {"question": item.question, "alternatives": list(alternatives)}))
        self._ids = [s.id for s in samples]
        return samples

    def score(self, samples: Sequence[Sample], responses: Sequence[Response]) -> list[dict[str, Any]]:
        rows = []
        for sample, response in zip(samples, responses):
            if self.setting == "generative":
                output = (response.outputs or ("",))[0]
                choice = match_alternative(output, sample.meta["alternatives"])
                extra: dict[str, Any] = {"prediction": output.strip(), "choice": choice}
            else:
                continuations = tuple(f" {a}" for a in sample.meta["alternatives"])
                extra = mc_fields(response, continuations, f"{self.seed}|{sample.id}")
                choice = extra["choice"]
                extra.update({f"correct{k[len('choice'):]}": int(extra[k] == sample.target) for k in NORMALISED})
            rows.append({"question": sample.meta["question"], **extra, "gold": sample.target,
                         "correct": int(choice == sample.target), "unmatched": choice is None})
        return rows

    def metrics(self, rows: Sequence[dict[str, Any]], seed: int) -> list[Metric]:
        metrics = by_language("accuracy", rows, lambda r: r["correct"], seed)
        if self.setting == "mc":
            for key in NORMALISED:
                suffix = key[len("choice"):]
                metrics += by_language(f"accuracy{suffix}", rows, lambda r, f=f"correct{suffix}": r[f], seed)
        if self.setting == "generative":
            metrics += [m for m in by_language("unmatched_rate", rows, lambda r: float(r["unmatched"]), seed)
                        if m.slice.startswith("lang=") or m.slice == "all"]
        return metrics


# ---------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class XcopaOptions:
    """Options of an XCOPA run."""

    setting: str = opt("mc", "mc (log-likelihood choice) or generative (answer 1 or 2).", choices=SETTINGS)
    split: str = opt("test", "test (500 per language) or val (100).", choices=SPLITS)
    langs: tuple[str, ...] | None = opt(None, LANGS_HELP)
    tier: str | None = opt(None, TIER_HELP, choices=("high", "low", "en"))
    limit: int | None = opt(None, "At most N items per language (a seeded sample unless --limit-rule head).", min=1)
    limit_rule: str = opt("stratified", "How --limit picks items: stratified (seeded, over cause/effect) or head.",
                          choices=LIMIT_RULES)


def build_xcopa(options: XcopaOptions, ctx: BuildContext) -> XcopaTask:
    return XcopaTask(chosen_languages(options.langs, options.tier, XCOPA_LANGS), ctx.data_dir, options.setting,
                     options.split, options.limit, ctx.seed, options.limit_rule)


def _xcopa_decontam(data_dir: Path) -> list[tuple[str, tuple[str, ...]]]:
    items = []
    for lang in XCOPA_LANGS:
        for split in SPLITS:
            if xcopa_path(data_dir, lang, split).is_file():
                items += [(f"{i.id}/{split}", (i.premise, i.choice1, i.choice2))
                          for i in load_xcopa(data_dir, lang, split)]
    return items


SPEC = BenchmarkSpec(
    name="xcopa",
    summary="XCOPA: causal commonsense reasoning in 11 languages, accuracy by language and tier.",
    options=XcopaOptions,
    build=build_xcopa,
    headline=Headline("accuracy", "correct"),
    metrics={"accuracy": MetricInfo("higher"),
             "accuracy_norm": MetricInfo("higher", description="choice by log-likelihood per byte (lm-eval acc_norm)"),
             "accuracy_per_token": MetricInfo("higher", description="choice by log-likelihood per token"),
             "unmatched_rate": MetricInfo("lower", description="answers naming neither alternative")},
    data=source("xcopa"),
    language_sliced=True,
    diagnostics=("unmatched_rate",),
    section="multilingual",
    write_sample=write_xcopa_sample,
    decontam_texts=_xcopa_decontam,
    score_options={"setting": "generative"},
    prediction_ids='rows {"id": "xcopa/<lang>/<idx>", "output": <alternative text, or 1 or 2>}',
)
