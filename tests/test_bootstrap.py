"""Bootstrap intervals: seeded, and close to the textbook normal interval where it applies."""

from __future__ import annotations

import math

import numpy as np

from rai_multi.stats import bootstrap_mean_ci, macro_bootstrap_ci, macro_mean


def test_constant_sample_has_degenerate_interval():
    assert bootstrap_mean_ci([1.0] * 50, seed=1) == (1.0, 1.0)
    assert bootstrap_mean_ci([], seed=1) is None


def test_bernoulli_interval_matches_normal_approximation():
    values = [1.0] * 200 + [0.0] * 200  # p = 0.5, n = 400
    lo, hi = bootstrap_mean_ci(values, seed=7, n_boot=4000)
    half_width = 1.96 * math.sqrt(0.25 / 400)  # 0.049
    assert abs((hi - lo) / 2 - half_width) < 0.006
    assert lo < 0.5 < hi


def test_seeded_and_reproducible():
    values = np.random.default_rng(0).random(100)
    assert bootstrap_mean_ci(values, seed=3) == bootstrap_mean_ci(values, seed=3)
    assert bootstrap_mean_ci(values, seed=3) != bootstrap_mean_ci(values, seed=4)


def test_macro_average_weights_languages_equally():
    groups = {"a": [1.0] * 10, "b": [0.0] * 1000}
    assert macro_mean(groups) == 0.5
    lo, hi = macro_bootstrap_ci(groups, seed=1)
    assert lo == hi == 0.5  # both groups constant: no sampling variation


def test_language_slices_are_macro_averages_not_pooled_means():
    """Unequal language sizes tell a macro-average from a pooled (micro) one."""
    from rai_multi.aggregate import by_language

    rows = (
        [{"lang": "en", "v": 1.0}] * 10
        + [{"lang": "bn", "v": 0.0}] * 2
        + [{"lang": "sw", "v": v} for v in (1.0, 0.0, 0.0, 0.0)]
    )
    got = {m.slice: m for m in by_language("acc", rows, lambda r: r["v"], seed=1)}
    assert got["lang=sw"].value == 0.25 and got["lang=sw"].n == 4
    assert got["tier=low"].value == 0.125  # (0 + 0.25) / 2; pooled would be 1/6
    assert got["all_excl_en"].value == 0.125 and got["all_excl_en"].n == 6
    assert abs(got["all"].value - 1.25 / 3) < 1e-12  # (1 + 0 + 0.25) / 3; pooled would be 11/16
    assert got["tier=en"].value == 1.0 and got["tier=en"].ci == (1.0, 1.0)
    lo, hi = got["tier=low"].ci
    assert lo <= 0.125 <= hi
