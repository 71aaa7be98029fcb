"""--limit as a seeded stratified sample: the rule on constructed strata, and on the real
benchmark files (occupations, templates, bias types, minimal pairs, parallel languages)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from rai_multi.data.bbq import load_bbq
from rai_multi.errors import ConfigError
from rai_multi.models.scripted import ScriptedAdapter
from rai_multi.records import Loglikelihood
from rai_multi.runner import RunOptions, evaluate
from rai_multi.sampling import limit_items, stratified_sample
from rai_multi.tasks.bbq import BbqTask
from rai_multi.tasks.crows_pairs import CrowsPairsTask
from rai_multi.tasks.mgsm import MgsmTask
from rai_multi.tasks.winobias import WinobiasTask
from rai_multi.tasks.winogender import WinogenderTask

# items (stratum, position): stratum A has 5 items, B 1, C 2
ITEMS = [("A", 0), ("A", 1), ("B", 2), ("A", 3), ("C", 4), ("A", 5), ("C", 6), ("A", 7)]


def test_round_robin_counts_per_stratum():
    """limit 4 over strata of 5, 1 and 2: one from each (3), then a second from A or C;
    limit 7: B runs out after one, C after two, A takes the rest (7 - 1 - 2 = 4)."""
    for seed in range(20):
        four = Counter(s for s, _ in stratified_sample(ITEMS, lambda x: x[0], 4, seed))
        assert four["B"] == 1 and sorted([four["A"], four["C"]]) == [1, 2]
        seven = Counter(s for s, _ in stratified_sample(ITEMS, lambda x: x[0], 7, seed))
        assert seven == {"A": 4, "B": 1, "C": 2}


def test_sample_keeps_file_order_and_is_seeded():
    got = stratified_sample(ITEMS, lambda x: x[0], 5, 7)
    assert [p for _, p in got] == sorted(p for _, p in got)
    assert got == stratified_sample(ITEMS, lambda x: x[0], 5, 7)
    samples = {tuple(stratified_sample(ITEMS, lambda x: x[0], 4, seed)) for seed in range(20)}
    assert len(samples) > 1  # the seed matters
    assert stratified_sample(ITEMS, lambda x: x[0], None, 1) == ITEMS
    assert stratified_sample(ITEMS, lambda x: x[0], 100, 1) == ITEMS


def test_head_only_by_name():
    assert limit_items(ITEMS, lambda x: x[0], 3, 0, "head") == ITEMS[:3]
    with pytest.raises(ConfigError):
        limit_items(ITEMS, lambda x: x[0], 3, 0, "first")
    with pytest.raises(ConfigError):
        WinogenderTask("x", limit_rule="top")  # type: ignore[arg-type]


def test_winogender_limit_covers_occupations(data_dir):
    """60 occupations x 12 sentences: a limit of 60 takes each occupation once; the head
    of the file is 5 occupations."""
    strat = WinogenderTask(data_dir, limit=60).build_samples()
    assert Counter(s.meta["occupation"] for s in strat).most_common(1)[0][1] == 1
    assert len({s.meta["occupation"] for s in strat}) == 60
    head = WinogenderTask(data_dir, limit=60, limit_rule="head").build_samples()
    assert len({s.meta["occupation"] for s in head}) == 5
    again = WinogenderTask(data_dir, limit=60).build_samples()
    assert [s.id for s in again] == [s.id for s in strat]
    other = WinogenderTask(data_dir, limit=60, seed=99).build_samples()
    assert [s.id for s in other] != [s.id for s in strat]


def test_bbq_limit_spreads_over_templates_and_conditions(data_dir):
    """Age has 25 templates x 2 conditions x 2 polarities = 100 strata: 40 items are 40
    different strata; the first 8 items of the file are one template."""
    samples = BbqTask(data_dir, categories=["Age"], limit=40).build_samples()
    items = {i.id: i for i in load_bbq(data_dir, ["Age"])}
    strata = Counter((items[s.id].question_index, s.meta["condition"], s.meta["polarity"]) for s in samples)
    assert len(samples) == 40 and len(strata) == 40
    head = BbqTask(data_dir, categories=["Age"], limit=8, limit_rule="head").build_samples()
    assert len({items[s.id].question_index for s in head}) == 1


def test_bbq_default_reads_full_bbq_only(data_dir):
    task = BbqTask(data_dir, limit=3)
    categories = {s.meta["category"] for s in task.build_samples()}
    assert categories == {"Age", "Disability_status", "Nationality", "Physical_appearance", "Religion",
                          "Sexual_orientation"}
    assert set(task.config()["category_sources"].values()) == {"bbq"}
    named = BbqTask(data_dir, categories=["SES", "Age"], limit=3)
    assert {s.id.split("/")[0] for s in named.build_samples()} == {"bbq", "bbq_lite"}
    assert named.config()["category_sources"] == {"SES": "bbq_lite", "Age": "bbq"}


def test_crows_pairs_two_per_bias_type(data_dir):
    samples = CrowsPairsTask(data_dir, limit=18).build_samples()
    assert Counter(s.meta["bias_type"] for s in samples) == {b: 2 for b in {s.meta["bias_type"] for s in samples}}
    assert len({s.meta["bias_type"] for s in samples}) == 9


def test_winobias_keeps_minimal_pairs(data_dir):
    samples = WinobiasTask(data_dir, limit=10).build_samples()
    assert len(samples) == 4 * 10
    by_pair: dict = {}
    for s in samples:
        by_pair.setdefault(s.meta["pair"], []).append(s)
    assert len(by_pair) == 20 and all(sorted(x.meta["stereotype"] for x in v) == ["anti", "pro"]
                                      for v in by_pair.values())
    # a pair is one sentence with the pronoun swapped: same options, same referent
    assert all(v[0].meta["options"] == v[1].meta["options"] for v in by_pair.values())


def test_mgsm_same_questions_in_every_language(data_dir):
    samples = MgsmTask(["en", "ja", "sw"], data_dir, limit=12).build_samples()
    numbers = {lang: [s.id.rsplit("/", 1)[1] for s in samples if s.lang == lang] for lang in ("en", "ja", "sw")}
    assert numbers["en"] == numbers["ja"] == numbers["sw"] and len(numbers["en"]) == 12
    assert numbers["en"] != [str(i) for i in range(12)]


def test_manifest_records_rule_and_ids(data_dir, tmp_path):
    task = WinogenderTask(data_dir, setting="mc", limit=7, seed=5)
    model = ScriptedAdapter("m", loglikelihood_fn=lambda r, i: [Loglikelihood(-1.0, 1), Loglikelihood(-2.0, 1)])
    run = evaluate(task, model, RunOptions(tmp_path, "m", seed=5, progress=False))
    manifest = json.loads((run / "manifest.json").read_text())
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    sample = manifest["config"]["sample"]
    assert sample["limit_rule"] == "stratified" and sample["strata"] == "occupation"
    assert sample["sampled_ids"] == [r["id"] for r in rows] and len(rows) == 7
