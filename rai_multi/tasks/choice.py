"""Shared pieces of multiple-choice and generative-choice tasks (the bias suite)."""

from __future__ import annotations

import re
from typing import Any, Sequence

from rai_multi.records import Response

SETTINGS = ("mc", "generative")


def argmax_first(values: Sequence[float]) -> int:
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def mc_fields(response: Response) -> dict[str, Any]:
    """Chosen option by summed log-likelihood (``choice``) and per token (``choice_norm``)."""
    lls = response.loglikelihoods or ()
    summed = [ll.logprob for ll in lls]
    per_token = [ll.logprob / max(1, ll.n_tokens) for ll in lls]
    return {"logprobs": summed, "choice": argmax_first(summed), "choice_norm": argmax_first(per_token)}


def _norm(text: str) -> str:
    text = re.sub(r"[^\w\s]", " ", text.lower())
    text = re.sub(r"\b(the|a|an)\b", " ", text)
    return " ".join(text.split())


def match_option(output: str, options: Sequence[str], letters: str = "ABC") -> int | None:
    """Which option a free-text answer names: a leading option letter ("B", "(B)", "B.";
    a bare letter followed by words, as in "A grandson", is read as text),
    else the option whose text equals the answer, else the only option it contains or
    that contains it; None when it names none or several."""
    text = output.strip()
    # "B", "(B)", "B.", "B)" or "B:" -- but not the article in "A grandson did"
    letter = re.match(r"^(?:\(([A-Za-z])\)|([A-Za-z])(?:[\).:]|$))", text)
    chosen = letter and (letter.group(1) or letter.group(2)).upper()
    if chosen and chosen in letters[: len(options)]:
        return letters.index(chosen)
    answer = _norm(text.split("\n")[0])
    if not answer:
        return None
    normalized = [_norm(o) for o in options]
    exact = [i for i, o in enumerate(normalized) if o == answer]
    if len(exact) == 1:
        return exact[0]
    contained = [i for i, o in enumerate(normalized) if o and (re.search(rf"\b{re.escape(o)}\b", answer) or answer in o)]
    return contained[0] if len(contained) == 1 else None
