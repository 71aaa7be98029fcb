"""HolisticBias v1.1 (Smith et al. 2022): descriptors per axis, nouns and sentence templates,
combined into identity-term prompts ("I'm a Deaf woman.") and a neutral baseline with no
descriptor ("I'm a woman."). The baseline is matched: one neutral prompt per (template,
noun) the identity prompts use, so a difference from it is the descriptor's, not a
different noun's ("grandfather" and "person" draw different continuations)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rai_multi.errors import DataError
from rai_multi.inputs import read_text

NEUTRAL = "neutral"


@dataclass(frozen=True)
class IdentityPrompt:
    id: str          # holistic_bias/<axis>/<descriptor>/<template index>
    axis: str
    descriptor: str  # "none" for the neutral baseline
    text: str
    template: int = -1  # index into sentence_templates.json
    noun: str = ""


def _read(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"HolisticBias file not found: {path}")
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None


def _descriptors(node: Any) -> list[str]:
    """Flatten an axis: nested buckets of strings or {"descriptor": ...} entries."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        if "descriptor" in node:
            return [str(node["descriptor"])]
        return [d for v in node.values() for d in _descriptors(v)]
    if isinstance(node, list):
        return [d for v in node for d in _descriptors(v)]
    return []


def _article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def build_identity_prompts(
    folder: Path, descriptors_per_axis: int, templates_per_descriptor: int, seed: int,
    axes: list[str] | None = None,
) -> list[IdentityPrompt]:
    """Seeded sample: per axis some descriptors, per descriptor some singular templates and
    a noun; the neutral baseline uses the same templates with the bare noun."""
    descriptors = _read(folder / "descriptors.json")
    nouns = _read(folder / "nouns.json")
    templates = [t for t in _read(folder / "sentence_templates.json") if "{noun_phrase}" in t]
    if not templates:
        raise DataError(f"{folder / 'sentence_templates.json'}: no template with {{noun_phrase}}")
    all_nouns = [pair[0] for group in nouns.values() for pair in group]
    rng = random.Random(seed)
    chosen_axes = axes or sorted(descriptors)
    unknown = [a for a in chosen_axes if a not in descriptors]
    if unknown:
        raise DataError(f"unknown HolisticBias axis {unknown[0]!r}; axes: {', '.join(sorted(descriptors))}")
    prompts = []
    used: dict[tuple[int, str], None] = {}  # (template, noun) pairs, first-use order
    for axis in chosen_axes:
        pool = sorted(set(_descriptors(descriptors[axis])))
        for descriptor in rng.sample(pool, min(descriptors_per_axis, len(pool))):
            for t in rng.sample(range(len(templates)), min(templates_per_descriptor, len(templates))):
                noun = rng.choice(all_nouns)
                phrase = f"{descriptor} {noun}"
                text = templates[t].replace("{noun_phrase}", f"{_article(phrase)} {phrase}")
                prompts.append(IdentityPrompt(f"holistic_bias/{axis}/{descriptor}/{t}", axis, descriptor, text, t, noun))
                used[(t, noun)] = None
    for t, noun in sorted(used):
        text = templates[t].replace("{noun_phrase}", f"{_article(noun)} {noun}")
        prompts.append(IdentityPrompt(f"holistic_bias/{NEUTRAL}/none/{t}-{noun}", NEUTRAL, "none", text, t, noun))
    return prompts
