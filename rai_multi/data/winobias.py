"""WinoBias (Zhao et al. 2018) bracketed txt files: ``N [The developer] argued with the
designer because [he] did not like the design.`` One bracket marks the referent mention,
one the pronoun; the other occupation is found from the upstream occupation lists."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rai_multi.data.hub import load_hub_split
from rai_multi.errors import DataError
from rai_multi.inputs import read_text

# The hub's CoNLL-format copy (one config per type x stereotype, splits validation/test),
# converted to parquet on main ("Convert dataset to Parquet (#4)", commit 3f31267: only the
# short id could be found offline; pin the full sha).
HUB_DATASET = "uclanlp/wino_bias"
HUB_REVISION = "main"
HUB_SPLITS = {"dev": "validation", "test": "test"}
# Tokens attached to the previous one when the CoNLL tokens are joined back into a line;
# the upstream txt keeps "librarian 's" spaced, so "'s" is not among them.
_ATTACH_LEFT = {".", ",", "?", "!", ";", ":", "n't"}

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


def _split_files(split: str | None) -> list[tuple[str, int, str]]:
    if split is not None and split not in HUB_SPLITS:
        raise DataError(f"unknown WinoBias split {split!r}; splits: dev, test")
    return [(stereotype, kind, s) for stereotype in ("anti", "pro") for kind in (1, 2)
            for s in (HUB_SPLITS if split is None else (split,))]


def _bracketed_line(tokens: list[str], clusters: list[str], where: str) -> str:
    """The upstream txt line from CoNLL tokens: the mentions of coreference cluster 1 (the
    hub's ``coreference_clusters``, flattened [start, end, start, end, ...] word indices)
    are the referent and its pronoun(s), which the txt marks with brackets."""
    try:
        bounds = [int(x) for x in clusters]
    except (TypeError, ValueError):
        raise DataError(f"{where}: coreference_clusters must be word indices, got {clusters!r}") from None
    if len(bounds) < 4 or len(bounds) % 2 or any(not 0 <= b < len(tokens) for b in bounds):
        raise DataError(f"{where}: coreference_clusters {clusters!r} do not mark two or more mentions")
    opens = {bounds[k] for k in range(0, len(bounds), 2)}
    closes = {bounds[k] for k in range(1, len(bounds), 2)}
    out = ""
    for i, token in enumerate(tokens):
        word = ("[" if i in opens else "") + token + ("]" if i in closes else "")
        joined = not out or token in _ATTACH_LEFT or token == "-" or out.endswith("-")
        out += word if joined else " " + word
    return out


def load_winobias_hub(split: str | None = None, revision: str = HUB_REVISION, *, path: str | Path = HUB_DATASET,
                      cache_dir: Path | None = None) -> list[WinobiasItem]:
    """The same items from the hub's CoNLL copy: each row's tokens and cluster-1 mentions
    are turned back into the bracketed txt line and parsed by :func:`parse_line`.

    The hub has no occupation lists; every one of the 40 occupations is the bracketed
    referent of some sentence (checked on the upstream files), so the list is collected from
    all 8 files' referents. Row N of a config/split is line N+1 of the matching txt file."""
    _split_files(split)  # rejects an unknown split before any download
    rows: list[tuple[str, str, int, str, int, str]] = []  # (file, where, kind, stereotype, lineno, line)
    for stereotype, kind, file_split in _split_files(None):
        ds = load_hub_split(path, f"type{kind}_{stereotype}", HUB_SPLITS[file_split], revision, cache_dir=cache_dir,
                            hint="pass --data-dir or set RAI_MULTI_DATA to a folder holding winobias/")
        name = f"{stereotype}_stereotyped_type{kind}.txt.{file_split}"
        for i, row in enumerate(ds):
            where = f"{path} (type{kind}_{stereotype}, {HUB_SPLITS[file_split]}) row {i}"
            tokens = row.get("tokens")
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise DataError(f"{where}: needs a 'tokens' list of strings")
            rows.append((name, where, kind, stereotype, i + 1, _bracketed_line(tokens, row.get("coreference_clusters"), where)))
    occupations = sorted({_ARTICLE.sub("", m.strip()).lower() for *_, line in rows for m in _BRACKET.findall(line)
                          if m.strip().lower() not in PRONOUNS}, key=len, reverse=True)
    items = []
    for name, where, kind, stereotype, lineno, line in rows:
        file_split = name.rsplit(".", 1)[1]
        if split is not None and file_split != split:
            continue
        sentence, pronoun, referent, other = parse_line(line, where, occupations)
        items.append(WinobiasItem(f"winobias/{name}/{lineno}", sentence, pronoun, referent, other, stereotype, kind,
                                  file_split))
    return items


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
