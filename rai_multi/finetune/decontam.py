"""Decontamination: training inputs checked against the evaluation sets rai-multi knows.

Text is normalised (NFKC, case-folded, punctuation removed, whitespace collapsed) and
compared by word 8-grams (the window GPT-3 and Flan-era papers use: long enough that shared
boilerplate rarely matches, short enough to catch a paraphrased wrapper around an item).
Scripts written without spaces (Japanese, Chinese, Thai: ``uses_spaces = false`` in the
language config, or an item mostly in such characters) are compared by character
``N_CHARS``-grams of the text with spaces removed: counted in words, 162 of 250 Japanese
MGSM questions are "shorter than 8 words" and would never be matched.

A training example sharing an n-gram with an evaluation item is an *overlap* (reported);
one whose normalised input contains the whole normalised item is an *exact hit*, and exact
hits stop training unless the user says to drop or allow them. Items too short for one
n-gram (``MIN_SHORT_WORDS``-7 words, ``MIN_SHORT_CHARS``-15 characters) are looked up
whole, as a contiguous run of the training text's words (characters): a match is an
exact hit. Shorter items still (a 3-word phrase) cannot be told from ordinary text and
are not checked.

Sets: MGSM, GSM8K test, TyDiQA GoldP dev, BBQ (context + question), Winogender and WinoBias
sentences, CrowS-Pairs sentences (both of a pair), RealToxicityPrompts prompts and the
Davidson tweets, whichever are present in the data dir."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from rai_multi.errors import DataError
from rai_multi.finetune.mixture import Example

N = 8
N_CHARS = 16       # about 8 words of Japanese or Chinese text (1.5-2 characters a word)
MIN_SHORT_WORDS = 4
MIN_SHORT_CHARS = 8
# Han, kana, Thai, Lao, Myanmar, Khmer, half-width katakana: scripts written without spaces
_NO_SPACE_SCRIPT = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0eff"
                              "\u1000-\u109f\u1780-\u17ff\uff66-\uff9f]")


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


def unspaced(text: str) -> bool:
    """Whether a (normalised) text is mostly in scripts written without spaces."""
    letters = [ch for ch in text if not ch.isspace()]
    return bool(letters) and sum(1 for ch in letters if _NO_SPACE_SCRIPT.match(ch)) * 2 >= len(letters)


def _units(normalized: str, chars: bool) -> list[str]:
    """Words, or for unspaced text its characters (spaces dropped)."""
    return list(normalized.replace(" ", "")) if chars else normalized.split()


def _lang_unspaced(item_id: str) -> bool | None:
    """``not uses_spaces`` of the language an MGSM id names (mgsm/ja/3); None otherwise."""
    parts = item_id.split("/")
    if len(parts) == 3 and parts[0] == "mgsm":
        from rai_multi.languages import all_languages

        config = all_languages().get(parts[1])
        return None if config is None else not config.uses_spaces
    return None


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
    ngram_hits: dict[str, int] = field(default_factory=dict)     # eval set -> training examples sharing an n-gram (or holding a short item)
    exact_hits: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # eval set -> (train id, eval id)

    @property
    def n_exact(self) -> int:
        return sum(len(v) for v in self.exact_hits.values())

    def summary(self) -> str:
        parts = [f"{name}: {self.ngram_hits.get(name, 0)} n-gram overlap(s), {len(self.exact_hits.get(name, []))} exact"
                 for name in sorted(set(self.ngram_hits) | set(self.exact_hits))]
        return "; ".join(parts) or "no evaluation sets found"


def check(examples: Sequence[Example], sets: dict[str, list[EvalItem]]) -> ContaminationReport:
    """Overlaps and exact hits of ``examples`` (their inputs, few-shot exemplars included)
    against every evaluation set. Texts are normalised once each (passages and contexts
    repeat across items), so a full mixture checks in seconds; character n-grams are only
    computed for training texts that hold characters of an unspaced script."""
    cache: dict[str, str] = {}

    def norm(text: str) -> str:
        if text not in cache:
            cache[text] = normalize(text)
        return cache[text]

    train = []
    for e in examples:
        text = norm(e.input)
        has_unspaced = bool(_NO_SPACE_SCRIPT.search(text))
        train.append((e.id, text, text.replace(" ", "") if has_unspaced else None))
    report = ContaminationReport()
    for name, items in sets.items():
        index = _SetIndex()
        for item_id, parts in items:
            index.add(item_id, [norm(p) for p in parts])
        exact: list[tuple[str, str]] = []
        hits = 0
        for train_id, text, squeezed in train:
            shared, whole = index.lookup(text, squeezed)
            if not shared and not whole:
                continue
            hits += 1
            exact += [(train_id, item_id) for item_id in sorted(shared | whole)
                      if item_id in whole or index.contained(item_id, text, squeezed)]
        report.ngram_hits[name] = hits
        report.exact_hits[name] = exact
    return report


class _SetIndex:
    """One evaluation set: word and character n-gram indexes, and the short items by their
    whole unit sequence (keyed by length, so a training text is scanned once per length)."""

    def __init__(self) -> None:
        self.grams: dict[bool, dict[tuple[str, ...], set[str]]] = {False: {}, True: {}}
        self.short: dict[bool, dict[int, dict[tuple[str, ...], set[str]]]] = {False: {}, True: {}}
        self.parts: dict[str, tuple[bool, list[str]]] = {}

    def add(self, item_id: str, parts: list[str]) -> None:
        joined = " ".join(parts)
        chars = _lang_unspaced(item_id)
        chars = unspaced(joined) if chars is None else chars
        self.parts[item_id] = (chars, parts)
        units = _units(joined, chars)
        n = N_CHARS if chars else N
        if len(units) >= n:
            for i in range(len(units) - n + 1):
                self.grams[chars].setdefault(tuple(units[i : i + n]), set()).add(item_id)
        elif len(units) >= (MIN_SHORT_CHARS if chars else MIN_SHORT_WORDS):
            self.short[chars].setdefault(len(units), {}).setdefault(tuple(units), set()).add(item_id)

    def lookup(self, text: str, squeezed: str | None) -> tuple[set[str], set[str]]:
        """(items sharing an n-gram with the text, short items found whole in it)."""
        shared: set[str] = set()
        whole: set[str] = set()
        for chars, units in ((False, text.split()), (True, list(squeezed) if squeezed else None)):
            if units is None:
                continue
            n = N_CHARS if chars else N
            grams = self.grams[chars]
            if grams:
                for i in range(len(units) - n + 1):
                    found = grams.get(tuple(units[i : i + n]))
                    if found:
                        shared |= found
            for length, by_units in self.short[chars].items():
                for i in range(len(units) - length + 1):
                    found = by_units.get(tuple(units[i : i + length]))
                    if found:
                        whole |= found
        return shared, whole

    def contained(self, item_id: str, text: str, squeezed: str | None) -> bool:
        """Every part of the item is inside the text (spaces ignored for unspaced items)."""
        chars, parts = self.parts[item_id]
        if chars:
            return squeezed is not None and all(p.replace(" ", "") in squeezed for p in parts)
        return all(p in text for p in parts)
