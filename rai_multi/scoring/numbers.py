"""Language-aware number extraction for MGSM-style answers.

Rules (each one answers a known bug of other harnesses):
- every Unicode decimal digit (Bengali ০-৯, Thai ๐-๙, Telugu ౦-౯, Devanagari, full-width
  ０-９, Arabic-Indic ...) is mapped to ASCII through ``unicodedata.decimal``, not ``[0-9]``;
- the final-answer phrases are the ones the language's MGSM exemplars use (German: both
  "Die Antwort ist" and "Die Antwort lautet" occur there); after the last phrase, the last
  number of that sentence wins ("The answer is 2 * 2 = 4." -> 4), else the last number in
  the text;
- thousands groups may be separated by ``,`` ``.`` or a normal, thin, narrow or no-break
  space (and, between groups only, the full-width comma ``，`` of Chinese/Japanese text),
  and a grouped number is read as ONE number (never "000"); Indian (lakh) grouping as
  Bengali and Telugu write it (``1,00,000``) is one number too;
- a single separator followed by exactly three digits is read as thousands grouping in every
  language: MGSM answers are counts and amounts, model outputs use both native ("80.000")
  and English ("2,125") grouping, and three-decimal answers do not occur; any other
  single separator (``12,5``, ``12.50``) is a decimal point; with two kinds, the last is the
  decimal point;
- numbers are compared as numbers (``12.50 == 12.5``), never as strings;
- the phrase is found case-insensitively on the text itself (a regex, not ``casefold``,
  which turns German "ß" into "ss" and would shift every position after it).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from rai_multi.languages import LanguageConfig

PHRASE = "phrase"
FALLBACK = "fallback"
NONE = "none"

_MINUS = "-\u2212"
_SENTENCE_END = re.compile(r"[.。।!?！？](?!\d)|\n")
_SPACES = " \u2009\u202f\u00a0"
_FULLWIDTH_COMMA = "\uff0c"  # grouping only: as a decimal mark it would read "3，5" (a list) as 3.5


def normalize_digits(text: str) -> str:
    """Replace every Unicode decimal digit by its ASCII digit (other text unchanged)."""
    out = []
    for ch in text:
        if ch.isdigit() and not ("0" <= ch <= "9"):
            value = unicodedata.decimal(ch, None)
            out.append(str(value) if value is not None else ch)
        else:
            out.append(ch)
    return "".join(out)


@lru_cache(maxsize=64)
def _number_pattern(separators: str) -> re.Pattern[str]:
    """Grouped numbers first (same separator repeated, 3-digit groups), then plain ones."""
    sep = "[" + re.escape(separators) + "]"
    grouped = rf"\d{{1,3}}(?:(?P<sep>{sep})\d{{3}})(?:(?P=sep)\d{{3}})*(?:[.,]\d+)?"
    lakh = r"\d{1,2}(?:,\d{2})+,\d{3}(?:\.\d+)?"
    plain = r"\d+(?:[.,]\d+)?"
    return re.compile(rf"(?P<sign>(?<![\w)\]])[{_MINUS}])?(?P<num>{lakh}|{grouped}|{plain})(?!\d)")


def _separators(lang: LanguageConfig | None) -> str:
    chars = set(",." + _SPACES + _FULLWIDTH_COMMA)
    if lang is not None:
        chars.update(lang.thousands_separators)
    return "".join(sorted(chars))


def parse_number_token(token: str) -> float | None:
    """Value of one number token made of ASCII digits and separators (see module rules)."""
    seps = [ch for ch in token if not ch.isdigit()]
    groups = re.split(r"[^\d]", token)
    if not token or not all(groups):
        return None
    if not seps:
        return float(token)
    kinds = list(dict.fromkeys(seps))
    if len(kinds) > 1:
        decimal = seps[-1]
        if seps.count(decimal) != 1 or decimal not in ",.":
            return None
        whole, frac = token.rsplit(decimal, 1)
        whole_digits = re.sub(r"[^\d]", "", whole)
        return float(f"{whole_digits}.{frac}")
    sep = kinds[0]
    if len(seps) > 1:  # repeated separator: thousands (or lakh) grouping
        if all(len(g) == 3 for g in groups[1:]) and len(groups[0]) <= 3:
            return float("".join(groups))
        if sep == "," and len(groups[-1]) == 3 and all(len(g) == 2 for g in groups[1:-1]) and len(groups[0]) <= 2:
            return float("".join(groups))
        return None
    head, tail = groups
    if len(tail) == 3 and head != "0":
        return float(head + tail)
    if sep in ",.":
        return float(f"{head}.{tail}")
    return None


def find_numbers(text: str, lang: LanguageConfig | None = None) -> list[float]:
    """All numbers in ``text`` in order (native digits and grouping understood)."""
    normalized = normalize_digits(text)
    values = []
    for match in _number_pattern(_separators(lang)).finditer(normalized):
        value = parse_number_token(match.group("num"))
        if value is None:
            continue
        values.append(-value if match.group("sign") else value)
    return values


@dataclass(frozen=True)
class Extraction:
    """The extracted answer and how it was found: ``phrase``, ``fallback`` or ``none``."""

    value: float | None
    method: str


def _phrase_positions(text: str, prefix: str) -> int:
    """End index in ``text`` of the last occurrence of ``prefix`` (case-insensitive), or -1."""
    if not prefix:
        return -1
    last = None
    for last in re.finditer(re.escape(prefix), text, flags=re.IGNORECASE):
        pass
    return -1 if last is None else last.end()


def extract_answer(
    text: str, lang: LanguageConfig, extra_prefixes: tuple[str, ...] = ()
) -> Extraction:
    """Answer of a model output: the number after the language's final-answer phrase (or
    one of ``extra_prefixes``, e.g. the English phrase for English-exemplar prompts), else
    the last number in the text, else nothing."""
    prefixes = []
    if lang.mgsm is not None:
        prefixes.extend(lang.mgsm.final_answer_prefixes)
    prefixes.extend(p for p in extra_prefixes if p not in prefixes)
    normalized = normalize_digits(text)
    best_end = -1
    for prefix in prefixes:
        end = _phrase_positions(normalized, prefix)
        if end > best_end and find_numbers(normalized[end:], lang):
            best_end = end
    if best_end >= 0:
        # The answer sentence runs to its end mark; its last number is the answer
        # ("The answer is 2 * 2 = 4." -> 4), a decimal point is not an end mark.
        sentence = _SENTENCE_END.split(normalized[best_end:], maxsplit=1)[0]
        in_sentence = find_numbers(sentence, lang)
        value = in_sentence[-1] if in_sentence else find_numbers(normalized[best_end:], lang)[0]
        return Extraction(value, PHRASE)
    numbers = find_numbers(normalized, lang)
    if numbers:
        return Extraction(numbers[-1], FALLBACK)
    return Extraction(None, NONE)


def parse_gold(raw: str) -> float:
    """Gold answers of the upstream MGSM files use English grouping (``2,125``)."""
    cleaned = raw.strip().replace(",", "")
    value = float(cleaned)
    if math.isnan(value) or math.isinf(value):
        raise ValueError(raw)
    return value


def numbers_equal(a: float | None, b: float | None) -> bool:
    """Numeric equality with a small tolerance for float round-off (12.50 == 12.5)."""
    if a is None or b is None:
        return False
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
