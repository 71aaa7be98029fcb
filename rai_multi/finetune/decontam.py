"""Decontamination: training inputs checked against the evaluation sets rai-multi knows.

Text is normalised (NFKC, case-folded, punctuation removed, whitespace collapsed) and
compared by word 8-grams (the window GPT-3 and Flan-era papers use: long enough that shared
boilerplate rarely matches, short enough to catch a paraphrased wrapper around an item).
A training example sharing an 8-gram with an evaluation item is an *overlap* (reported);
one whose normalised input contains the whole normalised item is an *exact hit*, and exact
hits stop training unless the user says to drop or allow them. Items shorter than 8 words
have no 8-gram and are never matched (none of the sets below has such items)."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from rai_multi.errors import DataError
from rai_multi.finetune.mixture import Example

N = 8


class _PunctuationToSpace(dict):
    """``str.translate`` table mapping every Unicode punctuation character to a space; filled
    lazily (translate runs in C and only calls back for characters it has not seen)."""

    def __missing__(self, codepoint: int) -> int:
        value = 32 if unicodedata.category(chr(codepoint)).startswith("P") else codepoint
        self[codepoint] = value
        return value


_TABLE = _PunctuationToSpace()


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().translate(_TABLE)
    return " ".join(text.split())


def _grams(normalized: str, n: int = N) -> set[tuple[str, ...]]:
    words = normalized.split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def ngrams(text: str, n: int = N) -> set[tuple[str, ...]]:
    return _grams(normalize(text), n)


EvalItem = tuple[str, tuple[str, ...]]  # id, the parts that together make the item


def eval_texts(data_dir: Path) -> dict[str, list[EvalItem]]:
    """Evaluation items present in the data dir, per evaluation set, with the ids the
    evaluation tasks use. A TyDiQA item is its passage and question together, a BBQ item its
    context and question (both sets repeat generic questions, and BBQ repeats contexts, so a
    part alone is not the item)."""
    from rai_multi.tasks.table import SPECS

    sets: dict[str, list[EvalItem]] = {}
    for spec in SPECS:  # every benchmark's spec says which of its texts are the items
        if spec.decontam_texts is not None:
            items = spec.decontam_texts(data_dir)
            if items:
                sets[spec.name] = items
    gsm_test = data_dir / "gsm8k" / "test.jsonl"
    if gsm_test.is_file():
        items = []
        for lineno, line in enumerate(gsm_test.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    items.append((f"gsm8k_test/{len(items)}", (json.loads(line)["question"],)))
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise DataError(f"{gsm_test}:{lineno}: expected a JSON object with 'question'") from None
        sets["gsm8k_test"] = items
    return sets


@dataclass
class ContaminationReport:
    ngram_hits: dict[str, int] = field(default_factory=dict)     # eval set -> training examples sharing an 8-gram
    exact_hits: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # eval set -> (train id, eval id)

    @property
    def n_exact(self) -> int:
        return sum(len(v) for v in self.exact_hits.values())

    def summary(self) -> str:
        parts = [f"{name}: {self.ngram_hits.get(name, 0)} {N}-gram overlap(s), {len(self.exact_hits.get(name, []))} exact"
                 for name in sorted(set(self.ngram_hits) | set(self.exact_hits))]
        return "; ".join(parts) or "no evaluation sets found"


def check(examples: Sequence[Example], sets: dict[str, list[EvalItem]]) -> ContaminationReport:
    """Overlaps and exact hits of ``examples`` (their inputs, few-shot exemplars included)
    against every evaluation set. Texts are normalised once each (passages and contexts
    repeat across items), so a full mixture checks in seconds."""
    cache: dict[str, str] = {}

    def norm(text: str) -> str:
        if text not in cache:
            cache[text] = normalize(text)
        return cache[text]

    train = [(e.id, norm(e.input)) for e in examples]
    train = [(train_id, text, _grams(text)) for train_id, text in train]
    report = ContaminationReport()
    for name, items in sets.items():
        index: dict[tuple[str, ...], set[str]] = {}
        parts_of: dict[str, list[str]] = {}
        for item_id, parts in items:
            parts_of[item_id] = [norm(p) for p in parts]
            for gram in _grams(" ".join(parts_of[item_id])):
                index.setdefault(gram, set()).add(item_id)
        exact: list[tuple[str, str]] = []
        hits = 0
        for train_id, text, grams in train:
            shared = set().union(*(index[g] for g in grams if g in index))
            if not shared:
                continue
            hits += 1
            exact += [(train_id, item_id) for item_id in sorted(shared) if all(p in text for p in parts_of[item_id])]
        report.ngram_hits[name] = hits
        report.exact_hits[name] = exact
    return report
