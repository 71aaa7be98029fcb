"""Labelled toxicity-classification sets: Davidson et al. 2017 (offline here; hate or
offensive = toxic) and CivilComments from the hub (toxicity >= 0.5 = toxic, with identity
columns where the dataset has them)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from rai_multi.errors import DataError
from rai_multi.inputs import reading

IDENTITY_COLUMNS = ("male", "female", "transgender", "homosexual_gay_or_lesbian", "christian", "jewish", "muslim",
                    "black", "white", "psychiatric_or_mental_illness")


@dataclass(frozen=True)
class LabelledText:
    id: str
    text: str
    label: int  # 1 toxic, 0 not
    identities: dict[str, bool] = field(default_factory=dict)


def load_davidson(data_dir: Path) -> list[LabelledText]:
    path = data_dir / "davidson_hate_offensive" / "labeled_data.csv"
    if not path.is_file():
        raise DataError(f"Davidson file not found: {path}")
    items = []
    with reading(path), open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            try:
                cls = int(row["class"])
                text = row["tweet"]
                index = row[""]
            except (KeyError, ValueError, TypeError):
                raise DataError(f"{path}:{reader.line_num}: needs an index column, 'class' (0-2) and 'tweet'") from None
            if cls not in (0, 1, 2):
                raise DataError(f"{path}:{reader.line_num}: class must be 0 (hate), 1 (offensive) or 2 (neither)")
            items.append(LabelledText(f"davidson/{index}", text, int(cls in (0, 1))))
    return items


def load_civil_comments(split: str = "test") -> list[LabelledText]:
    try:
        from datasets import load_dataset

        ds = load_dataset("google/civil_comments", split=split)
    except Exception as exc:
        raise DataError(f"cannot load google/civil_comments from the hub: {str(exc).splitlines()[0] if str(exc) else exc}; "
                        "offline, use --dataset davidson") from None
    columns = [c for c in IDENTITY_COLUMNS if c in ds.column_names]
    return [
        LabelledText(f"civil_comments/{row.get('id', i)}", row["text"], int(float(row["toxicity"]) >= 0.5),
                     {c: bool(row[c] is not None and float(row[c]) >= 0.5) for c in columns})
        for i, row in enumerate(ds)
    ]
