"""CrowS-Pairs (Nangia et al. 2020): crows_pairs_anonymized.csv."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from rai_multi.errors import DataError
from rai_multi.inputs import reading


@dataclass(frozen=True)
class CrowsPair:
    id: str          # crows_pairs/<row index>
    sent_more: str   # the more stereotyping sentence
    sent_less: str
    direction: str   # stereo | antistereo
    bias_type: str


def load_crows_pairs(data_dir: Path) -> list[CrowsPair]:
    path = data_dir / "crows_pairs" / "crows_pairs_anonymized.csv"
    if not path.is_file():
        raise DataError(f"CrowS-Pairs file not found: {path}")
    pairs = []
    with reading(path), open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            where = f"{path}:{reader.line_num}"
            try:
                direction = row["stereo_antistereo"]
                pair = CrowsPair(f"crows_pairs/{row['']}", row["sent_more"], row["sent_less"], direction, row["bias_type"])
            except KeyError as exc:
                raise DataError(f"{where}: missing column {exc}") from None
            if direction not in ("stereo", "antistereo") or not pair.sent_more or not pair.sent_less:
                raise DataError(f"{where}: malformed row (stereo_antistereo={direction!r})")
            pairs.append(pair)
    return pairs
