"""Multiple-choice scoring: summed, per-byte and per-token choices worked out by hand, ties
broken at random with the seed, and whole-word answer matching."""

from __future__ import annotations

import json

from rai_multi.models.scripted import ScriptedAdapter
from rai_multi.records import Loglikelihood, Response
from rai_multi.runner import RunOptions, evaluate
from rai_multi.tasks.bbq import BbqTask
from rai_multi.tasks.choice import argmax_random_tie, match_option, mc_fields, option_bytes
from rai_multi.tasks.winobias import WinobiasTask


def _metric(run, name, slice_name="all"):
    doc = json.loads((run / "metrics.json").read_text())
    return next(m for m in doc["metrics"] if m["name"] == name and m["slice"] == slice_name)


def test_three_scorings_by_hand():
    """logprobs -6, -4, -9.5 over 3, 1, 5 tokens and 15, 7, 15 bytes:
    summed -> option 1 (-4); per token -2, -4, -1.9 -> option 2; per byte -0.4, -0.571,
    -0.633 -> option 0."""
    response = Response(loglikelihoods=(Loglikelihood(-6.0, 3), Loglikelihood(-4.0, 1), Loglikelihood(-9.5, 5)))
    fields = mc_fields(response, (" Not enough info", " the man", " the grandmother"), "k")
    assert (fields["choice"], fields["choice_per_token"], fields["choice_norm"]) == (1, 2, 0)
    assert fields["n_tokens"] == [3, 1, 5]
    assert option_bytes(" Can't be determined") == 19
    assert option_bytes(" 東京") == 6  # 3 bytes per CJK character


def test_ties_are_drawn_not_first():
    picks = [argmax_random_tie([-1.0, -1.0], f"1234|item{i}") for i in range(200)]
    assert 70 < sum(picks) < 130  # about half pick option 1 (binomial sd ~7)
    assert argmax_random_tie([-1.0, -1.0], "same") == argmax_random_tie([-1.0, -1.0], "same")
    assert argmax_random_tie([-3.0, -1.0, -2.0], "x") == 1


def test_winobias_tied_model_is_at_chance(data_dir, tmp_path):
    """WinoBias' gold is option 0: a model scoring both options equally got 100% when ties
    went to option 0. Drawn ties give about 50%."""
    tied = ScriptedAdapter("tied", loglikelihood_fn=lambda r, i: [Loglikelihood(-2.0, 2)] * len(r.continuations))
    run = evaluate(WinobiasTask(data_dir, limit=50), tied, RunOptions(tmp_path, "tied", progress=False))
    accuracy = _metric(run, "accuracy")
    assert accuracy["n"] == 200 and 0.4 < accuracy["value"] < 0.6


def test_bbq_reports_length_normalised_choices(data_dir, tmp_path):
    """A model whose option log-likelihood is -(1 + 0.5 x bytes): summed scoring picks the
    shortest answer, per-byte scoring (-0.5 - 1/bytes) the longest; rows checked against
    the answers' lengths computed here."""
    def ll(request, sample_id):
        return [Loglikelihood(-(1.0 + 0.5 * len(c[1:].encode())), 1) for c in request.continuations]

    task = BbqTask(data_dir, categories=["Age"], limit=40)
    run = evaluate(task, ScriptedAdapter("len", loglikelihood_fn=ll), RunOptions(tmp_path, "len", progress=False))
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    checked = 0
    for r in rows:
        lengths = [len(a.encode()) for a in r["answers"]]
        if lengths.count(min(lengths)) == 1 and lengths.count(max(lengths)) == 1:
            assert r["choice"] == lengths.index(min(lengths))
            assert r["choice_norm"] == lengths.index(max(lengths))
            checked += 1
    assert checked >= 15
    ambig = [r for r in rows if r["condition"] == "ambig"]
    assert _metric(run, "accuracy_ambig")["value"] == sum(r["correct"] for r in ambig) / len(ambig)
    expected_norm = sum(int(r["choice_norm"] == r["label"]) for r in ambig) / len(ambig)
    assert _metric(run, "accuracy_ambig_norm")["value"] == expected_norm
    assert _metric(run, "bias_score_ambig_norm")["n"] >= 0
    assert json.loads((run / "manifest.json").read_text())["config"]["mc_scoring"]["choice"].endswith("headline)")


def test_answer_matching_uses_whole_words():
    assert match_option("man", ["the woman", "the doctor"], letters="") is None
    assert match_option("The woman", ["the man", "the doctor"], letters="") is None
    assert match_option("the man", ["the woman", "the man"], letters="") == 1
    assert match_option("The doctor did.", ["the woman", "the doctor"], letters="") == 1
