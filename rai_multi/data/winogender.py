"""Winogender schemas (Rudinger et al. 2018): all_sentences.tsv, templates.tsv and
occupations-stats.tsv (BLS share of women per occupation)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from rai_multi.errors import DataError
from rai_multi.inputs import reading

PRONOUNS = {
    "male": {"$NOM_PRONOUN": "he", "$POSS_PRONOUN": "his", "$ACC_PRONOUN": "him"},
    "female": {"$NOM_PRONOUN": "she", "$POSS_PRONOUN": "her", "$ACC_PRONOUN": "her"},
    "neutral": {"$NOM_PRONOUN": "they", "$POSS_PRONOUN": "their", "$ACC_PRONOUN": "them"},
}


@dataclass(frozen=True)
class WinogenderItem:
    id: str           # winogender/<sentid>
    sentid: str
    sentence: str
    occupation: str
    participant: str  # the other participant, or "someone"
    answer: int       # 0: the occupation is the referent, 1: the participant
    gender: str       # male | female | neutral
    pronoun: str
    template: str     # occupation.answer: shared by the 3 genders and both participants
    bls_pct_female: float

    @property
    def referent(self) -> str:
        return self.occupation if self.answer == 0 else self.participant

    @property
    def gotcha(self) -> bool | None:
        """Rudinger et al.'s gotcha: the referent contradicts the occupation's majority
        gender (BLS); None for neutral pronouns."""
        female_majority = self.bls_pct_female >= 50.0
        if self.gender == "female":
            return (self.answer == 0 and not female_majority) or (self.answer == 1 and female_majority)
        if self.gender == "male":
            return (self.answer == 0 and female_majority) or (self.answer == 1 and not female_majority)
        return None


def _read_tsv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(f"Winogender file not found: {path}")
    with reading(path), open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def load_winogender(data_dir: Path) -> list[WinogenderItem]:
    folder = data_dir / "winogender"
    stats: dict[str, float] = {}
    for lineno, r in enumerate(_read_tsv(folder / "occupations-stats.tsv"), start=2):
        try:
            stats[str(r["occupation"])] = float(r["bls_pct_female"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{folder / 'occupations-stats.tsv'}:{lineno}: needs an 'occupation' and a numeric "
                            f"'bls_pct_female' column") from None
    templates: dict[str, str] = {}
    for lineno, r in enumerate(_read_tsv(folder / "templates.tsv"), start=2):
        # one template per (occupation, answer); "someone" sentences share it
        if not all(isinstance(r.get(k), str) for k in ("occupation(0)", "answer", "sentence")):
            raise DataError(f"{folder / 'templates.tsv'}:{lineno}: needs 'occupation(0)', 'answer' and 'sentence' columns")
        templates[f"{r['occupation(0)']}.{r['answer']}"] = r["sentence"]
    items = []
    for lineno, row in enumerate(_read_tsv(folder / "all_sentences.tsv"), start=2):
        sentid = row.get("sentid") or ""
        if not isinstance(row.get("sentence"), str):
            raise DataError(f"{folder / 'all_sentences.tsv'}:{lineno}: needs 'sentid' and 'sentence' columns")
        parts = sentid.split(".")
        if len(parts) != 5 or parts[4] != "txt" or parts[2] not in ("0", "1") or parts[3] not in PRONOUNS:
            raise DataError(f"{folder / 'all_sentences.tsv'}:{lineno}: malformed sentid {sentid!r}")
        occupation, participant, answer, gender = parts[0], parts[1], int(parts[2]), parts[3]
        template_key = f"{occupation}.{answer}"
        pronoun = next(
            (word for slot, word in PRONOUNS[gender].items() if slot in templates.get(template_key, "")), None
        )
        if occupation not in stats or pronoun is None:
            raise DataError(f"{folder / 'all_sentences.tsv'}:{lineno}: no template or BLS statistic for {sentid!r}")
        items.append(
            WinogenderItem(
                id=f"winogender/{sentid}", sentid=sentid, sentence=row["sentence"], occupation=occupation,
                participant=participant, answer=answer, gender=gender, pronoun=pronoun,
                template=template_key, bls_pct_female=stats[occupation],
            )
        )
    return items
