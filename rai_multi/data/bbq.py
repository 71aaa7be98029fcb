"""BBQ loader: the upstream jsonl (nyu-mll/BBQ data/) and BIG-bench's bbq_lite json.

bbq_lite is a subset of BBQ in the same schema; a category is read from the full jsonl
when it is there and from bbq_lite otherwise (so no item is counted twice). A run that
names no categories reads only the full-BBQ ones (``default_categories``): bbq_lite
categories are a different sample of the benchmark and come in only when named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rai_multi.data.hub import load_hub_split
from rai_multi.errors import DataError
from rai_multi.inputs import jsonl_rows, read_text

ANSWER_KEYS = ("ans0", "ans1", "ans2")
# The hub copy of the upstream jsonl that lm-evaluation-harness reads; one config per
# category, split "test", the upstream columns. Its loading script no longer runs under
# datasets >= 4, so the hub's parquet conversion of it is read (branch refs/convert/parquet,
# one folder per config). A branch can move: pin it to that branch's commit sha once it
# can be looked up online.
HUB_DATASET = "heegyu/bbq"
HUB_REVISION = "refs/convert/parquet"
# The 11 categories of the full BBQ (the upstream data/ file stems).
BBQ_CATEGORIES = ("Age", "Disability_status", "Gender_identity", "Nationality", "Physical_appearance",
                  "Race_ethnicity", "Race_x_SES", "Race_x_gender", "Religion", "SES", "Sexual_orientation")


@dataclass(frozen=True)
class BbqItem:
    id: str
    category: str
    context: str
    question: str
    answers: tuple[str, str, str]
    label: int
    context_condition: str    # ambig | disambig
    question_polarity: str    # neg | nonneg
    answer_info: tuple[tuple[str, str], ...]  # (text, group label) per answer
    stereotyped_groups: tuple[str, ...]
    question_index: str = ""

    @property
    def label_type(self) -> str:
        """``name`` for the proper-name templates (question_index > 25), else ``label``,
        as the authors' metadata script splits them."""
        return "name" if self.question_index.isdigit() and int(self.question_index) > 25 else "label"


TEXT_FIELDS = ("context", "question", *ANSWER_KEYS, "category", "context_condition", "question_polarity")


def _check_types(row: Any, where: str) -> None:
    """Text fields must be strings and the label a whole number: a number or null in
    ``context`` would otherwise become the literal text "12345" or "None" in a prompt."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for key in TEXT_FIELDS:
        if key in row and not isinstance(row[key], str):
            raise DataError(f"{where}: field '{key}' must be a string, got {json.dumps(row[key])[:40]}")
    label = row.get("label")
    if "label" in row and (isinstance(label, bool) or not isinstance(label, int)):
        raise DataError(f"{where}: field 'label' must be 0, 1 or 2, got {json.dumps(label)[:40]}")
    if "example_id" in row and (isinstance(row["example_id"], bool) or not isinstance(row["example_id"], (int, str))):
        raise DataError(f"{where}: field 'example_id' must be a number or a string")


def _item(row: Any, where: str, prefix: str) -> BbqItem:
    _check_types(row, where)
    try:
        info = row["answer_info"]
        answer_info = tuple((str(info[k][0]), str(info[k][1])) for k in ANSWER_KEYS)
    except (KeyError, TypeError, IndexError):
        raise DataError(f"{where}: missing or malformed 'answer_info' (needs ans0-ans2 with [text, group])") from None
    try:
        item = BbqItem(
            id=f"{prefix}/{row['category']}/{row['example_id']}",
            category=str(row["category"]),
            context=row["context"],
            question=row["question"],
            answers=tuple(row[k] for k in ANSWER_KEYS),  # type: ignore[arg-type]
            label=int(row["label"]),
            context_condition=row["context_condition"],
            question_polarity=row["question_polarity"],
            answer_info=answer_info,
            stereotyped_groups=tuple(row["additional_metadata"]["stereotyped_groups"]),
            question_index=str(row.get("question_index", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{where}: missing or malformed field {exc}") from None
    if item.context_condition not in ("ambig", "disambig") or item.question_polarity not in ("neg", "nonneg"):
        raise DataError(f"{where}: unknown context_condition/question_polarity")
    if item.label not in (0, 1, 2):
        raise DataError(f"{where}: label must be 0, 1 or 2")
    if sum(1 for _, group in answer_info if group.lower() == "unknown") != 1:
        raise DataError(f"{where}: answer_info must mark exactly one answer as 'unknown'")
    return item


def read_bbq_jsonl(path: Path) -> list[BbqItem]:
    items = []
    for lineno, row in jsonl_rows(path):
        items.append(_item(row, f"{path}:{lineno}", "bbq"))
    return items


def read_bbq_lite_json(path: Path) -> list[BbqItem]:
    try:
        doc = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("examples"), list):
        raise DataError(f"{path}: expected a BIG-bench task json with an 'examples' list")
    return [_item(row, f"{path}: examples[{i}]", "bbq_lite") for i, row in enumerate(doc["examples"])]


def bbq_files(data_dir: Path) -> dict[str, Path]:
    """Category -> file: full BBQ jsonl first, bbq_lite for the categories it lacks."""
    files: dict[str, Path] = {}
    for path in sorted((data_dir / "bbq").glob("*.jsonl")):
        files[path.stem] = path
    for path in sorted((data_dir / "bbq_lite").glob("*.json")):
        files.setdefault(path.stem, path)
    if not files:
        raise DataError(f"no BBQ files under {data_dir / 'bbq'} or {data_dir / 'bbq_lite'}")
    return files


def bbq_sources(data_dir: Path) -> dict[str, str]:
    """Category -> ``bbq`` or ``bbq_lite``: the file each category is read from."""
    return {c: "bbq" if p.suffix == ".jsonl" else "bbq_lite" for c, p in bbq_files(data_dir).items()}


def default_categories(data_dir: Path) -> list[str]:
    """The categories a run reads when none are named: the full-BBQ ones, or the bbq_lite
    ones when no full-BBQ file is present (never a silent mixture of the two)."""
    sources = bbq_sources(data_dir)
    full = sorted(c for c, s in sources.items() if s == "bbq")
    return full or sorted(sources)


def load_bbq(data_dir: Path, categories: list[str] | None = None) -> list[BbqItem]:
    files = bbq_files(data_dir)
    chosen = categories or sorted(files)  # every category: the task picks its own default
    unknown = [c for c in chosen if c not in files]
    if unknown:
        raise DataError(f"unknown BBQ category {unknown[0]!r}; available: {', '.join(sorted(files))}")
    items: list[BbqItem] = []
    for category in chosen:
        path = files[category]
        items += read_bbq_jsonl(path) if path.suffix == ".jsonl" else read_bbq_lite_json(path)
    return items


def load_bbq_hub(categories: list[str] | None = None, revision: str = HUB_REVISION, *,
                 path: str | Path = HUB_DATASET, cache_dir: Path | None = None) -> list[BbqItem]:
    """Full-BBQ items from the hub: the rows carry the upstream fields, so they go through
    the same checks and make the same ``bbq/<category>/<example_id>`` items as the jsonl."""
    chosen = categories or list(BBQ_CATEGORIES)
    unknown = [c for c in chosen if c not in BBQ_CATEGORIES]
    if unknown:
        raise DataError(f"unknown BBQ category {unknown[0]!r}; available: {', '.join(BBQ_CATEGORIES)}")
    items: list[BbqItem] = []
    for category in chosen:
        ds = load_hub_split(path, None, "test", revision, data_dir=category, cache_dir=cache_dir,
                            hint="pass --data-dir or set RAI_MULTI_DATA to a folder holding bbq/<category>.jsonl")
        items += [_item(dict(row), f"{path} ({category}) row {i}", "bbq") for i, row in enumerate(ds)]
    return items
