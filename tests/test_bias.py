"""Bias suite: real row counts, scripted models with known preferences giving hand-computed
metrics, the pure metric functions on constructed rows, CLI end to end, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rai_multi.cli.main import app
from rai_multi.data.bbq import load_bbq
from rai_multi.data.crows_pairs import load_crows_pairs
from rai_multi.data.winobias import load_winobias, read_occupations
from rai_multi.data.winogender import load_winogender
from rai_multi.errors import ConfigError, DataError
from rai_multi.models.scripted import ScriptedAdapter
from rai_multi.records import Loglikelihood
from rai_multi.runner import RunOptions, evaluate
from rai_multi.scoring import bias
from rai_multi.store import RunDir
from rai_multi.tasks.bbq import BbqTask
from rai_multi.tasks.choice import match_option
from rai_multi.tasks.crows_pairs import CrowsPairsTask
from rai_multi.tasks.winobias import WinobiasTask
from rai_multi.tasks.winogender import WinogenderTask

runner = CliRunner()


def metric(run: Path, name: str, slice_name: str) -> dict:
    doc = json.loads((run / "metrics.json").read_text())
    return next(m for m in doc["metrics"] if m["name"] == name and m["slice"] == slice_name)


def picker(choose):
    """A scripted model whose log-likelihood is 0 for the chosen option and -5 elsewhere."""
    def loglikelihood(request, sample_id):
        k = choose(request, sample_id)
        return [Loglikelihood(0.0 if i == k else -5.0, 2) for i in range(len(request.continuations))]
    return ScriptedAdapter("picker", loglikelihood_fn=loglikelihood)


# ---------------------------------------------------------------- counts
def test_real_row_counts(data_dir):
    wg = load_winogender(data_dir)
    assert len(wg) == 720 and len({i.template for i in wg}) == 120
    assert len(load_crows_pairs(data_dir)) == 1508
    wb = load_winobias(data_dir)
    assert len(wb) == 8 * 396
    for name in {i.id.split("/")[1] for i in wb}:
        assert sum(1 for i in wb if i.id.split("/")[1] == name) == 396
    counts = {}
    for item in load_bbq(data_dir):
        counts[item.category] = counts.get(item.category, 0) + 1
    assert counts == {"Age": 3680, "Disability_status": 1556, "Nationality": 3080, "Physical_appearance": 1576,
                      "Religion": 1200, "Sexual_orientation": 864, "Gender_identity": 3344, "Race_ethnicity": 4000,
                      "SES": 1984}


# ---------------------------------------------------------------- BBQ
def test_bbq_bias_score_on_constructed_rows():
    rows = [
        {"condition": "disambig", "biased": True, "correct": 0},   # neg question, target picked
        {"condition": "disambig", "biased": False, "correct": 1},
        {"condition": "disambig", "biased": True, "correct": 0},   # nonneg question, non-target picked
        {"condition": "disambig", "biased": None, "correct": 0},   # UNKNOWN picked: not counted
        {"condition": "ambig", "biased": True, "correct": 0},
        {"condition": "ambig", "biased": None, "correct": 1},
    ]
    assert bias.bbq_bias_disambig(rows) == pytest.approx(2 * 2 / 3 - 1)      # 1/3
    assert bias.bbq_bias_ambig(rows) == pytest.approx((1 - 1 / 2) * (2 * 1 / 1 - 1))  # 0.5
    assert bias.bbq_is_biased(pred=0, target=0, unknown=2, polarity="neg") is True
    assert bias.bbq_is_biased(pred=1, target=0, unknown=2, polarity="nonneg") is True
    assert bias.bbq_is_biased(pred=0, target=0, unknown=2, polarity="nonneg") is False
    assert bias.bbq_is_biased(pred=2, target=0, unknown=2, polarity="neg") is None


def test_bbq_target_from_answer_info():
    info = (("grandfather", "old"), ("grandson", "nonOld"), ("Can't be determined", "unknown"))
    assert bias.bbq_target_index(info, ["old"]) == 0
    assert bias.bbq_target_index((("Unknown", "unknown"), ("Sam", "M-Asian"), ("Miguel", "M-Latino")),
                                 ["Hispanic", "Latino"]) == 2
    assert bias.bbq_target_index((("man", "man"), ("woman", "woman"), ("?", "unknown")), ["F"]) == 1
    assert bias.bbq_target_index((("tattoos", "negDress"), ("?", "unknown"), ("tattoos", "negDress")), ["negDress"]) is None


def test_bbq_always_biased_model_scores_one(data_dir, tmp_path):
    task = BbqTask(data_dir, categories=["Age", "Religion"], limit=200)
    by_id = {s.id: s.meta for s in task.build_samples()}

    def choose(request, sample_id):
        meta = by_id[sample_id]
        if meta["polarity"] == "neg":
            return meta["target"]
        return next(i for i in range(3) if i not in (meta["target"], meta["unknown"]))

    run = evaluate(task, picker(choose), RunOptions(tmp_path, "biased"))
    assert metric(run, "bias_score_disambig", "all")["value"] == 1.0
    assert metric(run, "accuracy_ambig", "all")["value"] == 0.0     # never says UNKNOWN
    assert metric(run, "bias_score_ambig", "all")["value"] == 1.0   # (1 - 0) * 1
    assert metric(run, "bias_score_disambig", "category=Age")["value"] == 1.0

    def unknown(request, sample_id):
        return by_id[sample_id]["unknown"]

    run = evaluate(task, picker(unknown), RunOptions(tmp_path, "unknown"))
    assert metric(run, "accuracy_ambig", "all")["value"] == 1.0
    assert not [m for m in json.loads((run / "metrics.json").read_text())["metrics"] if m["name"].startswith("bias_score")]


# ---------------------------------------------------------------- CrowS-Pairs
def test_crows_prefers_more_scores_100_and_less_scores_0(data_dir, tmp_path):
    task = CrowsPairsTask(data_dir)
    run = evaluate(task, picker(lambda r, i: 0), RunOptions(tmp_path, "more"))
    assert metric(run, "crows_score", "all") == {"name": "crows_score", "slice": "all", "value": 100.0,
                                                  "ci": [100.0, 100.0], "n": 1508}
    assert metric(run, "crows_score", "direction=antistereo")["n"] == 218
    assert metric(run, "mean_loglik_diff", "all")["value"] == 5.0
    run = evaluate(task, picker(lambda r, i: 1), RunOptions(tmp_path, "less"))
    assert metric(run, "crows_score", "all")["value"] == 0.0
    assert metric(run, "crows_score", "bias_type=gender")["value"] == 0.0


def test_crows_ties_are_neutral():
    rows = [{"prefers_more": 1}, {"prefers_more": None}, {"prefers_more": 0}, {"prefers_more": 1}]
    assert bias.crows_score(rows) == 50.0
    assert bias.crows_prefers_more(-3.0, -3.0) is None


# ---------------------------------------------------------------- Winogender
def test_winogender_stereotypical_model_fails_every_gotcha(data_dir, tmp_path):
    items = {i.id: i for i in load_winogender(data_dir)}

    def stereotyped(request, sample_id):
        item = items[sample_id]
        female_majority = item.bls_pct_female >= 50
        if item.gender == "neutral":
            return ["the " + item.occupation]
        # resolve to the occupation when its majority gender matches the pronoun
        matches = (item.gender == "female") == female_majority
        return [("The " + item.occupation) if matches else ("the " + item.participant if item.participant != "someone" else "someone")]

    run = evaluate(WinogenderTask(data_dir), ScriptedAdapter("stereo", generate_fn=stereotyped), RunOptions(tmp_path, "s"))
    assert metric(run, "accuracy", "gotcha=yes")["value"] == 0.0
    assert metric(run, "accuracy", "gotcha=no")["value"] == 1.0
    assert metric(run, "accuracy", "gotcha=yes")["n"] == 240 and metric(run, "accuracy", "gotcha=no")["n"] == 240
    # neutral pronoun: always the occupation -> right exactly on the 120 answer-0 sentences
    assert metric(run, "accuracy", "gender=neutral")["value"] == 0.5
    assert metric(run, "accuracy", "all")["value"] == pytest.approx((240 + 120) / 720)


def test_winogender_few_shot_never_uses_the_same_template(data_dir):
    samples = WinogenderTask(data_dir, shots=3, limit=30).build_samples()
    for s in samples:
        occupation = s.meta["occupation"]
        shots = s.request.prompt.split("\n\n")[:-1]
        assert len(shots) == 3 and not any(f"the {occupation} " in x.lower().split("\n")[0] for x in shots)


# ---------------------------------------------------------------- WinoBias
def test_winobias_gender_stereotyped_model_gap_is_one(data_dir, tmp_path):
    male = {line.strip().lower() for line in (data_dir / "winobias" / "male_occupations.txt").read_text().splitlines() if line.strip()}
    items = {i.id: i for i in load_winobias(data_dir, "test")}

    def choose(request, sample_id):
        item = items[sample_id]
        is_male_pronoun = item.pronoun.lower() in ("he", "him", "his", "himself")
        referent_male = item.referent in male
        return 0 if referent_male == is_male_pronoun else 1

    run = evaluate(WinobiasTask(data_dir), picker(choose), RunOptions(tmp_path, "stereo"))
    assert metric(run, "accuracy", "stereotype=pro")["value"] == 1.0
    assert metric(run, "accuracy", "stereotype=anti")["value"] == 0.0
    assert metric(run, "pro_anti_gap", "type=1")["value"] == 1.0
    assert metric(run, "pro_anti_gap", "all")["n"] == 4 * 396


def test_match_option():
    options = ["The grandfather", "The grandson", "Can't be determined"]
    assert match_option("B. The grandson", options) == 1
    assert match_option("(C)", options) == 2
    assert match_option("the grandfather.", options) == 0
    assert match_option("I think it was the grandson who did it", options) == 1
    assert match_option("nobody knows", options) is None


# ---------------------------------------------------------------- CLI and bad input
@pytest.mark.parametrize("fixture", ["tiny_seq2seq", "tiny_causal"])
def test_eval_bias_end_to_end_and_cached(fixture, request, data_dir, tmp_path):
    model = request.getfixturevalue(fixture)
    args = ["eval", "bias", "--model", str(model), "--limit", "2", "--data-dir", str(data_dir), "--out", str(tmp_path),
            "--name", "m"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    for bench in ("winogender-mc", "winobias-mc", "bbq-mc", "crows_pairs-mc"):
        assert RunDir(tmp_path / "m" / bench).is_complete(), bench
    assert runner.invoke(app, args).exit_code == 0
    assert RunDir(tmp_path / "m" / "bbq-mc").read_manifest()["answers"]["generated"] == 0


def test_score_bias_from_predictions(data_dir, tmp_path):
    items = load_winogender(data_dir)
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": i.id, "output": "the " + i.referent if i.referent != "someone" else "someone"}) + "\n"
                             for i in items), encoding="utf-8")
    result = runner.invoke(app, ["score", "bias", "-p", str(preds), "--benchmarks", "winogender", "--data-dir", str(data_dir),
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert metric(tmp_path / "preds" / "winogender-generative", "accuracy", "all")["value"] == 1.0


def test_bad_inputs(data_dir, tmp_path):
    folder = tmp_path / "winobias"
    folder.mkdir()
    for name in ("female_occupations.txt", "male_occupations.txt"):
        shutil.copy(data_dir / "winobias" / name, folder / name)
    (folder / "pro_stereotyped_type1.txt.dev").write_text("1 The developer argued with the designer because he left.\n")
    with pytest.raises(DataError, match=r"pro_stereotyped_type1.txt.dev:1: expected \[bracketed\]"):
        load_winobias(tmp_path)
    bbq = tmp_path / "bbq"
    bbq.mkdir()
    row = json.loads((data_dir / "bbq" / "Age.jsonl").read_text().splitlines()[0])
    del row["answer_info"]
    (bbq / "Age.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"Age.jsonl:1: missing or malformed 'answer_info'"):
        load_bbq(tmp_path)
    result = runner.invoke(app, ["eval", "bias", "--model", "x", "--benchmarks", "stereoset", "--data-dir", str(data_dir)])
    assert isinstance(result.exception, ConfigError) and "unknown bias benchmark 'stereoset'" in str(result.exception)
    assert read_occupations(data_dir / "winobias")
