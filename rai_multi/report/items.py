"""Every item of every run, for the report's item explorer and its "what changed" view.

The report embeds, per (task, setting), one record per item: the item (id, language, tier,
the end of its prompt, scored options, gold) and, per model, what the model did (outputs
with their toxicity scores, option log-likelihoods, the answer the task read from it and
how, the headline field). Each candidate's item gets a status against the baseline:

- ``gained`` / ``lost``: the headline field (``spec.headline.field``) moved in the
  metric's better / worse direction, on a row the headline pairs on (``headline.only``);
- ``changed``: the field or the answer differs but neither way is better (a reference-
  valued metric such as CrowS-Pairs' 50, an AUC's per-item score, a different wrong answer);
- ``same``; ``""`` where the item is missing from a run or the runs are not comparable
  (they differ in something besides the model, so their items are not paired at all).

The record keys follow the samples.jsonl conventions every task writes (``outputs``,
``loglikelihoods``, ``continuations``, ``toxicity``, ``gold``) plus the answer fields
tasks use; any other field of a row is kept as text, under ``meta`` (the item) when every
run has the same value, else under each model's ``more``, so nothing a task wrote is hidden.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

from rai_multi.results.runs import Run, comparability_issues
from rai_multi.tasks.table import spec_for

# Where tasks put the answer they read from the model's response, most specific first.
ANSWER_FIELDS = ("extracted", "prediction", "choice")
# Fields shown in their own place (not repeated under meta/more).
SHOWN = {"id", "lang", "tier", "prompt", "prompt_hash", "continuations", "outputs", "loglikelihoods", "toxicity",
         "gold", "logprobs", "extraction", *ANSWER_FIELDS}
STATUS_CODES = {"gained": "g", "lost": "l", "changed": "c", "same": "s"}


def _text(value: Any) -> str:
    """A field value as one line of text (lists joined, numbers as written)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        return " | ".join(_text(v) for v in value)
    return json.dumps(value, ensure_ascii=False)


def _num(value: Any) -> Any:
    """Numbers JSON can carry (NaN and infinities become None); other values as they are."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _answer(row: dict[str, Any]) -> tuple[Any, str]:
    """(the answer the task read, how it was read), from the row alone."""
    for name in ANSWER_FIELDS:
        if name in row:
            value = row[name]
            if row.get("extraction"):
                how = str(row["extraction"])
            elif name == "choice" and "loglikelihoods" in row:
                how = "highest summed log-likelihood"
            elif name == "choice":
                how = "option named in the output"
            else:
                how = name
            return value, how
    return None, ""


def _model_view(row: dict[str, Any], field: str | None, own: Sequence[str]) -> dict[str, Any]:
    answer, how = _answer(row)
    view: dict[str, Any] = {}
    if "outputs" in row:
        view["out"] = list(row["outputs"])
    if isinstance(row.get("toxicity"), list):
        view["tox"] = [_num(t) for t in row["toxicity"]]
    if "loglikelihoods" in row:
        view["ll"] = [[_num(x[0]), x[1]] for x in row["loglikelihoods"]]
    if answer is not None or how:
        view["ans"], view["how"] = _num(answer), how
    if field is not None and field in row:
        view["v"] = _num(row[field])
    more = {k: _text(row[k]) for k in own if k in row}
    if more:
        view["more"] = more
    return view


def item_status(task: str, base: dict[str, Any] | None, cand: dict[str, Any] | None) -> str:
    """``gained``, ``lost``, ``changed``, ``same``, or ``""`` (not both there)."""
    if base is None or cand is None:
        return ""
    spec = spec_for(task)
    headline = spec.headline if spec else None
    field = headline.field if headline else None
    bv, cv = (base.get(field), cand.get(field)) if field else (None, None)
    changed = bv != cv or _answer(base)[0] != _answer(cand)[0]
    if not changed:
        return "same"
    if (spec and headline and field and headline.statistic == "mean" and bv is not None and cv is not None
            and (headline.only is None or str(base.get(headline.only[0])) == headline.only[1])):
        info = spec.metric_info(headline.metric)
        if info.direction in ("higher", "lower"):
            better = info.better(float(bv), float(cv))
            if better is not None:
                return "gained" if better else "lost"
    return "changed"


def _gold(row: dict[str, Any]) -> tuple[str, int | None]:
    """Gold as text, and the gold option's index for choice tasks."""
    gold = row.get("gold", row.get("golds", row.get("label")))
    options = row.get("continuations")
    if options and isinstance(gold, int) and not isinstance(gold, bool) and 0 <= gold < len(options):
        return f"option {gold}: {options[gold]}", gold
    return _text(gold), None


def task_items(task: str, setting: str, by_model: dict[str, Run], baseline: str) -> dict[str, Any]:
    """The explorer record of one (task, setting): items, per-model views, statuses and
    the per-language change counts."""
    spec = spec_for(task)
    headline = spec.headline if spec else None
    field = headline.field if headline else None
    models = sorted(by_model, key=lambda m: (m != baseline, m))
    has_base = baseline in by_model
    candidates = [m for m in models if m != baseline] if has_base else []
    issues = {c: comparability_issues(by_model[baseline], by_model[c]) for c in candidates}
    rows = {m: {r["id"]: r for r in by_model[m].samples()} for m in models}
    order = list(dict.fromkeys(i for m in models for i in rows[m]))
    direction = spec.metric_info(headline.metric).direction if spec and headline else None
    items = []
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for sid in order:
        first = next(rows[m][sid] for m in models if sid in rows[m])
        base_row = rows[baseline].get(sid) if has_base else None
        gold, gold_index = _gold(first)
        item: dict[str, Any] = {"id": sid, "lang": first.get("lang", ""), "tier": first.get("tier", ""),
                                "prompt": first.get("prompt", ""), "gold": gold}
        if first.get("continuations"):
            item["opts"] = first["continuations"]
        if gold_index is not None:
            item["gi"] = gold_index
        # fields equal in every run describe the item; the others are each model's own
        present = [rows[m][sid] for m in models if sid in rows[m]]
        extra = [k for k in dict.fromkeys(k for r in present for k in r) if k not in SHOWN and k != field]
        shared = [k for k in extra if all(k in r and r[k] == first[k] for r in present)]
        own = [k for k in extra if k not in shared]
        if shared:
            item["meta"] = {k: _text(first[k]) for k in shared}
        item["m"] = [_model_view(rows[m][sid], field, own) if sid in rows[m] else None for m in models]
        statuses = []
        for cand in candidates:
            status = "" if issues[cand] else item_status(task, base_row, rows[cand].get(sid))
            statuses.append(STATUS_CODES.get(status, ""))
            if status:
                for lang in (item["lang"], "all"):
                    tally = counts.setdefault(lang, {}).setdefault(cand, {"gained": 0, "lost": 0, "changed": 0, "n": 0})
                    tally["n"] += 1
                    if status != "same":
                        tally["changed"] += 1
                    if status in ("gained", "lost"):
                        tally[status] += 1
        item["st"] = statuses
        items.append(item)
    langs = sorted({i["lang"] for i in items})
    return {
        "key": f"{task}/{setting}", "task": task, "setting": setting, "field": field,
        "metric": headline.metric if headline else None, "direction": direction,
        "paired": bool(headline and headline.statistic == "mean" and direction in ("higher", "lower")),
        "only": list(headline.only) if headline and headline.only else None,
        "baseline": baseline if has_base else None, "models": models, "candidates": candidates,
        "issues": {c: "; ".join(v) for c, v in issues.items() if v},
        "langs": langs, "tiers": sorted({i["tier"] for i in items if i["tier"]}),
        "starts": by_model[models[0]].manifest.get("shared_prompt_starts") or {},
        "changes": [{"lang": lang, "counts": {c: counts[lang].get(c) for c in candidates}}
                    for lang in [*langs, "all"] if lang in counts],
        "items": items,
    }


def explorer_data(groups: dict[tuple[str, str], dict[str, Run]], baseline: str) -> list[dict[str, Any]]:
    """One :func:`task_items` record per (task, setting), in the report's order."""
    return [task_items(task, setting, by_model, baseline) for (task, setting), by_model in sorted(groups.items())]


_SCRIPT_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                                  "\u2029": "\\u2029"})


def script_json(obj: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">``: ``<``, ``>``, ``&``
    and the two JavaScript line separators are written as ``\\u`` escapes, so no text in
    the data (a model's ``</script>``, ``<!--``) can end the element or be read as markup.
    These characters only occur inside JSON strings, where the escapes mean the same."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.translate(_SCRIPT_ESCAPES)


def items_of(records: Sequence[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return next(r["items"] for r in records if r["key"] == key)
