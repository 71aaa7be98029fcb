"""TyDiQA GoldP, the Flan paper's protocol: one-shot, greedy, exact match, averaged over
the 8 non-English languages (slice ``all_excl_en``).

One-shot exemplar: drawn with the run seed from the train split of the same language when
there is one (GoldP train ships for en, ko, sw here), else from dev with the evaluated item
(and any question on the same passage) excluded; which one is recorded per sample. Exemplars are drawn among passages of at most
1,500 characters, so the one shot does not crowd the evaluated passage out of the window.
Prompts longer than the model's window are cut at the end of the evaluated passage (its
start, the question and the answer cue are kept whole); the count lands in metrics.json.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rai_multi.aggregate import by_language
from rai_multi.data.tydiqa import GOLDP_LANGS, QAItem, find_file, load_tydiqa
from rai_multi.errors import ConfigError
from rai_multi.records import GenerationRequest, Metric, Response, Sample
from rai_multi.sampling import DEFAULT_LIMIT_RULE, LIMIT_RULES, check_limit_rule, limit_items, sample_record
from rai_multi.scoring import qa
from rai_multi.samples import write_tydiqa_sample
from rai_multi.data.sources import source
from rai_multi.tasks.spec import (
    COMMON_METRICS, LANGS_HELP, TIER_HELP, BenchmarkSpec, BuildContext, Headline, MetricInfo,
    chosen_languages, opt,
)

EXEMPLAR_MAX_CHARS = 1500
TokenCounter = Callable[[str], int]


def render(context: str, question: str, answer: str | None = None) -> str:
    block = f"Passage: {context}\nQuestion: {question}\nAnswer:"
    return block if answer is None else f"{block} {answer}"


@dataclass
class TydiqaTask:
    langs: Sequence[str]
    data_dir: Path | None
    shots: int = 1
    limit: int | None = None
    max_new_tokens: int = 32
    seed: int = 1234
    max_prompt_tokens: int | None = None
    count_tokens: TokenCounter | None = field(default=None, repr=False)
    limit_rule: str = DEFAULT_LIMIT_RULE

    name = "tydiqa"
    version = "1"

    def __post_init__(self) -> None:
        if self.shots not in (0, 1):
            raise ConfigError("TyDiQA GoldP runs zero- or one-shot: --shots must be 0 or 1")
        for code in self.langs:
            if code not in GOLDP_LANGS:
                raise ConfigError(f"language {code!r} is not in TyDiQA GoldP; GoldP languages: {', '.join(GOLDP_LANGS)}")
        check_limit_rule(self.limit_rule)
        self._files: list[Path] = []
        self._ids: list[str] | None = None

    @property
    def setting(self) -> str:
        return "one_shot" if self.shots == 1 else "zero_shot"

    def config(self) -> dict[str, Any]:
        return {
            "langs": list(self.langs),
            "shots": self.shots,
            "limit": self.limit,
            "sample": self._sample_record(),
            "max_new_tokens": self.max_new_tokens,
            # The budget itself is the model's (its window minus max_new_tokens): recording the
            # number here made a base model and its comparison model with different windows
            # (Gemma 3 32k, SmolLM2 8k) "not comparable" on every TyDiQA run, though no
            # prompt was cut. The rule is the task's; how many passages were cut for each
            # model is its truncated_rate diagnostic.
            "passage_cut_to": "the model's context window minus max_new_tokens" if self.max_prompt_tokens else None,
            "prompt": render("{passage}", "{question}"),
            "f1_tokenization": {c: qa.tokenization_for(c) for c in self.langs},
            "source": str(self.data_dir) if self.data_dir else "hub:google-research-datasets/tydiqa",
        }

    def _sample_record(self) -> dict[str, Any]:
        if self._ids is None and self.limit is not None:
            self.build_samples()
        return sample_record(self.limit_rule, self.limit, "per language: a seeded sample of the dev questions",
                             self._ids)

    def data_files(self) -> list[Path]:
        if self.data_dir is None:
            return []
        files = []
        for code in self.langs:
            for split in ("dev", "train"):
                found = find_file(self.data_dir, split, code)
                if found and found[0] not in files:
                    files.append(found[0])
        return files

    # ---------------------------------------------------------------- prompts
    def _exemplar(self, lang: str, item: QAItem, pool: list[QAItem], source: str) -> QAItem:
        rng = random.Random(self.seed + zlib.crc32(f"{lang}|{item.id}".encode()))
        # Never the evaluated question, nor another question on its passage (the shot would
        # hand the model the passage it is about to be asked about, with an answer span).
        others = [x for x in pool if x.id != item.id and x.context != item.context]
        candidates = [x for x in others if len(x.context) <= EXEMPLAR_MAX_CHARS] or others
        if not candidates:
            raise ConfigError(f"no exemplar available for {lang} ({source} has only the evaluated item)")
        return rng.choice(candidates)

    def _fits(self, prompt: str) -> bool:
        if self.max_prompt_tokens is None or self.count_tokens is None:
            return True
        return self.count_tokens(prompt) <= self.max_prompt_tokens

    def prompt_for(self, item: QAItem, exemplar: QAItem | None) -> tuple[str, bool]:
        """The prompt and whether the evaluated passage had to be cut to fit the window."""
        shot = f"{render(exemplar.context, exemplar.question, exemplar.answers[0])}\n\n" if exemplar else ""
        full = shot + render(item.context, item.question)
        if self._fits(full):
            return full, False
        lo, hi = 0, len(item.context)  # longest passage prefix that fits, by bisection
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._fits(shot + render(item.context[:mid], item.question)):
                lo = mid
            else:
                hi = mid - 1
        return shot + render(item.context[:lo], item.question), True

    def build_samples(self) -> list[Sample]:
        samples = []
        for code in self.langs:
            dev, _ = load_tydiqa(self.data_dir, code, "dev")
            items = limit_items(dev, lambda _: code, self.limit, self.seed, self.limit_rule)
            pool, source = dev, "dev"
            # The hub's secondary_task has a train split for every GoldP language.
            has_train = self.data_dir is None or find_file(self.data_dir, "train", code) is not None
            if self.shots and has_train:
                pool, source = load_tydiqa(self.data_dir, code, "train")[0], "train"
            for item in items:
                exemplar = self._exemplar(code, item, pool, source) if self.shots else None
                prompt, truncated = self.prompt_for(item, exemplar)
                request = GenerationRequest(prompt=prompt, max_new_tokens=self.max_new_tokens, stop=("\n",))
                meta = {
                    "exemplar_id": exemplar.id if exemplar else None,
                    "exemplar_source": source if exemplar else None,
                    "truncated": truncated,
                    "answer_in_prompt": any(a in prompt.rsplit("Passage: ", 1)[-1] for a in item.answers),
                }
                samples.append(Sample(item.id, code, request, list(item.answers), meta))
        self._ids = [s.id for s in samples]
        return samples

    # ---------------------------------------------------------------- scoring
    def score(self, samples: Sequence[Sample], responses: Sequence[Response]) -> list[dict[str, Any]]:
        rows = []
        for sample, response in zip(samples, responses):
            prediction = (response.outputs or ("",))[0].strip()
            golds = sample.target
            rows.append(
                {
                    "prediction": prediction,
                    "golds": golds,
                    "squad_em": qa.squad_exact_match(prediction, golds),
                    "squad_f1": qa.squad_f1(prediction, golds),
                    "em": qa.exact_match(prediction, golds, sample.lang),
                    "f1": qa.f1(prediction, golds, sample.lang),
                    **dict(sample.meta),
                }
            )
        return rows

    def metrics(self, rows: Sequence[dict[str, Any]], seed: int) -> list[Metric]:
        metrics: list[Metric] = []
        for name in ("squad_em", "squad_f1", "em", "f1"):
            metrics += by_language(name, rows, lambda r, n=name: r[n], seed)
        metrics += [
            m for m in by_language("truncated_rate", rows, lambda r: float(r["truncated"]), seed)
            if m.slice.startswith("lang=") or m.slice == "all"
        ]
        return metrics


# ---------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class TydiqaOptions:
    """Options of a TyDiQA GoldP run (suite keys and ``eval tydiqa`` flags)."""

    langs: tuple[str, ...] | None = opt(None, LANGS_HELP)
    tier: str | None = opt(None, TIER_HELP, choices=("high", "low", "en"))
    shots: int = opt(1, "0 or 1 (the Flan protocol is one-shot).", min=0, max=1)
    limit: int | None = opt(None, "At most N questions per language (a seeded sample unless --limit-rule head).", min=1)
    limit_rule: str = opt("stratified", "How --limit picks items: stratified (a seeded sample spread over the "
                                        "benchmark's strata) or head (the first N).", choices=LIMIT_RULES)
    max_new_tokens: int = opt(32, "Answer length limit (generation also stops at a newline).", min=1, score=False)


def prompt_budget(adapter: object, max_new_tokens: int) -> int | None:
    """Prompt tokens a model can take: its window, less the new tokens for decoder-only models."""
    window = getattr(adapter, "max_context", None)
    if window is None:
        return None
    describe = getattr(adapter, "description", lambda: {})
    return window if describe().get("seq2seq") else max(1, window - max_new_tokens)


def build_tydiqa(options: TydiqaOptions, ctx: BuildContext) -> TydiqaTask:
    """The task; with a model in ``ctx`` prompts are cut to its window (its token counter)."""
    adapter = ctx.adapter
    counter = getattr(adapter, "count_tokens", None) if adapter is not None else None
    return TydiqaTask(langs=chosen_languages(options.langs, options.tier, GOLDP_LANGS), data_dir=ctx.data_dir,
                      shots=options.shots, limit=options.limit, max_new_tokens=options.max_new_tokens, seed=ctx.seed,
                      max_prompt_tokens=prompt_budget(adapter, options.max_new_tokens) if counter else None,
                      count_tokens=counter, limit_rule=options.limit_rule)


def _tydiqa_decontam(data_dir: Path) -> list[tuple[str, tuple[str, ...]]]:
    from rai_multi.data.tydiqa import read_squad_json

    files = sorted((data_dir / "tydiqa_goldp" / "dev").glob("*.json"))
    return [(i.id, (i.context, i.question)) for p in files for i in read_squad_json(p)]


SPEC = BenchmarkSpec(
    name="tydiqa",
    summary="TyDiQA GoldP: SQuAD-comparable and language-aware EM/F1, one-shot.",
    options=TydiqaOptions,
    build=build_tydiqa,
    headline=Headline("squad_em", "squad_em"),
    metrics={
        "squad_em": MetricInfo("higher", description="SQuAD v1.1 exact match"),
        "squad_f1": MetricInfo("higher", description="SQuAD v1.1 F1"),
        "em": MetricInfo("higher", description="exact match, language-aware normalisation"),
        "f1": MetricInfo("higher", description="F1, language-aware tokenisation"),
        "truncated_rate": COMMON_METRICS["truncated_rate"],
    },
    data=source("tydiqa"),
    language_sliced=True,
    diagnostics=("truncated_rate",),
    section="multilingual",
    write_sample=write_tydiqa_sample,
    decontam_texts=_tydiqa_decontam,
    prediction_ids='rows {"id": <upstream question id>, "output": ...}',
)
