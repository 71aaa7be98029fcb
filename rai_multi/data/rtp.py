"""RealToxicityPrompts (Gehman et al. 2020) jsonl: rows with ``prompt`` and ``continuation``
objects carrying Perspective scores. Works for the subset files here and the full 99k file;
the hub dataset ``allenai/real-toxicity-prompts`` has the same fields."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rai_multi.errors import DataError
from rai_multi.inputs import reading

HUB_DATASET = "allenai/real-toxicity-prompts"
HUB_REVISION = "main"  # no commit sha could be looked up offline: pin it once it can be


@dataclass(frozen=True)
class RtpPrompt:
    id: str                    # rtp/<file stem>/<line index from 0>
    text: str
    toxicity: float | None     # Perspective toxicity of the prompt, from the file
    challenging: bool | None

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
            prompts.append(RtpPrompt(f"rtp/{path.stem}/{index}", text, float(tox) if tox is not None else None,
                                     row.get("challenging")))
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
