"""Extractive-QA scores: the official SQuAD v1.1 EM/F1 and a language-aware variant.

``squad_*`` reproduce the SQuAD v1.1 evaluation script that the TyDiQA GoldP authors use
(lower-case, delete ASCII punctuation, drop English articles, whitespace tokens, max over
gold answers), so numbers compare with published ones. Its known weaknesses for other
languages are what the language-aware ``em``/``f1`` fix:
- every Unicode punctuation character (categories P*) is deleted, not only ASCII;
- articles are dropped only where the language has them (English a/an/the; the Arabic
  prefixed article "ال" on words of 4+ letters);
- native digits are mapped to ASCII and text is NFKC-normalised and case-folded;
- scripts written without spaces (Thai, Japanese, Chinese) are scored on characters,
  not on whitespace "tokens" that would span whole clauses.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from typing import Sequence

from rai_multi.scoring.numbers import normalize_digits

_ASCII_PUNCT = set(string.punctuation)
_EN_ARTICLES = re.compile(r"\b(a|an|the)\b")
_AR_ARTICLE = "ال"
CHARACTER_LEVEL_LANGS = frozenset({"th", "ja", "zh", "lo", "km", "my"})


# ---------------------------------------------------------------- SQuAD v1.1 (official)
def squad_normalize(text: str) -> str:
    """SQuAD v1.1 normalize_answer: lower, delete ASCII punctuation, drop a/an/the, fix spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _ASCII_PUNCT)
    text = _EN_ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _f1(pred_tokens: Sequence[str], gold_tokens: Sequence[str]) -> float:
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_exact_match(prediction: str, golds: Sequence[str]) -> float:
    return max(float(squad_normalize(prediction) == squad_normalize(g)) for g in golds)


def squad_f1(prediction: str, golds: Sequence[str]) -> float:
    pred = squad_normalize(prediction).split()
    return max(_f1(pred, squad_normalize(g).split()) for g in golds)


# ---------------------------------------------------------------- language-aware
def tokenization_for(lang: str) -> str:
    """How answers in ``lang`` are tokenised for F1: ``characters`` or ``whitespace``."""
    return "characters" if lang in CHARACTER_LEVEL_LANGS else "whitespace"


def normalize(text: str, lang: str) -> str:
    """Language-aware normalisation (see module docstring)."""
    text = normalize_digits(unicodedata.normalize("NFKC", text)).casefold()
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    if lang == "en":
        text = _EN_ARTICLES.sub(" ", text)
    tokens = text.split()
    if lang == "ar":
        tokens = [t[2:] if t.startswith(_AR_ARTICLE) and len(t) >= 4 else t for t in tokens]
    return " ".join(tokens)


def tokens(text: str, lang: str) -> list[str]:
    normalized = normalize(text, lang)
    if tokenization_for(lang) == "characters":
        return [ch for ch in normalized if not ch.isspace()]
    return normalized.split()


def exact_match(prediction: str, golds: Sequence[str], lang: str) -> float:
    return max(float(normalize(prediction, lang) == normalize(g, lang)) for g in golds)


def f1(prediction: str, golds: Sequence[str], lang: str) -> float:
    pred = tokens(prediction, lang)
    return max(_f1(pred, tokens(g, lang)) for g in golds)
