"""The explicit table of benchmarks: one line per benchmark module, no discovery.

Everything that needs to know about benchmarks (CLI commands, suite validation, the audit,
report, gate, decontamination, sample data) iterates this table or looks a spec up by the
run's task name. Adding a benchmark is its data module, its task module (ending in a
``SPEC``), its language configs, its tests, and one line here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from rai_multi.errors import ConfigError
from rai_multi.tasks import (
    bbq, crows_pairs, identity_toxicity, mgsm, toxicity, toxicity_cls, tydiqa, winobias, winogender, xcopa,
)
from rai_multi.tasks.spec import BenchmarkSpec, parse_options

SPECS: tuple[BenchmarkSpec, ...] = (
    mgsm.SPEC,
    tydiqa.SPEC,
    toxicity.SPEC,
    identity_toxicity.SPEC,
    toxicity_cls.SPEC,
    winogender.SPEC,
    winobias.SPEC,
    bbq.SPEC,
    crows_pairs.SPEC,
    xcopa.SPEC,
)
BY_NAME: dict[str, BenchmarkSpec] = {s.name: s for s in SPECS}


@dataclass(frozen=True)
class Group:
    """Several benchmarks run as one suite task / CLI command (``bias``): its options are
    ``benchmarks`` plus any member option, handed to each member that has it."""

    name: str
    members: tuple[str, ...]
    summary: str

    def member_options(self, raw: Mapping[str, Any], where: str) -> list[tuple[BenchmarkSpec, Any]]:
        chosen = raw.get("benchmarks", list(self.members))
        if isinstance(chosen, str):
            chosen = [c.strip() for c in chosen.split(",") if c.strip()]
        if not isinstance(chosen, (list, tuple)) or not chosen or not all(isinstance(c, str) for c in chosen):
            raise ConfigError(f"{where}: 'benchmarks' must be a non-empty list of: {', '.join(self.members)}")
        unknown = [c for c in chosen if c not in self.members]
        if unknown:
            raise ConfigError(f"{where}: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(self.members)}")
        rest = {k: v for k, v in raw.items() if k != "benchmarks"}
        known = set().union(*({f.name for f in dataclasses.fields(BY_NAME[m].options)} for m in self.members))
        unknown_keys = sorted(set(rest) - known)
        if unknown_keys:
            raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown_keys)}; allowed: benchmarks, "
                              f"{', '.join(sorted(known))}")
        out = []
        for member in chosen:
            spec = BY_NAME[member]
            fields = {f.name for f in dataclasses.fields(spec.options)}
            mine = {k: v for k, v in rest.items() if k in fields}
            if member == "crows_pairs":
                mine.pop("setting", None)  # likelihoods only: a group-wide setting does not apply
            out.append((spec, parse_options(spec.options, mine, f"{where} ({member})")))
        return out


GROUPS: dict[str, Group] = {
    "bias": Group("bias", ("winogender", "winobias", "bbq", "crows_pairs"),
                  "Winogender, WinoBias, BBQ and CrowS-Pairs (authors' metrics), one run directory each."),
}


def spec_for(task_name: str) -> BenchmarkSpec | None:
    """The spec of a run's task (None for a task this version does not know)."""
    return BY_NAME.get(task_name)


def suite_types() -> list[str]:
    return [*BY_NAME, *GROUPS]


def resolve_task_table(kind: str, raw: Mapping[str, Any], where: str) -> list[tuple[BenchmarkSpec, Any]]:
    """A suite ``[[task]]`` (or CLI call) of ``kind`` as (spec, checked options) pairs."""
    if kind in GROUPS:
        return GROUPS[kind].member_options(raw, where)
    if kind not in BY_NAME:
        raise ConfigError(f"{where}: 'type' must be one of {', '.join(suite_types())}; got {kind!r}")
    spec = BY_NAME[kind]
    return [(spec, parse_options(spec.options, raw, where))]
