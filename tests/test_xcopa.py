"""XCOPA end to end: the CLI, a suite, the report and the gate reach it through its spec
alone; accuracy and tiers checked against values worked out by hand on real rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rai_multi.cli.main import app
from rai_multi.data.xcopa import load_xcopa
from rai_multi.gate import evaluate_policy
from rai_multi.languages import get_language
from rai_multi.models.scripted import ScriptedAdapter
from rai_multi.records import Loglikelihood
from rai_multi.report.build import build_report
from rai_multi.runner import RunOptions, evaluate
from rai_multi.store import RunDir
from rai_multi.suite import load_suite
from rai_multi.tasks.xcopa import XcopaTask, match_alternative
from helpers import find_run

runner = CliRunner()


def test_quechua_and_haitian_creole_make_the_low_tier_real():
    assert get_language("qu").tier == "low" and get_language("ht").tier == "low"
    assert get_language("it").tier == "high"


@pytest.mark.parametrize("output, expected", [
    ("1", 0), ("2.", 1), ("(2) because", 1), (" 1\n", 0), ("12", None), ("", None),
])
def test_generated_answers_name_an_alternative(output, expected):
    assert match_alternative(output, ["The item was fragile.", "The item was small."]) == expected


def test_generated_alternative_text_is_matched():
    assert match_alternative("The item was small.", ["The item was fragile.", "The item was small."]) == 1


def test_score_xcopa_gold_and_always_one(data_dir, tmp_path):
    """Gold predictions score 1; "always 1" scores the share of label-0 rows, counted here."""
    langs = ["qu", "ht", "it"]
    items = {lang: load_xcopa(data_dir, lang, "test")[:20] for lang in langs}
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"id": i.id, "output": (i.choice1, i.choice2)[i.label]}) + "\n"
                            for lang in langs for i in items[lang]), encoding="utf-8")
    ones = tmp_path / "ones.jsonl"
    ones.write_text("".join(json.dumps({"id": i.id, "output": "1"}) + "\n" for lang in langs for i in items[lang]),
                    encoding="utf-8")
    for preds in (gold, ones):
        result = runner.invoke(app, ["score", "xcopa", "-p", str(preds), "--langs", ",".join(langs), "--limit", "20",
                                     "--limit-rule", "head", "--data-dir", str(data_dir), "--out", str(tmp_path / "runs")])
        assert result.exit_code == 0, result.output
    gold_m = {(m["name"], m["slice"]): m["value"] for m in
              RunDir(find_run(tmp_path / "runs" / "gold", "xcopa-generative")).read_metrics()["metrics"]}
    assert gold_m[("accuracy", "all")] == 1.0 and gold_m[("accuracy", "tier=low")] == 1.0
    ones_m = {(m["name"], m["slice"]): m["value"] for m in
              RunDir(find_run(tmp_path / "runs" / "ones", "xcopa-generative")).read_metrics()["metrics"]}
    share = {lang: sum(i.label == 0 for i in items[lang]) / 20 for lang in langs}
    assert ones_m[("accuracy", "lang=qu")] == pytest.approx(share["qu"])
    assert ones_m[("accuracy", "tier=low")] == pytest.approx((share["qu"] + share["ht"]) / 2)
    assert ones_m[("accuracy", "all")] == pytest.approx(sum(share.values()) / 3)


def _mc_pair(data_dir: Path, out: Path) -> Path:
    task = XcopaTask(["qu", "ht", "it"], data_dir, limit=10, seed=1234)
    labels = {s.id: s.target for s in task.build_samples()}

    def right(request, sample_id):
        return [Loglikelihood(-1.0 if k == labels[sample_id] else -5.0, 4) for k in range(2)]

    evaluate(task, ScriptedAdapter("base"), RunOptions(out, "base"))  # ties: option order decides
    evaluate(task, ScriptedAdapter("flan", loglikelihood_fn=right), RunOptions(out, "flan"))
    return out


def test_xcopa_in_report_and_gate(data_dir, tmp_path):
    runs = _mc_pair(data_dir, tmp_path / "runs")
    doc = json.loads(build_report([runs], "base", tmp_path / "r.html").json.read_text())
    rows = [d for d in doc["summary"] if d["task"] == "xcopa"]
    assert rows and {d["slice"] for d in rows} >= {"tier=low"}
    low = next(d for d in rows if d["slice"] == "tier=low")
    assert low["candidate_value"] == 1.0 and low["better"] is True
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\ntask = "xcopa"\nmetric = "accuracy"\nslice = "tier=low"\nmax_regression = 0\n'
                      '[[rule]]\ntask = "xcopa"\nmetric = "accuracy"\nslice = "lang=*"\nmin = 0.9\n', encoding="utf-8")
    gate = evaluate_policy(policy, [runs], "base")
    assert gate.verdict == "pass" and len(gate.results) == 1 + 3


def test_xcopa_in_a_suite_and_eval_cli(tiny_causal, data_dir, tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text('baseline = "a"\n[[model]]\nname = "a"\nsource = "x"\n[[model]]\nname = "b"\nsource = "y"\n'
                     '[[task]]\ntype = "xcopa"\nlangs = ["qu", "tr"]\nlimit = 3\nsplit = "val"\n', encoding="utf-8")
    (spec, options), = load_suite(suite).tasks[0].runs
    assert spec.name == "xcopa" and options.langs == ("qu", "tr") and options.split == "val"
    result = runner.invoke(app, ["eval", "xcopa", "--model", str(tiny_causal), "--langs", "qu,tr", "--limit", "2",
                                 "--limit-rule", "head", "--split", "val", "--data-dir", str(data_dir), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    rows = RunDir(find_run(tmp_path / "runs" / tiny_causal.name, "xcopa-mc")).read_samples()
    assert [r["id"] for r in rows] == ["xcopa/qu/0", "xcopa/qu/1", "xcopa/tr/0", "xcopa/tr/1"]
    assert all(len(r["logprobs"]) == 2 for r in rows)
