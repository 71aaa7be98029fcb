"""Report and gate: statistics against hand-computed values, report numbers equal to
metrics.json, escaping of model output, policy outcomes and exit codes, JUnit XML."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rai_multi.cli.main import app
from rai_multi.errors import ConfigError
from rai_multi.gate import evaluate_policy, junit_xml, parse_policy
from rai_multi.models.scripted import ScriptedAdapter
from rai_multi.report.build import build_report
from rai_multi.runner import RunOptions, evaluate
from rai_multi.stats import mcnemar, paired_bootstrap_delta_ci
from rai_multi.tasks.mgsm import MgsmTask

runner = CliRunner()
XSS = "<script>alert(1)</script>"


# ---------------------------------------------------------------- statistics
def test_mcnemar_exact_by_hand():
    # b = 3 (baseline right, candidate wrong), c = 9: p = 2 * P(X <= 3 | n=12, 1/2)
    base = [1] * 3 + [0] * 9 + [1] * 5 + [0] * 4
    cand = [0] * 3 + [1] * 9 + [1] * 5 + [0] * 4
    result = mcnemar(base, cand)
    assert (result["b"], result["c"]) == (3, 9)
    assert result["p_value"] == pytest.approx(2 * (1 + 12 + 66 + 220) / 4096)
    assert mcnemar([1, 0], [1, 0])["p_value"] == 1.0


def test_paired_bootstrap_delta():
    delta, ci = paired_bootstrap_delta_ci([0, 0, 1, 1], [1, 1, 1, 1], seed=1)
    assert delta == 0.5
    assert 0.0 <= ci[0] <= 0.5 <= ci[1] <= 1.0
    delta, ci = paired_bootstrap_delta_ci([0.2, 0.4], [0.5, 0.7], seed=1)  # constant difference 0.3
    assert delta == pytest.approx(0.3) and ci == pytest.approx((0.3, 0.3))


def test_paired_bootstrap_matches_scipy():
    """Our paired percentile bootstrap against scipy.stats.bootstrap(paired=True) on 400
    constructed paired outcomes: the same interval up to Monte Carlo error (one item = 0.0025)."""
    from scipy.stats import bootstrap

    rng = np.random.default_rng(7)
    base = (rng.random(400) < 0.45).astype(float)
    cand = np.where(rng.random(400) < 0.8, base, 1 - base)
    cand[:30] = 1.0
    delta, ci = paired_bootstrap_delta_ci(base, cand, seed=3, n_boot=20_000)
    assert delta == pytest.approx((cand.sum() - base.sum()) / 400)
    ref = bootstrap((base, cand), lambda a, b, axis: np.mean(b - a, axis=axis), paired=True, vectorized=True,
                    method="percentile", n_resamples=20_000, random_state=1).confidence_interval
    assert ci[0] == pytest.approx(ref.low, abs=0.006) and ci[1] == pytest.approx(ref.high, abs=0.006)


# ---------------------------------------------------------------- runs from scripted models
def _run_pair(data_dir: Path, out: Path, right_base: int, right_cand: int, xss: bool = False) -> Path:
    """Baseline answers the first `right_base` items of each language right, the candidate
    `right_cand`; the candidate's wrong answers contain a script tag when xss is set."""
    task = MgsmTask(langs=["en", "bn", "sw"], data_dir=data_dir, limit=10)
    golds = {s.id: s.target for s in task.build_samples()}

    def model(right: int, wrong_text: str):
        def generate(request, sample_id):
            index = int(sample_id.rsplit("/", 1)[1])
            return [f"The answer is {golds[sample_id]:g}." if index < right else wrong_text]
        return generate

    evaluate(task, ScriptedAdapter("base", model(right_base, "no idea")), RunOptions(out, "base"))
    evaluate(task, ScriptedAdapter("flan", model(right_cand, XSS if xss else "no idea")), RunOptions(out, "flan"))
    return out


def test_report_numbers_equal_metrics_and_output_is_escaped(data_dir, tmp_path):
    runs = _run_pair(data_dir, tmp_path / "runs", right_base=4, right_cand=7, xss=True)
    paths = build_report([runs], "base", tmp_path / "rep" / "audit.html")
    html = paths.html.read_text(encoding="utf-8")
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    doc = json.loads(paths.json.read_text())
    metrics = {(m["name"], m["slice"]): m["value"] for m in
               json.loads((runs / "flan" / "mgsm-native_cot" / "metrics.json").read_text())["metrics"]}
    base_metrics = {(m["name"], m["slice"]): m["value"] for m in
                    json.loads((runs / "base" / "mgsm-native_cot" / "metrics.json").read_text())["metrics"]}
    for d in doc["details"]:
        assert d["candidate_value"] == metrics[(d["metric"], d["slice"])]
        assert d["baseline_value"] == base_metrics[(d["metric"], d["slice"])]
    summary = {d["slice"]: d for d in doc["summary"]}
    # by hand: 0.4 -> 0.7 in every language; 3 discordant pairs per language, all for the candidate
    assert summary["all_excl_en"]["delta"] == pytest.approx(0.3)
    assert summary["all_excl_en"]["candidate_value"] == pytest.approx(0.7)
    low = summary["tier=low"]
    assert low["delta"] == pytest.approx(0.3) and low["delta_ci"][0] < 0.3 < low["delta_ci"][1]
    assert low["n_paired"] == 20
    all_row = next(d for d in doc["details"] if d["metric"] == "accuracy" and d["slice"] == "all")
    assert all_row["p_value"] == pytest.approx(2 * 0.5**9)  # McNemar: b=0, c=9
    assert all_row["significant"] is True
    assert "0.700" in html and "<img" in html
    assert "| mgsm/native_cot | accuracy | all_excl_en | flan |" in paths.markdown.read_text()


def test_incomparable_runs_are_flagged(data_dir, tmp_path):
    runs = _run_pair(data_dir, tmp_path / "runs", 4, 7)
    task = MgsmTask(langs=["en", "bn"], data_dir=data_dir, limit=5)
    shutil.rmtree(runs / "flan")
    evaluate(task, ScriptedAdapter("flan"), RunOptions(runs, "flan"))
    doc = json.loads(build_report([runs], "base", tmp_path / "audit.html").json.read_text())
    assert any("sample sets differ" in f for f in doc["flags"])
    assert all(d["delta_ci"] is None for d in doc["summary"])  # no paired test on mismatched sets


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install chromium)")
def test_report_opens_in_headless_chromium(data_dir, tmp_path):
    runs = _run_pair(data_dir, tmp_path / "runs", 4, 7, xss=True)
    paths = build_report([runs], "base", tmp_path / "audit.html")
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        ["bash", str(Path(__file__).resolve().parents[1] / "scripts" / "check_report_in_browser.sh"), str(paths.html), str(shot)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert shot.stat().st_size > 10_000


# ---------------------------------------------------------------- gate
def _policy(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_gate_pass_regression_missing_and_malformed(data_dir, tmp_path):
    runs = _run_pair(data_dir, tmp_path / "runs", right_base=6, right_cand=5)  # candidate 0.1 worse everywhere
    ok = _policy(tmp_path, '[[rule]]\ntask = "mgsm"\nmetric = "accuracy"\nslice = "tier=low"\nmax_regression = 0.2\n')
    result = runner.invoke(app, ["gate", str(runs), "--policy", str(ok), "--baseline", "base"])
    assert result.exit_code == 0, result.output
    bad = _policy(tmp_path, '[[rule]]\nname = "no low-tier loss"\ntask = "mgsm"\nmetric = "accuracy"\nslice = "lang=*"\n'
                            'max_regression = 0.05\n')
    junit = tmp_path / "gate.xml"
    result = runner.invoke(app, ["gate", str(runs), "--policy", str(bad), "--baseline", "base", "--junit", str(junit)])
    assert result.exit_code == 1
    assert "FAIL" in result.output and "no low-tier loss" in result.output and "lang=bn" in result.output
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "3"
    assert len(suite.findall("testcase/failure")) == 3
    missing = _policy(tmp_path, '[[rule]]\ntask = "mgsm"\nmetric = "accuracy"\nslice = "tier=high"\nmin = 0.1\n')
    result = runner.invoke(app, ["gate", str(runs), "--policy", str(missing), "--baseline", "base"])
    assert result.exit_code == 1 and "missing" in result.output
    malformed = _policy(tmp_path, '[[rule]]\ntask = "mgsm"\nmetric = "accuracy"\nslice = "all"\nmin = 0.1\n\n'
                                  '[[rule]]\ntask = "mgsm"\nmetric = "accuracy"\nslice = "all"\nthreshold = 3\n')
    with pytest.raises(ConfigError, match=r"policy.toml:7: rule 2: unknown key\(s\) threshold"):
        parse_policy(malformed)
    proc = subprocess.run(["rai-multi", "gate", str(runs), "--policy", str(malformed)], capture_output=True, text=True)
    assert proc.returncode == 2 and "policy.toml:7" in proc.stderr and "Traceback" not in proc.stderr


def test_gate_non_inferiority_and_warnings(data_dir, tmp_path):
    runs = _run_pair(data_dir, tmp_path / "runs", right_base=5, right_cand=5)
    policy = _policy(tmp_path, '[[rule]]\ntask = "mgsm"\nmetric = "accuracy"\nslice = "all_excl_en"\n'
                               'non_inferiority_margin = 0.01\n\n[[rule]]\ntask = "mgsm"\nmetric = "accuracy"\n'
                               'slice = "all"\nseverity = "warn"\nmin = 0.9\n')
    result = evaluate_policy(policy, [runs], "base")
    assert result.verdict == "pass" and result.n_failed_warnings == 1  # identical answers: delta CI [0, 0]
    xml = ET.fromstring(junit_xml(result))
    assert len(xml.findall("testsuite/testcase")) == 2 and not xml.findall("testsuite/testcase/failure")
