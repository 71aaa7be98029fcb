"""XCOPA (Ponti et al. 2020): causal commonsense reasoning in 11 languages.

Upstream layout (cambridgeltl/xcopa ``data/``): ``{val,test}.{lang}.jsonl``, one JSON object
a line with ``premise``, ``choice1``, ``choice2``, ``question`` ("cause" or "effect"),
``label`` (0 -> choice1 is right, 1 -> choice2), ``idx`` and ``changed`` (the translator
adapted the item). 100 validation and 500 test items per language; the same idx is the
same (translated) COPA item in every language, with the same label.

Reading is strict because a silently skipped or mis-typed row changes an accuracy: every
problem raises a DataError naming file and line. Item ids are ``xcopa/<lang>/<idx>`` with
the row's own ``idx`` (not its position), so predictions files can be matched by id.

Known upstream quirk, kept as is: the ``question`` field is not the same across languages
for the same idx (th test says "effect" for all 500 rows; tr val says "effect" for all 100;
id, it, sw, tr differ on a few rows). The loader reports the file's own field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rai_multi.data.hub import load_hub_split
from rai_multi.errors import DataError

XCOPA_LANGS: tuple[str, ...] = ("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh")
SPLITS = ("val", "test")
HUB_DATASET = "cambridgeltl/xcopa"
# "Convert dataset to Parquet (#3)" on main: parquet files per language config
# (<lang>/validation-*.parquet, <lang>/test-*.parquet), no loading script, so datasets >= 3
# can read it. Found through the hub's page for that commit (offline search); verify online.
HUB_REVISION = "042f78955ba48e6404616762fa6e05e839c3907a"
HUB_SPLITS = {"val": "validation", "test": "test"}
QUESTIONS = ("cause", "effect")
_TEXT_FIELDS = ("premise", "choice1", "choice2")


@dataclass(frozen=True)
class XcopaItem:
    lang: str
    split: str
    idx: int
    premise: str
    choice1: str
    choice2: str
    question: str  # cause | effect
    label: int     # 0 -> choice1, 1 -> choice2

    @property
    def id(self) -> str:
        return f"xcopa/{self.lang}/{self.idx}"

    @property
    def choices(self) -> tuple[str, str]:
        return (self.choice1, self.choice2)

    @property
    def answer(self) -> str:
        """Text of the correct alternative."""
        return self.choices[self.label]


def _check_lang_split(lang: str, split: str) -> None:
    if lang not in XCOPA_LANGS:
        raise DataError(f"XCOPA has no language {lang!r}; languages: {', '.join(XCOPA_LANGS)}")
    if split not in SPLITS:
        raise DataError(f"XCOPA has no split {split!r}; splits: {', '.join(SPLITS)}")


def xcopa_folder(data_dir: Path) -> Path:
    """Accept the data root (holding ``xcopa/``) or the xcopa folder itself."""
    return data_dir / "xcopa" if (data_dir / "xcopa").is_dir() else data_dir


def xcopa_path(data_dir: Path, lang: str, split: str) -> Path:
    _check_lang_split(lang, split)
    return xcopa_folder(data_dir) / f"{split}.{lang}.jsonl"


def _item(row: Any, where: str, lang: str, split: str) -> XcopaItem:
    """One row, every field checked (bool is not accepted as an int: ``True`` is not a label)."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for key in (*_TEXT_FIELDS, "question", "label", "idx"):
        if key not in row:
            raise DataError(f"{where}: missing field {key!r}")
    for key in _TEXT_FIELDS:
        if not isinstance(row[key], str) or not row[key].strip():
            raise DataError(f"{where}: field {key!r} must be a non-empty string, got {row[key]!r}")
    if row["question"] not in QUESTIONS:
        raise DataError(f"{where}: field 'question' must be 'cause' or 'effect', got {row['question']!r}")
    label, idx = row["label"], row["idx"]
    if isinstance(label, bool) or not isinstance(label, int) or label not in (0, 1):
        raise DataError(f"{where}: field 'label' must be 0 or 1, got {label!r}")
    if isinstance(idx, bool) or not isinstance(idx, int) or idx < 0:
        raise DataError(f"{where}: field 'idx' must be a non-negative integer, got {idx!r}")
    if "changed" in row and not isinstance(row["changed"], bool):
        raise DataError(f"{where}: field 'changed' must be true or false, got {row['changed']!r}")
    return XcopaItem(lang, split, idx, row["premise"], row["choice1"], row["choice2"], row["question"], label)


def _add(items: list[XcopaItem], seen: dict[int, str], item: XcopaItem, where: str) -> None:
    if item.idx in seen:
        raise DataError(f"{where}: duplicate idx {item.idx} (first at {seen[item.idx]})")
    seen[item.idx] = where
    items.append(item)


def load_xcopa_jsonl(path: Path, lang: str, split: str) -> list[XcopaItem]:
    """Every row of one upstream file, validated; errors name ``file:line``."""
    _check_lang_split(lang, split)
    if not path.is_file():
        raise DataError(f"XCOPA file not found: {path}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    items: list[XcopaItem] = []
    seen: dict[int, str] = {}
    # splitlines() also takes the CRLF endings the upstream files use.
    for lineno, raw_line in enumerate(raw.splitlines(), start=1):
        where = f"{path}:{lineno}"
        try:
            line = raw_line.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        _add(items, seen, _item(row, where, lang, split), where)
    if not items:
        raise DataError(f"{path}: no rows")
    return items


def load_xcopa_hub(lang: str, split: str, revision: str = HUB_REVISION, *, path: str | Path = HUB_DATASET,
                   cache_dir: Path | None = None) -> list[XcopaItem]:
    """The same items from the hub at a pinned revision (config = language; ``val`` is the
    hub's ``validation`` split). ``path`` is for a local copy in the hub layout."""
    _check_lang_split(lang, split)
    ds = load_hub_split(path, lang, HUB_SPLITS[split], revision, cache_dir=cache_dir,
                        hint="pass --data-dir or set RAI_MULTI_DATA to a folder holding xcopa/{val,test}.<lang>.jsonl")
    items: list[XcopaItem] = []
    seen: dict[int, str] = {}
    for i, row in enumerate(ds):
        where = f"{path} ({lang}, {HUB_SPLITS[split]}) row {i}"
        _add(items, seen, _item(dict(row), where, lang, split), where)
    if not items:
        raise DataError(f"{path} ({lang}, {HUB_SPLITS[split]}): no rows")
    return items


def load_xcopa(data_dir: Path | None, lang: str, split: str = "test") -> list[XcopaItem]:
    """Local files when ``data_dir`` is given, else the hub at the pinned revision."""
    if data_dir is None:
        return load_xcopa_hub(lang, split)
    return load_xcopa_jsonl(xcopa_path(data_dir, lang, split), lang, split)


# Invented, language-neutral items (no XCOPA text is copied): one cause and one effect
# question each, labels on both sides, so both prompt forms and both answers are exercised.
_SAMPLES = (
    ("The glass fell off the table.", "It broke on the floor.", "It was filled with water.", "effect", 0),
    ("The street was wet in the morning.", "The sun shone all night.", "It rained during the night.", "cause", 1),
    ("The child was hungry.", "She ate a sandwich.", "She closed the window.", "effect", 0),
    ("The lamp went dark.", "Someone painted the wall.", "The bulb burned out.", "cause", 1),
)


def write_xcopa_sample(root: Path) -> list[Path]:
    """A few invented items per language and split in the upstream format, under
    ``root/xcopa/`` (for the offline sample-data mode); every text carries a ``[sample]``
    marker. Returns the files written."""
    folder = root / "xcopa"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for split in SPLITS:
        for lang in XCOPA_LANGS:
            rows = [
                {"premise": f"[sample {lang}] {premise}", "choice1": c1, "choice2": c2, "question": q, "label": label,
                 "idx": idx, "changed": False}
                for idx, (premise, c1, c2, q, label) in enumerate(_SAMPLES)
            ]
            path = folder / f"{split}.{lang}.jsonl"
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            written.append(path)
    return written
