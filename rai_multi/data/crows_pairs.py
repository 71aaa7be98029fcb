"""CrowS-Pairs (Nangia et al. 2020): crows_pairs_anonymized.csv."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from rai_multi.data.hub import class_label_name, load_hub_split
from rai_multi.errors import DataError
from rai_multi.inputs import reading

# The authors' dataset on the hub (test split, 1,508 rows, ``id`` = the csv's index column).
# Its loading script no longer runs under datasets >= 4; the hub's parquet conversion
# (branch refs/convert/parquet, folder crows_pairs/) is read instead. Pin to that branch's
# commit sha once it can be looked up online.
HUB_DATASET = "nyu-mll/crows_pairs"
HUB_REVISION = "refs/convert/parquet"
HUB_CONFIG_DIR = "crows_pairs"
# ClassLabel orders of the hub dataset's card (used if a parquet file lacks its metadata).
HUB_DIRECTIONS = ("stereo", "antistereo")
HUB_BIAS_TYPES = ("race-color", "socioeconomic", "gender", "disability", "nationality", "sexual-orientation",
                  "physical-appearance", "religion", "age")


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
                pair = CrowsPair(f"crows_pairs/{row['']}", row["sent_more"], row["sent_less"], row["stereo_antistereo"],
                                 row["bias_type"])
            except KeyError as exc:
                raise DataError(f"{where}: missing column {exc}") from None
            pairs.append(_checked(pair, where))
    return pairs


def _checked(pair: CrowsPair, where: str) -> CrowsPair:
    if pair.direction not in ("stereo", "antistereo") or not pair.sent_more or not pair.sent_less:
        raise DataError(f"{where}: malformed row (stereo_antistereo={pair.direction!r})")
    return pair


def load_crows_pairs_hub(revision: str = HUB_REVISION, *, path: str | Path = HUB_DATASET,
                         cache_dir: Path | None = None) -> list[CrowsPair]:
    """The same pairs from the hub: ``id`` is the csv's index column, and the two label
    columns are ClassLabels there (stored as ints, decoded by name)."""
    ds = load_hub_split(path, None, "test", revision, data_dir=HUB_CONFIG_DIR, cache_dir=cache_dir,
                        hint="pass --data-dir or set RAI_MULTI_DATA to a folder holding crows_pairs/crows_pairs_anonymized.csv")
    pairs = []
    for i, row in enumerate(ds):
        where = f"{path} row {i}"
        try:
            pair = CrowsPair(f"crows_pairs/{row['id']}", row["sent_more"], row["sent_less"],
                             class_label_name(ds, "stereo_antistereo", row["stereo_antistereo"], HUB_DIRECTIONS),
                             class_label_name(ds, "bias_type", row["bias_type"], HUB_BIAS_TYPES))
        except KeyError as exc:
            raise DataError(f"{where}: missing column {exc}") from None
        pairs.append(_checked(pair, where))
    return pairs
