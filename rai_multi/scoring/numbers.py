"""Language-aware number extraction for MGSM-style answers.

Rules (each one answers a known bug of other harnesses):
- every Unicode decimal digit (Bengali ০-৯, Thai ๐-๙, Telugu ౦-౯, Devanagari, full-width
  ０-９, Arabic-Indic ...) is mapped to ASCII through ``unicodedata.decimal``, not ``[0-9]``;
- the final-answer phrases are the ones the language's MGSM exemplars use (German: both
  "Die Antwort ist" and "Die Antwort lautet" occur there); after the last phrase, the last
  number of that sentence wins ("The answer is 2 * 2 = 4." -> 4), else the last number in
  the text;
- thousands groups may be separated by ``,`` (English grouping, in every language), the
  full-width comma ``，`` (between groups only), and the separators the language's config
  lists: ``.`` only where the language groups with it (de, es, fr, ...), a plain space only
  where it does (es, fi, fr, ru; "3 125-ml bottles" in English is 3 and 125), thin,
  narrow and no-break spaces in every config; a grouped number is read as ONE number
  (never "000"); Indian (lakh) grouping as Bengali and Telugu write it (``1,00,000``) is
  one number too;
- a number is read whole (digit runs joined by separators) and then parsed; one that does
  not parse (mixed group lengths "1.000.000.00", Japanese "12:32:53.234.234" where ``.``
  does not group) is an unreadable number: when it is the answer, the answer is "no
  number", never an earlier number such as the list marker "1.";
- a single grouping separator followed by exactly three digits is thousands grouping:
  MGSM answers are counts and amounts, and three-decimal answers do not occur; any other
  single ``,``/``.`` (``12,5``, ``12.50``, English "2.125") is a decimal point; with two
  kinds, the last is the decimal point;
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


_NON_PLAIN_SPACES = "\u2009\u202f\u00a0"


@lru_cache(maxsize=64)
def _number_pattern(separators: str) -> re.Pattern[str]:
    """A number candidate: digit runs joined by single separators ("1.000.000,5", "3 125"),
    read whole and parsed afterwards, so a malformed number is one bad token rather than
    a shorter number plus leftovers."""
    sep = "[" + re.escape(separators) + "]"
    return re.compile(rf"(?P<sign>(?<![\w)\]])[{_MINUS}])?(?P<num>\d+(?:{sep}\d+)*)(?!\d)")


def grouping_separators(lang: LanguageConfig | None) -> str:
    """Characters that may separate thousands groups in ``lang``: its config's list, plus
    ``,`` (English grouping, which model outputs use in every language) and the full-width
    comma (between groups only). ``.`` and the plain space only where the config lists
    them: "12:32:53.234.234" in Japanese and "3 125-ml bottles" in English are not grouped
    numbers."""
    chars = set("," + _FULLWIDTH_COMMA)
    chars.update(lang.thousands_separators if lang is not None else _NON_PLAIN_SPACES)
    return "".join(sorted(chars))


def _grouped_integer(token: str, grouping: str) -> str | None:
    """Digits of an integer written with one grouping separator: 3-digit groups after a
    first group of 1-3 digits, or Indian (lakh) grouping with commas (1,00,000); None
    when the groups do not fit (mixed group lengths, a separator the language does not
    group with)."""
    seps = {ch for ch in token if not ch.isdigit()}
    groups = re.split(r"\D", token)
    if not seps:
        return token
    if len(seps) != 1 or not all(groups) or next(iter(seps)) not in grouping:
        return None
    if len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:]):
        return "".join(groups)
    if seps == {","} and len(groups) > 2 and len(groups[0]) <= 2 and len(groups[-1]) == 3 \
            and all(len(g) == 2 for g in groups[1:-1]):
        return "".join(groups)
    return None


def parse_number_token(token: str, grouping: str | None = None) -> float | None:
    """Value of one number token made of ASCII digits and separators (see module rules);
    None when it cannot be read as one number. ``grouping``: the separators that may
    group thousands (default: those of no particular language, see ``grouping_separators``)."""
    grouping = grouping_separators(None) if grouping is None else grouping
    seps = [ch for ch in token if not ch.isdigit()]
    groups = re.split(r"\D", token)
    if not token or not all(groups):
        return None
    if not seps:
        return float(token)
    kinds = list(dict.fromkeys(seps))
    if len(kinds) > 2:
        return None
    if len(kinds) == 2:  # grouping, then one decimal mark: 1.234,5 / 1,234.5 / 1 234,5
        decimal = seps[-1]
        if seps.count(decimal) != 1 or decimal not in ",.":
            return None
        whole, frac = token.rsplit(decimal, 1)
        digits = _grouped_integer(whole, grouping)
        return None if digits is None else float(f"{digits}.{frac}")
    sep = kinds[0]
    if len(seps) > 1:  # repeated separator: thousands (or lakh) grouping, or nothing
        digits = _grouped_integer(token, grouping)
        return None if digits is None else float(digits)
    head, tail = groups
    if len(tail) == 3 and head != "0" and sep in grouping:
        return float(head + tail)
    if sep in ",.":
        return float(f"{head}.{tail}")
    return None


def _number_tokens(text: str, lang: LanguageConfig | None) -> list[float | None]:
    """Every number candidate of ``text`` in order, None for one that cannot be parsed. A
    candidate joined by spaces or full-width commas that is not one number ("3 12" where
    spaces group, the list "3，5，7") is read as its parts."""
    grouping = grouping_separators(lang)
    splitters = _SPACES + _FULLWIDTH_COMMA
    values: list[float | None] = []
    for match in _number_pattern("".join(sorted(set(grouping + ",.")))).finditer(normalize_digits(text)):
        token = match.group("num")
        value = parse_number_token(token, grouping)
        parts = [value]
        if value is None and any(ch in splitters for ch in token):
            parts = [parse_number_token(t, grouping) for t in re.split(f"[{splitters}]", token)]
        if match.group("sign") and parts[0] is not None:
            parts[0] = -parts[0]
        values.extend(parts)
    return values


def find_numbers(text: str, lang: LanguageConfig | None = None) -> list[float]:
    """All readable numbers in ``text`` in order (native digits and grouping understood)."""
    return [v for v in _number_tokens(text, lang) if v is not None]


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
        if end > best_end and _number_tokens(normalized[end:], lang):
            best_end = end
    if best_end >= 0:
        # The answer sentence runs to its end mark; its last number is the answer
        # ("The answer is 2 * 2 = 4." -> 4), a decimal point is not an end mark.
        sentence = _SENTENCE_END.split(normalized[best_end:], maxsplit=1)[0]
        in_sentence = _number_tokens(sentence, lang)
        value = in_sentence[-1] if in_sentence else _number_tokens(normalized[best_end:], lang)[0]
        # an unreadable answer number is no answer: never an earlier one (a list marker)
        return Extraction(value, PHRASE) if value is not None else Extraction(None, NONE)
    numbers = _number_tokens(normalized, lang)
    if numbers and numbers[-1] is not None:
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
