"""MGSM: multilingual grade-school math (Shi et al. 2022), the Flan paper's protocol.

Settings:
- ``native_cot``: 8 exemplars with rationales in the target language (the Flan protocol);
- ``en_cot``: the English exemplars, then the native question (Shi et al.'s EN-COT);
- ``direct``: 8 native exemplars with the answer only;
- ``zero_shot_cot``: no exemplars, the answer prefix followed by a native trigger phrase.
Self-consistency: ``samples > 1`` samples that many CoT answers (temperature 0.7, top-k 40)
and reports maj@1 (first sample) and maj@k (majority vote over extracted numbers).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rai_multi.aggregate import by_language
from rai_multi.data.mgsm import (
    HUB_DATASET,
    Exemplar,
    exemplars_path,
    load_exemplars,
    load_exemplars_hub,
    load_mgsm_hub,
    load_mgsm_tsv,
    tsv_path,
)
from rai_multi.errors import ConfigError, DataError
from rai_multi.languages import MGSM_LANGS, LanguageConfig, get_language
from rai_multi.records import GenerationRequest, Metric, Response, Sample
from rai_multi.sampling import DEFAULT_LIMIT_RULE, LIMIT_RULES, check_limit_rule, limit_items, sample_record
from rai_multi.scoring.numbers import extract_answer, numbers_equal
from rai_multi.samples import write_mgsm_sample
from rai_multi.data.sources import source
from rai_multi.tasks.spec import (
    COMMON_METRICS, LANGS_HELP, TIER_HELP, BenchmarkSpec, BuildContext, Headline, MetricInfo,
    chosen_languages, opt,
)

SETTINGS = ("native_cot", "en_cot", "direct", "zero_shot_cot")
COT_SETTINGS = ("native_cot", "en_cot", "zero_shot_cot")
SC_TEMPERATURE = 0.7
SC_TOP_K = 40


def _join(label: str, text: str) -> str:
    """Label and text as the exemplars join them (no space after a full-width colon)."""
    return f"{label}{text}" if label.endswith("：") else f"{label} {text}"


def _strip_label(text: str, label: str) -> str:
    return text[len(label):].lstrip() if text.startswith(label) else text


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass
class MgsmTask:
    """MGSM for a list of languages in one setting."""

    langs: Sequence[str]
    data_dir: Path | None
    setting: str = "native_cot"
    limit: int | None = None
    shots: int = 8
    samples: int = 1
    max_new_tokens: int | None = None
    seed: int = 1234
    limit_rule: str = DEFAULT_LIMIT_RULE
    _ids: list[str] | None = field(default=None, init=False, repr=False)

    name = "mgsm"
    version = "2"  # 2: unreadable numbers give no answer; "." and plain-space grouping per language config

    def __post_init__(self) -> None:
        self.prompting = self.setting  # the prompt format
        if self.prompting not in SETTINGS:
            raise ConfigError(f"unknown MGSM setting {self.prompting!r}; choose one of {', '.join(SETTINGS)}")
        if self.samples > 1 and self.prompting not in COT_SETTINGS:
            raise ConfigError("self-consistency (--samples > 1) needs a chain-of-thought setting")
        if not 0 <= self.shots <= 8:
            raise ConfigError("MGSM has 8 exemplars per language: --shots must be 0-8")
        for code in self.langs:
            if code not in MGSM_LANGS:
                raise ConfigError(f"language {code!r} is not in MGSM; MGSM languages: {', '.join(MGSM_LANGS)}")
        check_limit_rule(self.limit_rule)
        self._exemplars: dict[str, list[Exemplar]] | None = None
        # The run's setting names self-consistency too, so maj@k runs never overwrite greedy ones.
        if self.samples > 1:
            self.setting = f"{self.prompting}-sc{self.samples}"

    # ---------------------------------------------------------------- config
    @property
    def new_tokens(self) -> int:
        return self.max_new_tokens or (16 if self.prompting == "direct" else 256)

    def config(self) -> dict[str, Any]:
        return {
            "setting": self.setting,
            "prompting": self.prompting,
            "langs": list(self.langs),
            "limit": self.limit,
            "sample": self._sample_record(),
            "shots": 0 if self.prompting == "zero_shot_cot" else self.shots,
            "samples": self.samples,
            "max_new_tokens": self.new_tokens,
            "sampling": {"temperature": SC_TEMPERATURE, "top_k": SC_TOP_K} if self.samples > 1 else "greedy",
            "source": str(self.data_dir) if self.data_dir else f"hub:{HUB_DATASET}",
        }

    def _sample_record(self) -> dict[str, Any]:
        if self._ids is None and self.limit is not None:
            self.build_samples()
        return sample_record(self.limit_rule, self.limit,
                             "per language: a seeded sample (the same question numbers in every language)", self._ids)

    def data_files(self) -> list[Path]:
        if self.data_dir is None:
            return []
        return [tsv_path(self.data_dir, c) for c in self.langs] + [exemplars_path(self.data_dir)]

    # ---------------------------------------------------------------- prompts
    def exemplars(self) -> dict[str, list[Exemplar]]:
        if self._exemplars is None:
            if self.data_dir is None:
                needed = sorted(set(self.langs) | ({"en"} if self.prompting == "en_cot" else set()))
                self._exemplars = load_exemplars_hub(needed)
            else:
                self._exemplars = load_exemplars(exemplars_path(self.data_dir))
            if self.prompting != "zero_shot_cot":
                needed = {"en"} if self.prompting == "en_cot" else set(self.langs)
                missing = sorted(needed - set(self._exemplars))
                if missing:
                    where = exemplars_path(self.data_dir) if self.data_dir else f"hub:{HUB_DATASET}"
                    raise DataError(f"{where}: no exemplars for {', '.join(missing)}")
        return self._exemplars

    def prompt(self, lang: LanguageConfig, question: str) -> str:
        phrases = lang.mgsm
        assert phrases is not None
        english = get_language("en").mgsm
        assert english is not None
        if self.prompting == "zero_shot_cot":
            return f"{_join(phrases.question, question)}\n{_join(phrases.answer_prefix, phrases.zero_shot_cot_trigger)}"
        shots = self.exemplars()["en" if self.prompting == "en_cot" else lang.code][: self.shots]
        if self.prompting == "direct":
            blocks = [
                f"{ex.question}\n{_join(phrases.direct_answer_prefix, _format_number(ex.number))}" for ex in shots
            ]
            tail = f"{_join(phrases.question, question)}\n{phrases.direct_answer_prefix}"
        elif self.prompting == "en_cot":
            blocks = [f"{ex.question}\n{ex.answer}" for ex in shots]
            tail = f"{_join(english.question, question)}\n{english.answer_prefix}"
        else:
            blocks = [f"{ex.question}\n{ex.answer}" for ex in shots]
            tail = f"{_join(phrases.question, question)}\n{phrases.answer_prefix}"
        return "\n\n".join(blocks + [tail])

    def _request(self, lang: LanguageConfig, question: str) -> GenerationRequest:
        stops = tuple(lang.stop)
        if self.prompting == "en_cot":
            stops = tuple(dict.fromkeys(stops + get_language("en").stop))
        sampled = self.samples > 1
        return GenerationRequest(
            prompt=self.prompt(lang, question),
            max_new_tokens=self.new_tokens,
            stop=stops,
            num_samples=self.samples,
            do_sample=sampled,
            temperature=SC_TEMPERATURE if sampled else 1.0,
            top_k=SC_TOP_K if sampled else 0,
            seed=self.seed,
        )

    def build_samples(self) -> list[Sample]:
        samples = []
        for code in self.langs:
            lang = get_language(code)
            items = (
                load_mgsm_tsv(tsv_path(self.data_dir, code), code)
                if self.data_dir is not None
                else load_mgsm_hub(code)
            )
            # one stratum per language: MGSM is parallel, so the same seed picks the same
            # question numbers in every language (languages stay comparable item by item)
            for item in limit_items(items, lambda _: code, self.limit, self.seed, self.limit_rule):
                samples.append(
                    Sample(item.id, code, self._request(lang, item.question), item.answer, {"answer_raw": item.answer_raw})
                )
        self._ids = [s.id for s in samples]
        return samples

    # ---------------------------------------------------------------- scoring
    def _extra_prefixes(self) -> tuple[str, ...]:
        english = get_language("en").mgsm
        assert english is not None
        return (english.final_answer_prefix,) if self.prompting == "en_cot" else ()

    def score(self, samples: Sequence[Sample], responses: Sequence[Response]) -> list[dict[str, Any]]:
        rows = []
        extra = self._extra_prefixes()
        for sample, response in zip(samples, responses):
            lang = get_language(sample.lang)
            outputs = list(response.outputs or ("",))
            found = [extract_answer(o, lang, extra) for o in outputs]
            row: dict[str, Any] = {
                "gold": sample.target,
                "extracted": found[0].value,
                "extraction": found[0].method,
                "correct": int(numbers_equal(found[0].value, sample.target)),
            }
            if len(outputs) > 1:
                values = [f.value for f in found if f.value is not None]
                majority = Counter(values).most_common(1)[0][0] if values else None
                row.update(
                    extracted_all=[f.value for f in found],
                    extractions=[f.method for f in found],
                    majority=majority,
                    correct_majority=int(numbers_equal(majority, sample.target)),
                )
            rows.append(row)
        return rows

    def metrics(self, rows: Sequence[dict[str, Any]], seed: int) -> list[Metric]:
        metrics = by_language("accuracy", rows, lambda r: r["correct"], seed)
        if self.samples > 1:
            metrics += by_language("maj@1", rows, lambda r: r["correct"], seed)
            metrics += by_language(f"maj@{self.samples}", rows, lambda r: r["correct_majority"], seed)
        for method in ("phrase", "fallback", "none"):
            metrics += [
                m for m in by_language(f"extraction_{method}_rate", rows, lambda r, m=method: float(r["extraction"] == m), seed)
                if m.slice.startswith("lang=") or m.slice == "all"
            ]
        return metrics


# ---------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class MgsmOptions:
    """Options of an MGSM run (suite keys and ``eval mgsm`` flags)."""

    setting: str = opt("native_cot", "Prompt format.", choices=SETTINGS)
    langs: tuple[str, ...] | None = opt(None, LANGS_HELP)
    tier: str | None = opt(None, TIER_HELP, choices=("high", "low", "en"))
    limit: int | None = opt(None, "At most N questions per language (a seeded sample unless --limit-rule head).", min=1)
    limit_rule: str = opt("stratified", "How --limit picks items: stratified (a seeded sample spread over the "
                                        "benchmark's strata) or head (the first N).", choices=LIMIT_RULES)
    samples: int = opt(1, "Self-consistency: sampled CoT answers per question (maj@k).", min=1)
    shots: int = opt(8, "Exemplars in the prompt (0-8).", min=0, max=8, score=False)
    max_new_tokens: int | None = opt(None, "Default 256 for CoT, 16 for direct.", min=1, score=False)


def build_mgsm(options: MgsmOptions, ctx: BuildContext) -> MgsmTask:
    return MgsmTask(langs=chosen_languages(options.langs, options.tier, MGSM_LANGS), data_dir=ctx.data_dir,
                    setting=options.setting, limit=options.limit, samples=options.samples, shots=options.shots,
                    max_new_tokens=options.max_new_tokens, seed=ctx.seed,
                    limit_rule=options.limit_rule)


def _mgsm_decontam(data_dir: Path) -> list[tuple[str, tuple[str, ...]]]:
    files = sorted((data_dir / "mgsm").glob("mgsm_*.tsv"))
    return [(i.id, (i.question,)) for p in files for i in load_mgsm_tsv(p, p.stem[len("mgsm_"):])]


SPEC = BenchmarkSpec(
    name="mgsm",
    summary="MGSM multilingual grade-school math: language-sliced accuracy with bootstrap CIs.",
    options=MgsmOptions,
    build=build_mgsm,
    headline=Headline("accuracy", "correct"),
    metrics={
        "accuracy": MetricInfo("higher"),
        "maj@": MetricInfo("higher", description="self-consistency: majority vote over k sampled answers"),
        **{k: COMMON_METRICS[k] for k in ("extraction_phrase_rate", "extraction_fallback_rate", "extraction_none_rate")},
    },
    data=source("mgsm"),
    language_sliced=True,
    diagnostics=("extraction_none_rate", "extraction_fallback_rate"),
    section="multilingual",
    write_sample=write_mgsm_sample,
    decontam_texts=_mgsm_decontam,
    prediction_ids='rows {"id": "mgsm/<lang>/<i>", "output": ...}',
)
