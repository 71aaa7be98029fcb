"""A Markdown table of chosen metrics from an audit's run directories: each model's value
with its 95% CI (from metrics.json, as the runs computed them) and the paired delta
(candidate - baseline) with a paired bootstrap CI over the items both models answered
(macro slices resampled within each language), for the README's base-vs-finetune figures.

A metric is named as task[/setting]:metric:field, where field is the per-item value in samples.jsonl
that the metric averages; ``extraction=phrase`` means "1 where the item's field equals the
value". Slices are metrics.json slice names.

    python benchmarks/audit_table.py runs/flan_finetune --baseline gemma3-270m \\
        --metric mgsm/native_cot:extraction_phrase_rate:extraction=phrase --metric tydiqa:f1:f1 \\
        --slices all,all_excl_en,tier=low,lang=sw
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rai_multi.results.compare import paired_macro_delta_ci, rows_in_slice  # noqa: E402
from rai_multi.results.runs import load_runs  # noqa: E402
from rai_multi.stats import paired_bootstrap_delta_ci  # noqa: E402
from rai_multi.store import find_run_dirs  # noqa: E402


def item_value(row: dict[str, Any], field: str) -> float | None:
    """The per-item number behind a metric: a field, or 1/0 for ``field=value``."""
    name, _, wanted = field.partition("=")
    if name not in row or row[name] is None:
        return None
    return float(str(row[name]) == wanted) if wanted else float(row[name])


def paired(base: Any, cand: Any, field: str, slice_name: str, seed: int,
           only: tuple[str, str] | None) -> tuple[float, tuple[float, float] | None, int]:
    def values(run: Any) -> dict[str, tuple[str, float]]:
        rows = rows_in_slice(run.samples(), slice_name)
        if only:
            rows = [r for r in rows if str(r.get(only[0])) == only[1]]
        return {r["id"]: (r.get("lang", ""), v) for r in rows if (v := item_value(r, field)) is not None}

    a, b = values(base), values(cand)
    shared = sorted(set(a) & set(b))
    if slice_name in ("all", "all_excl_en") or slice_name.startswith("tier="):
        groups: dict[str, tuple[list[float], list[float]]] = {}
        for i in shared:
            g = groups.setdefault(a[i][0], ([], []))
            g[0].append(a[i][1])
            g[1].append(b[i][1])
        point, ci = paired_macro_delta_ci({k: (np.array(x), np.array(y)) for k, (x, y) in groups.items()}, seed)
    else:
        point, ci = paired_bootstrap_delta_ci(np.array([a[i][1] for i in shared]), np.array([b[i][1] for i in shared]),
                                              seed)
    return point, ci, len(shared)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path)
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--metric", action="append", required=True,
                        help="task[/setting]:metric:field[:only_key=only_value], e.g. "
                             "bbq:accuracy_ambig:correct:condition=ambig")
    parser.add_argument("--slices", default="all")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    runs = load_runs(find_run_dirs([args.runs]))
    print("| task/setting | metric | slice | n | " + " | ".join(sorted({r.model for r in runs})) + " | paired delta [95% CI] |")
    print("|---|---|---|---|" + "---|" * len({r.model for r in runs}) + "---|")
    for spec in args.metric:
        name, metric, field, *rest = spec.split(":")
        task, _, setting = name.partition("/")
        only = tuple(rest[0].split("=", 1)) if rest else None
        chosen = [r for r in runs if r.task == task and setting in ("", r.setting)]
        by_model = {r.model: r for r in chosen}
        if len(by_model) != len(chosen):
            raise SystemExit(f"{name}: several runs per model ({', '.join(sorted({r.setting for r in chosen}))}); "
                             "name the setting as task/setting")
        base = by_model[args.baseline]
        cands = [m for m in sorted(by_model) if m != args.baseline]
        for slice_name in args.slices.split(","):
            cells, n = [], 0
            for model in sorted(by_model):
                m = by_model[model].metric(metric, slice_name)
                if m is None:
                    cells.append("–")
                    continue
                n = m["n"]
                ci = f" [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}]" if m.get("ci") else ""
                cells.append(f"{m['value']:.3f}{ci}")
            if all(c == "–" for c in cells):
                continue
            point, ci, shared = paired(base, by_model[cands[0]], field, slice_name, args.seed, only)
            delta = f"{point:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")
            print(f"| {task}/{by_model[args.baseline].setting} | {metric} | {slice_name} | {n} | " + " | ".join(cells) + f" | {delta} (n={shared}) |")


if __name__ == "__main__":
    main()
