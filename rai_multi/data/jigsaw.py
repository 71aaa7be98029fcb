"""Jigsaw Unintended Bias in Toxicity Classification (Borkan et al. 2019) CSV files:
``all_data.csv``, ``train.csv``, ``test_public_expanded.csv``, ``test_private_expanded.csv``.

Columns used: ``comment_text``; the toxicity fraction in ``toxicity`` (all_data, the
expanded test files) or ``target`` (train), toxic at >= 0.5; ``id`` when present; and the
identity columns present among the 24 the dataset annotates (fraction of raters who saw
the identity mentioned; mentioned at >= 0.5, as in the paper). Only part of the rows were
annotated for identities: a blank identity cell counts as not mentioned, which is how the
competition's own metric treated it.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from rai_multi.data.toxicity_cls import LabelledText
from rai_multi.errors import DataError

JIGSAW_IDENTITY_COLUMNS = (
    "male", "female", "transgender", "other_gender", "heterosexual", "homosexual_gay_or_lesbian", "bisexual",
    "other_sexual_orientation", "christian", "jewish", "muslim", "hindu", "buddhist", "atheist", "other_religion",
    "black", "white", "asian", "latino", "other_race_or_ethnicity", "physical_disability",
    "intellectual_or_learning_disability", "psychiatric_or_mental_illness", "other_disability",
)
LABEL_COLUMNS = ("toxicity", "target")
THRESHOLD = 0.5


def _fraction(value: str, path: Path, line: int, column: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0.0 <= number <= 1.0:
        raise DataError(f"{path}:{line}: column {column!r} must be a fraction in [0, 1], got {value!r}")
    return number


def load_jigsaw(path: Path) -> tuple[list[LabelledText], list[str]]:
    """Items and the identity columns the file has (possibly none)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Jigsaw file not found: {path}")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # some comments are long
    items: list[LabelledText] = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        label_col = next((c for c in LABEL_COLUMNS if c in header), None)
        if "comment_text" not in header or label_col is None:
            raise DataError(f"{path}: a Jigsaw file needs 'comment_text' and 'toxicity' (or 'target') columns; "
                            f"found {', '.join(header[:8])}")
        identities = [c for c in JIGSAW_IDENTITY_COLUMNS if c in header]
        for row in reader:
            line = reader.line_num
            label = _fraction(row[label_col] or "", path, line, label_col)
            if label is None:
                raise DataError(f"{path}:{line}: empty {label_col!r}")
            marks = {c: (v is not None and v >= THRESHOLD)
                     for c in identities for v in [_fraction(row[c] or "", path, line, c)]}
            ident = row.get("id") or str(len(items))
            items.append(LabelledText(f"jigsaw/{ident}", row["comment_text"] or "", int(label >= THRESHOLD), marks))
    if not items:
        raise DataError(f"{path}: no rows")
    return items, identities
