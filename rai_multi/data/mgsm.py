"""MGSM loader: upstream ``mgsm_<lang>.tsv`` files and ``exemplars.py``, or the hub.

The TSVs have no header: ``question<TAB>answer``. ``exemplars.py`` is a Python module in
the upstream repo; it is parsed with ``ast`` and its dict literal read with
``ast.literal_eval``, never imported or executed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from rai_multi.data.hub import load_hub_split
from rai_multi.errors import DataError
from rai_multi.scoring.numbers import parse_gold

HUB_DATASET = "juletxara/mgsm"
# The dataset is a loading script, which datasets >= 4 no longer runs; the hub's parquet
# conversion (branch refs/convert/parquet, <lang>/{train,test}/ folders) is read instead.
# A branch can move: pin it to that branch's commit sha once it can be looked up online.
HUB_REVISION = "refs/convert/parquet"


@dataclass(frozen=True)
class MgsmItem:
    id: str
    lang: str
    question: str
    answer: float
    answer_raw: str


@dataclass(frozen=True)
class Exemplar:
    question: str  # with the question word, as upstream writes it
    answer: str    # step-by-step answer with its prefix and final-answer sentence
    number: float


def mgsm_folder(data_dir: Path) -> Path:
    """Accept the data root (holding ``mgsm/``) or the mgsm folder itself."""
    return data_dir / "mgsm" if (data_dir / "mgsm").is_dir() else data_dir


def tsv_path(data_dir: Path, lang: str) -> Path:
    return mgsm_folder(data_dir) / f"mgsm_{lang}.tsv"


def exemplars_path(data_dir: Path) -> Path:
    return mgsm_folder(data_dir) / "exemplars.py"


def load_mgsm_tsv(path: Path, lang: str) -> list[MgsmItem]:
    """Read one TSV; a malformed row raises a DataError naming file and line."""
    if not path.is_file():
        raise DataError(f"MGSM file not found: {path}")
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    items = []
    # utf-8-sig: a byte-order mark (files re-saved on Windows) must not become part of the
    # first question.
    for lineno, raw_line in enumerate(raw_bytes.splitlines(), start=1):
        try:
            line = raw_line.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}:{lineno}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0].strip():
            raise DataError(
                f"{path}:{lineno}: expected 'question<TAB>answer' (2 fields), found {len(fields)} field(s)"
            )
        question, raw = fields
        try:
            gold = parse_gold(raw)
        except ValueError:
            raise DataError(f"{path}:{lineno}: answer {raw!r} is not a number") from None
        items.append(MgsmItem(f"mgsm/{lang}/{len(items)}", lang, question.strip(), gold, raw.strip()))
    if not items:
        raise DataError(f"{path}: no rows")
    return items


def load_mgsm_hub(lang: str, revision: str = HUB_REVISION, *, path: str | Path = HUB_DATASET,
                  cache_dir: Path | None = None) -> list[MgsmItem]:
    """The same items from the hub (needs network); ``path`` is for a local copy in the hub layout."""
    ds = load_hub_split(path, None, "test", revision, data_dir=lang, cache_dir=cache_dir,
                        hint="pass --data-dir or set RAI_MULTI_DATA to a folder holding mgsm/mgsm_<lang>.tsv")
    return [
        MgsmItem(f"mgsm/{lang}/{i}", lang, row["question"].strip(), float(row["answer_number"]), str(row["answer_number"]))
        for i, row in enumerate(ds)
    ]


def load_exemplars_hub(langs: list[str], revision: str = HUB_REVISION, *, path: str | Path = HUB_DATASET,
                       cache_dir: Path | None = None) -> dict[str, list[Exemplar]]:
    """Exemplars from the hub dataset's ``train`` split (8 per language; its question and
    answer fields carry the question word and step-by-step prefix, as exemplars.py does)."""
    out: dict[str, list[Exemplar]] = {}
    for lang in langs:
        ds = load_hub_split(path, None, "train", revision, data_dir=lang, cache_dir=cache_dir,
                            hint="pass --data-dir with mgsm/exemplars.py")
        out[lang] = [Exemplar(r["question"], r["answer"], float(r["answer_number"])) for r in ds]
    return out


def load_exemplars(path: Path) -> dict[str, list[Exemplar]]:
    """The 8 native CoT exemplars per language from upstream exemplars.py (not executed)."""
    if not path.is_file():
        raise DataError(f"MGSM exemplars file not found: {path}")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except SyntaxError as exc:
        raise DataError(f"{path}:{exc.lineno}: cannot parse: {exc.msg}") from None
    literals: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("MGSM_EXEMPLARS", "EXEMPLAR_NUMBER_ANSWERS"):
                try:
                    literals[name] = ast.literal_eval(node.value)
                except ValueError:
                    raise DataError(f"{path}:{node.lineno}: {name} is not a plain literal") from None
    raw = literals.get("MGSM_EXEMPLARS")
    numbers = literals.get("EXEMPLAR_NUMBER_ANSWERS")
    if not isinstance(raw, dict) or not isinstance(numbers, list):
        raise DataError(f"{path}: MGSM_EXEMPLARS or EXEMPLAR_NUMBER_ANSWERS not found")
    if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers):
        raise DataError(f"{path}: EXEMPLAR_NUMBER_ANSWERS must be a list of numbers")
    out: dict[str, list[Exemplar]] = {}
    for lang, by_index in raw.items():
        out[str(lang)] = _language_exemplars(path, str(lang), by_index, numbers)
    return out


def _language_exemplars(path: Path, lang: str, by_index: object, numbers: list) -> list[Exemplar]:
    """One language's ``{"1": {"q": ..., "a": ...}, ...}`` checked, in index order."""
    where = f"{path}: MGSM_EXEMPLARS[{lang!r}]"
    if not isinstance(by_index, dict):
        raise DataError(f"{where} must map exemplar numbers to {{'q': ..., 'a': ...}}")
    try:
        keys = sorted(by_index, key=int)
    except (TypeError, ValueError):
        raise DataError(f"{where}: exemplar keys must be numbers ('1', '2', ...)") from None
    if len(keys) != len(numbers):
        raise DataError(f"{where}: {len(keys)} exemplars, expected {len(numbers)}")
    shots = []
    for key, number in zip(keys, numbers):
        entry = by_index[key]
        if not isinstance(entry, dict) or not isinstance(entry.get("q"), str) or not isinstance(entry.get("a"), str):
            raise DataError(f"{where}[{key!r}]: needs string fields 'q' and 'a'")
        shots.append(Exemplar(entry["q"], entry["a"], float(number)))
    return shots
