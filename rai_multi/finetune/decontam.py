"""Decontamination: training inputs checked against the evaluation sets rai-multi knows.

Text is normalised (case-folded, punctuation removed, whitespace collapsed) and compared by
word 8-grams; an evaluation item whose whole normalised text appears inside a training
example is an exact hit. Exact hits stop training unless explicitly allowed."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from rai_multi.finetune.mixture import Example

N = 8


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(text.split())


def ngrams(text: str, n: int = N) -> set[tuple[str, ...]]:
    words = normalize(text).split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


EvalItem = tuple[str, tuple[str, ...]]  # id, the parts that together make the item


def eval_texts(data_dir: Path) -> dict[str, list[EvalItem]]:
    """Evaluation items present in the data dir, per evaluation set. A TyDiQA item is its
    passage and its question together (the same question over another passage is not the
    item; TyDiQA repeats generic questions)."""
    sets: dict[str, list[EvalItem]] = {}
    mgsm = sorted((data_dir / "mgsm").glob("mgsm_*.tsv"))
    if mgsm:
        sets["mgsm"] = [(f"mgsm/{p.stem[5:]}/{i}", (line.split("\t")[0],))
                        for p in mgsm for i, line in enumerate(p.read_text(encoding="utf-8").splitlines()) if line.strip()]
    gsm_test = data_dir / "gsm8k" / "test.jsonl"
    if gsm_test.is_file():
        sets["gsm8k_test"] = [(f"gsm8k_test/{i}", (json.loads(line)["question"],))
                              for i, line in enumerate(gsm_test.read_text(encoding="utf-8").splitlines()) if line.strip()]
    tydiqa = sorted((data_dir / "tydiqa_goldp" / "dev").glob("*.json"))
    if tydiqa:
        from rai_multi.data.tydiqa import read_squad_json

        sets["tydiqa_dev"] = [(i.id, (i.context, i.question)) for p in tydiqa for i in read_squad_json(p)]
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
    report = ContaminationReport()
    train_norm = [(e.id, normalize(e.input)) for e in examples]  # exact hit: eval text inside
    train_grams = [(e.id, ngrams(e.input)) for e in examples]
    for name, items in sets.items():
        index: dict[tuple[str, ...], set[str]] = {}
        for item_id, parts in items:
            for gram in ngrams(" ".join(parts)):
                index.setdefault(gram, set()).add(item_id)
        eval_norm = {item_id: [normalize(p) for p in parts] for item_id, parts in items}
        exact = []
        hits = 0
        for (train_id, grams), (_, text) in zip(train_grams, train_norm):
            shared = set().union(*(index[g] for g in grams if g in index)) if grams else set()
            if not shared:
                continue
            hits += 1
            exact += [(train_id, item_id) for item_id in sorted(shared) if all(p in text for p in eval_norm[item_id])]
        report.ngram_hits[name] = hits
        report.exact_hits[name] = exact
    return report


def all_inputs(examples: Iterable[Example]) -> list[str]:
    return [e.input for e in examples]
