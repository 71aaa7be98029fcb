"""QA scores: hand-computed SQuAD v1.1 values on tricky rows, equality with an independent
re-statement of the official script on real rows, and where language-aware scores differ."""

from __future__ import annotations

import re
import string
from collections import Counter

import pytest

from rai_multi.data.tydiqa import GOLDP_LANGS, load_tydiqa
from rai_multi.scoring import qa

# (prediction, golds, squad_em, squad_f1) computed by hand from the SQuAD v1.1 rules.
HAND = [
    ("The Eiffel Tower", ["Eiffel Tower"], 1.0, 1.0),                  # article dropped
    ("eiffel tower.", ["Eiffel Tower"], 1.0, 1.0),                     # case + ASCII punct
    ("in Paris, France", ["Paris"], 0.0, 0.5),                          # P=1/3 R=1 -> 0.5
    ("Paris", ["London", "paris"], 1.0, 1.0),                           # max over golds
    ("Barack Obama Jr", ["Barack Obama", "Obama"], 0.0, 0.8),           # P=2/3 R=1 -> 0.8
    ("", ["Paris"], 0.0, 0.0),                                          # empty prediction
    ("« Pariisi »", ["Pariisi"], 0.0, 0.5),                             # « » kept: P=1/3 R=1 -> 0.5
    ("১৯৪৭", ["1947"], 0.0, 0.0),                                       # digits not normalised
    ("جورج", ["جورج"], 1.0, 1.0),                                       # Arabic exact
    ("الكتاب", ["كتاب"], 0.0, 0.0),                                     # al- article not removed
    ("東京都", ["東京"], 0.0, 0.0),                                      # no spaces: one token each
    ("a an the", ["the"], 1.0, 0.0),                                    # both normalise to "": EM 1, F1 0
    ("Helsingin yliopisto", ["yliopisto", "Helsingin yliopisto"], 1.0, 1.0),
    ("the cat and a dog", ["cat and dog"], 1.0, 1.0),                # articles mid-answer dropped
    ("another", ["other"], 0.0, 0.0),                                   # \b: "an" inside a word stays
    ("state-of-the-art", ["state of the art"], 0.0, 0.0),             # "-" deleted, not a space: one token
    ("\u201cHelsinki\u201d", ["Helsinki"], 0.0, 0.0),                   # curly quotes are not ASCII punctuation
    ("ঢাকা।", ["ঢাকা"], 0.0, 0.0),                                      # Bengali danda kept
    ("القاهرة،", ["القاهرة"], 0.0, 0.0),                                # Arabic comma kept
    ("Владимир Путин", ["Путин", "Владимир Владимирович Путин"], 0.0, 0.8),  # 2/3 vs 0.8 (P=1, R=2/3): max
    ("서울에서", ["서울"], 0.0, 0.0),                                     # Korean particle: whitespace tokens differ
]


@pytest.mark.parametrize("pred,golds,em,f1", HAND)
def test_squad_by_hand(pred, golds, em, f1):
    assert qa.squad_exact_match(pred, golds) == em
    assert qa.squad_f1(pred, golds) == pytest.approx(f1)


# Where the language-aware score differs, and why.
DIFFERS = [
    ("« Pariisi »", ["Pariisi"], "fi", 1.0, 1.0),      # Unicode punctuation removed
    ("১৯৪৭", ["1947"], "bn", 1.0, 1.0),                # native digits normalised
    ("الكتاب", ["كتاب"], "ar", 1.0, 1.0),              # Arabic article al- removed
    ("東京都", ["東京"], "ja", 0.0, 0.8),               # character F1: P=2/3 R=1
    ("The answer", ["answer"], "fi", 0.0, 2 / 3),      # no English articles in Finnish
    ("Москва.", ["москва"], "ru", 1.0, 1.0),           # same as SQuAD here
    ("\u201cHelsinki\u201d", ["Helsinki"], "fi", 1.0, 1.0),  # curly quotes are Unicode punctuation (Pi/Pf)
    ("ঢাকা।", ["ঢাকা"], "bn", 1.0, 1.0),                # danda (Po) removed
    ("القاهرة،", ["القاهرة"], "ar", 1.0, 1.0),          # Arabic comma (Po) removed
    ("The answer", ["answer"], "en", 1.0, 1.0),        # English keeps the article rule
    ("서울에서", ["서울"], "ko", 0.0, 0.0),              # whitespace tokens for Korean: no gain, stated
]


@pytest.mark.parametrize("pred,golds,lang,em,f1", DIFFERS)
def test_language_aware_by_hand(pred, golds, lang, em, f1):
    assert qa.exact_match(pred, golds, lang) == em
    assert qa.f1(pred, golds, lang) == pytest.approx(f1)


# An independent re-statement of the official SQuAD v1.1 evaluate script's logic.
def _ref_normalize(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def _ref_f1(prediction, ground_truth):
    p, g = _ref_normalize(prediction).split(), _ref_normalize(ground_truth).split()
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0
    precision, recall = same / len(p), same / len(g)
    return (2 * precision * recall) / (precision + recall)


def _variants(answer: str, context: str) -> list[str]:
    """Plausible model outputs: exact, with neighbours from the passage, punctuated, cut."""
    start = context.find(answer)
    before = context[max(0, start - 12) : start] if start >= 0 else ""
    after = context[start + len(answer) : start + len(answer) + 12] if start >= 0 else ""
    words = answer.split()
    return [answer, before + answer, answer + after, f"{answer}.", " ".join(words[:-1]), f"The {answer}"]


def test_squad_equals_reference_on_real_rows(data_dir):
    checked = 0
    for lang in GOLDP_LANGS:
        items, _ = load_tydiqa(data_dir, lang, "dev")
        for item in items[:60]:
            for pred in _variants(item.answers[0], item.context):
                ref_em = max(float(_ref_normalize(pred) == _ref_normalize(g)) for g in item.answers)
                ref_f1 = max(_ref_f1(pred, g) for g in item.answers)
                assert qa.squad_exact_match(pred, item.answers) == ref_em
                assert qa.squad_f1(pred, item.answers) == pytest.approx(ref_f1)
                checked += 1
    assert checked == 6 * 60 * len(GOLDP_LANGS)
