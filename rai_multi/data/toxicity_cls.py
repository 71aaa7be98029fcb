"""Labelled toxicity-classification sets: Davidson et al. 2017 (offline here; hate or
offensive = toxic) and CivilComments from the hub (toxicity >= 0.5 = toxic, with identity
columns where the dataset has them)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from rai_multi.data.hub import load_hub_split
from rai_multi.errors import DataError
from rai_multi.inputs import reading

# The authors' data on the hub, converted to parquet on main ("Convert dataset to Parquet
# (#2)", commit adc5fb7: only the short id could be found offline; pin the full sha).
DAVIDSON_HUB = "tdavidson/hate_speech_offensive"
DAVIDSON_REVISION = "main"
DAVIDSON_CLASSES = ("hate speech", "offensive language", "neither")  # class 0, 1, 2 upstream

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
            items.append(_davidson_item(f"davidson/{index}", cls, text, f"{path}:{reader.line_num}"))
    return items


def _davidson_item(item_id: str, cls: int, text: str, where: str) -> LabelledText:
    if cls not in (0, 1, 2):
        raise DataError(f"{where}: class must be 0 (hate), 1 (offensive) or 2 (neither)")
    return LabelledText(item_id, text, int(cls in (0, 1)))


def load_davidson_hub(revision: str = DAVIDSON_REVISION, *, path: str | Path = DAVIDSON_HUB,
                      cache_dir: Path | None = None) -> list[LabelledText]:
    """Davidson from the hub (one ``train`` split; ``class`` a ClassLabel, ``tweet`` the text).

    The hub rows have no index column, and the upstream csv's index has 495 gaps (24,783 rows
    numbered up to 25,296), so hub ids are the row position, ``davidson/row<N>``: never equal
    to a local id by accident, while text and label are the same row for row."""
    ds = load_hub_split(path, None, "train", revision, cache_dir=cache_dir,
                        hint="pass --data-dir with davidson_hate_offensive/labeled_data.csv")
    items = []
    for i, row in enumerate(ds):
        where = f"{path} row {i}"
        raw = row.get("class")
        cls = DAVIDSON_CLASSES.index(raw) if raw in DAVIDSON_CLASSES else raw
        if isinstance(cls, bool) or not isinstance(cls, int) or not isinstance(row.get("tweet"), str):
            raise DataError(f"{where}: needs 'class' (0-2) and a 'tweet' string")
        items.append(_davidson_item(f"davidson/row{i}", cls, row["tweet"], where))
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
