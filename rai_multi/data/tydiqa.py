"""TyDiQA GoldP loader: SQuAD 1.1-layout JSON, per-language files or the combined dev file,
and the hub's ``secondary_task``.

The language of an item is read from its id prefix (``bengali-...``) and checked against
the language asked for: a file whose ids belong to another language, or a slice that comes
out empty, is an error, never a silent mixed average.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rai_multi.data.hub import load_hub_split
from rai_multi.errors import DataError

HUB_DATASET = "google-research-datasets/tydiqa"
# main holds the parquet conversion (configs primary_task, secondary_task); no commit sha
# could be looked up offline: pin it once it can be.
HUB_REVISION = "main"
LANG_NAMES = {
    "ar": "arabic", "bn": "bengali", "en": "english", "fi": "finnish", "id": "indonesian",
    "ja": "japanese", "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu", "th": "thai",
}
NAME_TO_LANG = {v: k for k, v in LANG_NAMES.items()}
GOLDP_LANGS = ("ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te")
COMBINED_FILES = {"dev": "tydiqa-goldp-v1.1-dev.json", "train": "tydiqa-goldp-v1.1-train.json"}


@dataclass(frozen=True)
class QAItem:
    id: str
    lang: str
    title: str
    context: str
    question: str
    answers: tuple[str, ...]


def lang_of_id(qid: str) -> str | None:
    """ISO code from an upstream id such as ``bengali-6086...-1`` (None if unknown)."""
    return NAME_TO_LANG.get(qid.split("-", 1)[0])


def read_squad_json(path: Path) -> list[QAItem]:
    """Every question of a SQuAD 1.1-layout file; malformed input names file and place."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataError(f"{path}: expected the SQuAD layout {{'data': [...]}}")
    items: list[QAItem] = []
    seen: set[str] = set()
    for a, article in enumerate(doc["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise DataError(f"{path}: data[{a}]: needs a 'paragraphs' list")
        title = article.get("title", "")
        for p, para in enumerate(paragraphs):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            if not isinstance(para, dict) or not isinstance(para.get("context"), str) or not isinstance(para.get("qas"), list):
                raise DataError(f"{where}: needs a 'context' string and a 'qas' list")
            for q, qa in enumerate(para["qas"]):
                item = _question(qa, f"{where}.qas[{q}]", str(title), para["context"])
                if item.id in seen:
                    raise DataError(f"{where}.qas[{q}]: duplicate question id {item.id!r}")
                seen.add(item.id)
                items.append(item)
    return items


def _question(qa: object, where: str, title: str, context: str) -> QAItem:
    """One ``qas`` entry, checked: string id and question, at least one string answer."""
    try:
        qid, question = str(qa["id"]), qa["question"]  # type: ignore[index]
        answers = tuple(ans["text"] for ans in qa["answers"])  # type: ignore[index]
    except (KeyError, TypeError):
        raise DataError(f"{where}: needs 'id', 'question' and 'answers[].text'") from None
    if not isinstance(question, str) or not all(isinstance(t, str) for t in answers):
        raise DataError(f"{where} ({qid}): 'question' and every 'answers[].text' must be strings")
    if not answers:
        raise DataError(f"{where} ({qid}): no gold answer")
    return QAItem(qid, lang_of_id(qid) or "", title, context, question, answers)


def find_file(data_dir: Path, split: str, lang: str) -> tuple[Path, bool] | None:
    """The per-language file if present, else the combined official file (flag True)."""
    root = data_dir / "tydiqa_goldp" if (data_dir / "tydiqa_goldp").is_dir() else data_dir
    per_lang = root / split / f"{LANG_NAMES.get(lang, lang)}.json"
    if per_lang.is_file():
        return per_lang, False
    for candidate in (root / COMBINED_FILES[split], root / split / COMBINED_FILES[split]):
        if candidate.is_file():
            return candidate, True
    return None


def select_language(items: list[QAItem], lang: str, path: Path, combined: bool) -> list[QAItem]:
    """Items of ``lang`` only; a per-language file holding other languages is an error."""
    if combined:
        chosen = [i for i in items if i.lang == lang]
    else:
        wrong = [i for i in items if i.lang != lang]
        if wrong:
            raise DataError(
                f"{path}: holds {len(wrong)} question(s) not in language {lang!r} "
                f"(e.g. id {wrong[0].id!r}); the id prefix must be {LANG_NAMES.get(lang, lang)!r}"
            )
        chosen = items
    if not chosen:
        raise DataError(f"{path}: no questions for language {lang!r}")
    return chosen


def load_tydiqa(data_dir: Path | None, lang: str, split: str = "dev") -> tuple[list[QAItem], Path | None]:
    """Questions of one language and split, and the file they came from (None: hub)."""
    if data_dir is None:
        return load_tydiqa_hub(lang, split), None
    found = find_file(data_dir, split, lang)
    if found is None:
        raise DataError(f"TyDiQA GoldP {split} file for {lang!r} not found under {data_dir}")
    path, combined = found
    return select_language(read_squad_json(path), lang, path, combined), path


def load_tydiqa_hub(lang: str, split: str, revision: str = HUB_REVISION, *, path: str | Path = HUB_DATASET,
                    cache_dir: Path | None = None) -> list[QAItem]:
    ds = load_hub_split(path, "secondary_task", "validation" if split == "dev" else "train", revision,
                        cache_dir=cache_dir, hint="pass --data-dir or set RAI_MULTI_DATA")
    items = [
        QAItem(r["id"], lang_of_id(r["id"]) or "", r["title"], r["context"], r["question"], tuple(r["answers"]["text"]))
        for r in ds
    ]
    return select_language(items, lang, Path(f"hub:{path}"), combined=True)
