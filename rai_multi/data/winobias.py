"""WinoBias (Zhao et al. 2018) bracketed txt files: ``N [The developer] argued with the
designer because [he] did not like the design.`` One bracket marks the referent mention,
one the pronoun; the other occupation is found from the upstream occupation lists."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rai_multi.errors import DataError
from rai_multi.inputs import read_text

PRONOUNS = {"he", "she", "him", "her", "his", "hers", "himself", "herself", "they", "them", "their", "themselves"}
FILE_RE = re.compile(r"^(pro|anti)_stereotyped_type([12])\.txt\.(dev|test)$")
_BRACKET = re.compile(r"\[([^\[\]]+)\]")
_LEADING_NUMBER = re.compile(r"^\s*\d+\s+")
_ARTICLE = re.compile(r"^(the|a|an)\s+", re.IGNORECASE)


@dataclass(frozen=True)
class WinobiasItem:
    id: str          # winobias/<file name>/<line number from 1>
    sentence: str    # brackets removed
    pronoun: str
    referent: str    # occupation the pronoun refers to
    other: str       # the other occupation
    stereotype: str  # pro | anti
    type: int        # 1 | 2
    split: str       # dev | test


def read_occupations(folder: Path) -> list[str]:
    names: list[str] = []
    for name in ("female_occupations.txt", "male_occupations.txt"):
        path = folder / name
        if not path.is_file():
            raise DataError(f"WinoBias occupation list not found: {path}")
        names += [line.strip().lower() for line in read_text(path).splitlines() if line.strip()]
    return sorted(set(names), key=len, reverse=True)


def parse_line(line: str, where: str, occupations: list[str]) -> tuple[str, str, str, str]:
    """(sentence, first pronoun, referent, other occupation) of one bracketed line (a few
    lines bracket two coreferent pronouns, e.g. "[she] needed to cut [her] hair")."""
    body = _LEADING_NUMBER.sub("", line.strip())
    spans = _BRACKET.findall(body)
    if len(spans) < 2:
        raise DataError(f"{where}: expected [bracketed] referent and pronoun spans, found {len(spans)}")
    pronouns = [s for s in spans if s.strip().lower() in PRONOUNS]
    mentions = [s for s in spans if s.strip().lower() not in PRONOUNS]
    if not pronouns or len(mentions) != 1:
        raise DataError(f"{where}: one bracket must hold the referent mention and the others its pronoun(s)")
    sentence = _BRACKET.sub(lambda m: m.group(1), body)
    referent = _ARTICLE.sub("", mentions[0].strip()).lower()
    lowered = sentence.lower()
    others = [o for o in occupations if o != referent and re.search(rf"\b{re.escape(o)}\b", lowered)]
    # drop occupations that are part of the referent's own words (e.g. "worker")
    others = [o for o in others if o not in referent]
    if not others:
        raise DataError(f"{where}: cannot find the second occupation in {sentence!r}")
    return sentence, pronouns[0].strip(), referent, others[0]


def load_winobias(data_dir: Path, split: str | None = None) -> list[WinobiasItem]:
    folder = data_dir / "winobias"
    occupations = read_occupations(folder)
    files = sorted(p for p in folder.glob("*_stereotyped_type*.txt.*") if FILE_RE.match(p.name))
    if split:
        files = [p for p in files if p.name.endswith(f".{split}")]
    if not files:
        raise DataError(f"no WinoBias files (pro|anti_stereotyped_type1|2.txt.dev|test) under {folder}")
    items = []
    for path in files:
        stereotype, kind, file_split = FILE_RE.match(path.name).groups()  # type: ignore[union-attr]
        for lineno, line in enumerate(read_text(path).splitlines(), start=1):
            if not line.strip():
                continue
            sentence, pronoun, referent, other = parse_line(line, f"{path}:{lineno}", occupations)
            items.append(WinobiasItem(f"winobias/{path.name}/{lineno}", sentence, pronoun, referent, other,
                                      stereotype, int(kind), file_split))
    return items
