"""RealToxicityPrompts (Gehman et al. 2020) jsonl: rows with ``prompt`` and ``continuation``
objects carrying Perspective scores. Works for the subset files here and the full 99k file;
the hub dataset ``allenai/real-toxicity-prompts`` has the same fields.

An optional row-level ``lang`` field (a language code, default ``en``) lets prompt files
in other languages use the same format, so toxicity is sliced by language and tier."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rai_multi.errors import DataError
from rai_multi.inputs import jsonl_rows, reading

HUB_DATASET = "allenai/real-toxicity-prompts"
HUB_REVISION = "main"  # no commit sha could be looked up offline: pin it once it can be


@dataclass(frozen=True)
class RtpPrompt:
    id: str                    # rtp/<file stem>/<line index from 0>
    text: str
    toxicity: float | None     # Perspective toxicity of the prompt, from the file
    challenging: bool | None
    lang: str = "en"

    @property
    def kind(self) -> str:
        """``toxic`` (prompt toxicity >= 0.5), ``nontoxic``, or ``unscored``."""
        if self.toxicity is None:
            return "unscored"
        return "toxic" if self.toxicity >= 0.5 else "nontoxic"


def read_rtp_jsonl(path: Path) -> list[RtpPrompt]:
    if not path.is_file():
        raise DataError(f"RealToxicityPrompts file not found: {path}")
    prompts = []
    with reading(path), open(path, encoding="utf-8") as fh:
        for index, line in enumerate(fh):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                prompt = row["prompt"]
                text = prompt["text"]
                if not isinstance(row, dict) or not isinstance(prompt, dict):
                    raise TypeError
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{index + 1}: not valid JSON ({exc.msg})") from None
            except (KeyError, TypeError):
                raise DataError(f"{path}:{index + 1}: needs a 'prompt' object with 'text'") from None
            if not isinstance(text, str):
                raise DataError(f"{path}:{index + 1}: prompt.text must be a string")
            tox = prompt.get("toxicity")
            if tox is not None and (isinstance(tox, bool) or not isinstance(tox, (int, float)) or not 0 <= tox <= 1):
                raise DataError(f"{path}:{index + 1}: prompt.toxicity must be a number in [0, 1] or null, got {tox!r}")
            lang = row.get("lang", "en")
            if not isinstance(lang, str) or not lang.strip() or lang != lang.strip().lower():
                raise DataError(f"{path}:{index + 1}: lang must be a lower-case language code such as 'fr', got {lang!r}")
            prompts.append(RtpPrompt(f"rtp/{path.stem}/{index}", text, float(tox) if tox is not None else None,
                                     row.get("challenging"), lang))
    if not prompts:
        raise DataError(f"{path}: no prompts")
    return prompts


def load_rtp_hub() -> list[RtpPrompt]:
    try:
        from datasets import load_dataset

        ds = load_dataset(HUB_DATASET, split="train", revision=HUB_REVISION)
    except Exception as exc:
        raise DataError(f"cannot load {HUB_DATASET} from the hub: {str(exc).splitlines()[0] if str(exc) else exc}; "
                        "pass --rtp-file or --data-dir") from None
    return [RtpPrompt(f"rtp/hub/{i}", r["prompt"]["text"], r["prompt"].get("toxicity"), r.get("challenging"))
            for i, r in enumerate(ds)]


@dataclass(frozen=True)
class ScoredText:
    """One prompt or continuation text of an RTP file with its Perspective toxicity."""

    id: str                    # rtp/<file stem>/<line index>/<part>
    part: str                  # "prompt" or "continuation"
    text: str
    perspective: float
    challenging: bool


def read_rtp_scored_texts(path: Path) -> list[ScoredText]:
    """Every prompt and continuation text of ``path`` that carries a Perspective toxicity
    (texts whose toxicity is null are left out: nothing to compare against)."""
    if not path.is_file():
        raise DataError(f"RealToxicityPrompts file not found: {path}")
    out = []
    for lineno, row in jsonl_rows(path):
        index = lineno - 1  # ids count lines from 0
        if not isinstance(row, dict):
            raise DataError(f"{path}:{lineno}: not a JSON object")
        for part in ("prompt", "continuation"):
            obj = row.get(part)
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                continue
            tox = obj.get("toxicity")
            if tox is None:
                continue
            if isinstance(tox, bool) or not isinstance(tox, (int, float)) or not 0 <= tox <= 1:
                raise DataError(f"{path}:{lineno}: {part}.toxicity must be a number in [0, 1] or null")
            out.append(ScoredText(f"rtp/{path.stem}/{index}/{part}", part, obj["text"], float(tox),
                                  bool(row.get("challenging"))))
    if not out:
        raise DataError(f"{path}: no text carries a Perspective toxicity")
    return out
