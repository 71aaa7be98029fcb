"""Significance across a report: Holm by hand, the stratified paired bootstrap p-value
against the normal approximation of the same macro statistic, the minimum detectable effect
by hand, and the new intervals (WinoBias paired gap, toxic_rate_minus_neutral)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rai_multi.stats import holm, minimum_detectable_effect, stratified_paired_bootstrap_p
from rai_multi.tasks.identity_toxicity import IdentityToxicityTask
from rai_multi.tasks.winobias import WinobiasTask


def _normal_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))  # two-sided


def test_holm_by_hand():
    # sorted: .005 x4 = .02; .01 x3 = .03; .03 x2 = .06; .04 x1 = .04 -> running max .06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    got = holm([0.2, None, 0.01])  # family of 2: .01 x2 = .02; .2 x1 = .2
    assert got[1] is None and got[0] == pytest.approx(0.2) and got[2] == pytest.approx(0.02)
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1 (0.6 x 2 = 1.2)


def test_mde_by_hand():
    # one stratum, p = .5, n = 100: (1.959964 + 0.841621) * sqrt(2 * .25 / 100) = 2.801585 * 0.0707107
    assert minimum_detectable_effect({"en": [1] * 50 + [0] * 50}) == pytest.approx(0.198101, abs=1e-6)
    # macro of two: p=.5, n=100 and p=.1, n=50: sqrt((.005 + .0036) / 4) = 0.0463681
    groups = {"a": [1] * 50 + [0] * 50, "b": [1] * 5 + [0] * 45}
    assert minimum_detectable_effect(groups) == pytest.approx(2.801585 * 0.0463681, abs=1e-6)
    assert minimum_detectable_effect({}) is None


def test_bootstrap_p_single_stratum_matches_normal_approximation():
    """20 gains, 14 losses, 66 ties: mean .06, variance .34 - .0036 = .3364, se .058.
    The resampled mean lives on a lattice of step 1/100 and the test counts |T* - T| >= |T|
    inclusively, so the reference is the normal tail with a half-step continuity
    correction: z = (.06 - .005) / .058 = .948, p = .343."""
    diffs = [1.0] * 20 + [-1.0] * 14 + [0.0] * 66
    p = stratified_paired_bootstrap_p({"x": diffs}, seed=3, n_boot=4000)
    assert p == pytest.approx(_normal_p((0.06 - 0.005) / 0.058), abs=0.025)
    assert stratified_paired_bootstrap_p({"x": [0.0] * 30}, seed=1) == 1.0
    assert stratified_paired_bootstrap_p({"x": [1.0] * 30}, seed=1, n_boot=999) == pytest.approx(1 / 1000)
    assert stratified_paired_bootstrap_p({}, seed=1) is None


def test_bootstrap_p_is_of_the_macro_mean():
    """Language A: 9 gains in 60 (mean .15, var .1275); B: 10 gains, 13 losses in 60 (mean
    -.05, var .38083). Macro T = .05, se = sqrt((.1275 + .38083) / 60 / 4) = .046023;
    T* moves in steps of 1/120, continuity-corrected z = (.05 - 1/240) / .046023 = .996,
    p = .319. (Pooling the 120 items instead would test the micro mean.)"""
    a = [1.0] * 9 + [0.0] * 51
    b = [1.0] * 10 + [-1.0] * 13 + [0.0] * 37
    p = stratified_paired_bootstrap_p({"a": a, "b": b}, seed=7, n_boot=4000)
    assert p == pytest.approx(_normal_p((0.05 - 1 / 240) / 0.046023), abs=0.025)


def _winobias_rows(pattern):
    """pattern: (pro correct, anti correct, count) per kind of pair; all type 1."""
    rows, k = [], 0
    for pro, anti, count in pattern:
        for _ in range(count):
            k += 1
            rows.append({"stereotype": "pro", "type": 1, "correct": pro, "pair": f"type1/{k}"})
            rows.append({"stereotype": "anti", "type": 1, "correct": anti, "pair": f"type1/{k}"})
    return rows


def test_winobias_gap_ci_is_paired_over_minimal_pairs():
    """40 pairs: 10 right only when pro, 15 right both, 15 wrong both. Paired differences:
    Bernoulli(.25) over 40 pairs, se = sqrt(.1875 / 40) = .06847, 95% width ~ .268; the
    independent-samples width (pro .625, anti .375) would be ~ 2 x 1.96 x .1083 = .424."""
    rows = _winobias_rows([(1, 0, 10), (1, 1, 15), (0, 0, 15)])
    task = WinobiasTask("unused")
    gap = next(m for m in task.metrics(rows, seed=1) if m.name == "pro_anti_gap" and m.slice == "all")
    assert gap.value == pytest.approx(0.25)
    width = gap.ci[1] - gap.ci[0]
    assert width == pytest.approx(2 * 1.96 * 0.06847, rel=0.2)
    unpaired = [{k: v for k, v in r.items() if k != "pair"} for r in rows]
    wide = next(m for m in task.metrics(unpaired, seed=1) if m.name == "pro_anti_gap" and m.slice == "all")
    assert wide.ci[1] - wide.ci[0] == pytest.approx(2 * 1.96 * 0.1083, rel=0.2)


def test_toxic_rate_minus_neutral_has_a_bootstrap_ci():
    """Axis: 20 prompts at toxic share .5; neutral: 40 at .1 (values 0/1). Difference .4,
    se = sqrt(.25 / 20 + .09 / 40) = .12155, 95% width ~ .476."""
    rows = [{"axis": "age", "descriptor": f"d{k % 4}", "toxic": float(k % 2)} for k in range(20)]
    rows += [{"axis": "(none)", "descriptor": "", "toxic": float(k < 4)} for k in range(40)]
    from rai_multi.data.holistic_bias import NEUTRAL

    for r in rows:
        if r["axis"] == "(none)":
            r["axis"] = NEUTRAL
    task = IdentityToxicityTask(scorer=None)  # type: ignore[arg-type]
    m = next(m for m in task.metrics(rows, seed=2) if m.name == "toxic_rate_minus_neutral" and m.slice == "axis=age")
    assert m.value == pytest.approx(0.4)
    assert m.ci[0] < 0.4 < m.ci[1]
    assert m.ci[1] - m.ci[0] == pytest.approx(2 * 1.96 * 0.12155, rel=0.15)
    assert np.isfinite(m.ci).all()
