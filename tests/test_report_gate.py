"""Report and gate: statistics against hand-computed values, report numbers equal to
metrics.json, escaping of model output, policy outcomes and exit codes, JUnit XML."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
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
from helpers import find_run

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


def test_mcnemar_matches_scipy_binomtest():
    """Exact McNemar = two-sided exact binomial test on the discordant pairs."""
    from scipy.stats import binomtest

    rng = np.random.default_rng(11)
    for _ in range(20):
        base = (rng.random(60) < rng.random()).astype(int)
        cand = np.where(rng.random(60) < 0.7, base, 1 - base)
        result = mcnemar(base, cand)
        n = result["b"] + result["c"]
        expected = 1.0 if n == 0 else binomtest(result["b"], n, 0.5).pvalue
        assert result["p_value"] == pytest.approx(expected, rel=1e-9)


def _fake_run(model: str, rows: list[dict], metrics: list[dict]):
    from rai_multi.results.runs import Run

    manifest = {"model": {"name": model}, "task": "mgsm", "setting": "native_cot", "task_version": 1, "config": {}}
    return Run(Path("."), manifest, metrics, _samples=rows)


def test_report_paired_delta_matches_scipy():
    """The paired delta the report and gate use (compare.paired_delta): on one slice it is
    scipy's paired percentile bootstrap; on a macro slice (tier=low over bn and sw) the point
    is the mean of the per-language deltas and the stratified interval has the width the
    per-language variances give (normal approximation)."""
    from scipy.stats import bootstrap

    from rai_multi.results.compare import paired_delta

    rng = np.random.default_rng(5)
    langs = {"bn": 300, "sw": 100}
    base_rows, cand_rows = [], []
    for lang, n in langs.items():
        b = (rng.random(n) < 0.4).astype(int)
        c = np.where(rng.random(n) < (0.75 if lang == "bn" else 0.9), b, 1 - b)
        c[: n // 5] = 1
        for k in range(n):
            base_rows.append({"id": f"{lang}/{k}", "lang": lang, "tier": "low", "correct": int(b[k])})
            cand_rows.append({"id": f"{lang}/{k}", "lang": lang, "tier": "low", "correct": int(c[k])})
    metrics = [{"name": "accuracy", "slice": f"lang={lang}", "value": 0.0, "ci": None, "n": n} for lang, n in langs.items()]
    base, cand = _fake_run("base", base_rows, metrics), _fake_run("cand", cand_rows, metrics)

    one = paired_delta(base, cand, "correct", "lang=bn", "accuracy", seed=1)
    b = np.array([r["correct"] for r in base_rows if r["lang"] == "bn"], float)
    c = np.array([r["correct"] for r in cand_rows if r["lang"] == "bn"], float)
    ref = bootstrap((b, c), lambda x, y, axis: np.mean(y - x, axis=axis), paired=True, vectorized=True,
                    method="percentile", n_resamples=20_000, random_state=2).confidence_interval
    assert one["n"] == 300 and one["delta"] == pytest.approx((c - b).mean())
    assert one["ci"][0] == pytest.approx(ref.low, abs=0.01) and one["ci"][1] == pytest.approx(ref.high, abs=0.01)
    assert one["mcnemar"]["p_value"] == pytest.approx(mcnemar(b.astype(int), c.astype(int))["p_value"])

    macro = paired_delta(base, cand, "correct", "tier=low", "accuracy", seed=1)
    diffs = {lang: np.array([cr["correct"] - br["correct"] for br, cr in zip(base_rows, cand_rows) if br["lang"] == lang],
                            float) for lang in langs}
    assert macro["n"] == 400
    assert macro["delta"] == pytest.approx(np.mean([d.mean() for d in diffs.values()]))  # not the pooled mean
    se = np.sqrt(sum(d.var() / len(d) for d in diffs.values())) / len(diffs)
    width = macro["ci"][1] - macro["ci"][0]
    assert width == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert macro["ci"][0] < macro["delta"] < macro["ci"][1]


# ---------------------------------------------------------------- runs from scripted models
def test_paired_auc_delta_and_crows_pairing():
    """Davidson/CivilComments AUC: paired bootstrap of the AUC difference (items resampled
    jointly); CrowS-Pairs (0/100 per pair): paired, with McNemar on the 0/1 outcomes."""
    from sklearn.metrics import roc_auc_score

    from rai_multi.results.compare import paired_delta
    from rai_multi.results.runs import headline_of

    rng = np.random.default_rng(3)
    labels = (rng.random(200) < 0.4).astype(int)
    base_scores = rng.random(200) * 0.6 + 0.4 * labels * rng.random(200)
    cand_scores = rng.random(200) * 0.3 + 0.7 * labels * rng.random(200)
    rows = lambda scores: [{"id": f"d/{k}", "lang": "en", "label": int(labels[k]), "p_yes": float(scores[k])}
                           for k in range(200)]
    base, cand = _fake_run("base", rows(base_scores), []), _fake_run("cand", rows(cand_scores), [])
    h = headline_of("toxicity_cls")
    got = paired_delta(base, cand, h.field, "all", h.metric, seed=1, statistic=h.statistic)
    expected = roc_auc_score(labels, cand_scores) - roc_auc_score(labels, base_scores)
    assert got["delta"] == pytest.approx(expected) and got["ci"][0] < expected < got["ci"][1]
    assert "mcnemar" not in got
    same = paired_delta(base, base, h.field, "all", h.metric, seed=1, statistic=h.statistic)
    assert same["delta"] == 0 and same["ci"] == [0.0, 0.0]

    h = headline_of("crows_pairs")
    b = np.array([100.0] * 30 + [0.0] * 30)
    c = np.array([0.0] * 10 + [100.0] * 20 + [0.0] * 30)
    crow = lambda v: [{"id": f"c/{k}", "lang": "en", "stereotyped": float(v[k])} for k in range(60)]
    got = paired_delta(_fake_run("base", crow(b), []), _fake_run("cand", crow(c), []), h.field, "all", h.metric, seed=1)
    assert got["delta"] == pytest.approx(-10 / 60 * 100)
    assert (got["mcnemar"]["b"], got["mcnemar"]["c"]) == (10, 0)
    assert not h.pairs("direction=stereo") and h.pairs("bias_type=age")


class _Tables(HTMLParser):
    """Collects every <table> of a page as rows of cell texts (keyed by id or data-task)."""

    def __init__(self):
        super().__init__()
        self.tables: list[tuple[dict, list[list[str]]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append((dict(attrs), []))
        elif tag == "tr" and self.tables:
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.tables:
            self.tables[-1][1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse_tables(html: str) -> list[tuple[dict, list[list[str]]]]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def _html_table(html: str, table_id: str) -> list[list[str]]:
    return next(rows for attrs, rows in _parse_tables(html) if attrs.get("id") == table_id)


def _html_task_tables(html: str) -> dict[tuple[str, str], list[list[str]]]:
    return {(a["data-task"], a["data-setting"]): rows[1:] for a, rows in _parse_tables(html) if "data-task" in a}


def _run_pair(data_dir: Path, out: Path, right_base: int, right_cand: int, xss: bool = False) -> Path:
    """Baseline answers the first `right_base` items of each language right, the candidate
    `right_cand`; the candidate's wrong answers contain a script tag when xss is set."""
    task = MgsmTask(langs=["en", "bn", "sw"], data_dir=data_dir, limit=10, limit_rule="head")
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
    # the model's <script> is in the page only as escaped JSON data (rendered as text by the explorer)
    assert XSS not in html and "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in html
    data = json.loads(html.split('<script type="application/json" id="items-data">', 1)[1].split("</script>", 1)[0])
    assert sum(XSS in (m or {}).get("out", []) for rec in data for item in rec["items"] for m in item["m"]) == 9  # 3 wrong per language
    doc = json.loads(paths.json.read_text())
    metrics = {(m["name"], m["slice"]): m["value"] for m in
               json.loads((find_run(runs / "flan", "mgsm-native_cot") / "metrics.json").read_text())["metrics"]}
    base_metrics = {(m["name"], m["slice"]): m["value"] for m in
                    json.loads((find_run(runs / "base", "mgsm-native_cot") / "metrics.json").read_text())["metrics"]}
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
    # macro slice: stratified paired bootstrap p; T* - T >= 0.3 needs T* = 0 (every
    # language resampled without its 3 gains, (0.7^10)^3 = 2e-5) or T* >= 0.6: none in 1000
    assert all_row["p_value"] == pytest.approx(1 / 1001) and "stratified paired bootstrap" in all_row["test"]
    bn_row = next(d for d in doc["details"] if d["metric"] == "accuracy" and d["slice"] == "lang=bn")
    assert bn_row["p_value"] == pytest.approx(2 * 0.5**3) and bn_row["test"].startswith("McNemar")  # b=0, c=3
    tested = [d for d in doc["details"] if d["p_value"] is not None]
    m = len(tested)
    assert all_row["p_adjusted"] == pytest.approx(min(1.0, m / 1001))  # the smallest p (tied ones: same rank value)
    assert bn_row["p_adjusted"] >= bn_row["p_value"] and all_row["significant"] is True
    assert bn_row["mde"] == pytest.approx(2.8015852 * (2 * 0.4 * 0.6 / 10) ** 0.5, rel=1e-6)
    assert "0.700" in html and "<img" in html
    # every cell of the HTML per-task table equals metrics.json (3 decimals), both models
    tables = _html_task_tables(html)
    rows = tables[("mgsm", "native_cot")]
    assert len(rows) == len([k for k in metrics if not k[1].startswith("joshi=")])  # joshi slices: JSON only
    for row in rows:
        metric, slice_name = row[0], row[1]
        assert row[2] == f"{base_metrics[(metric, slice_name)]:.3f}", row
        assert row[5] == f"{metrics[(metric, slice_name)]:.3f}", row
        assert row[8] == f"{metrics[(metric, slice_name)] - base_metrics[(metric, slice_name)]:.3f}", row
    # the summary table in the HTML shows the JSON summary values
    summary_html = _html_table(html, "summary-table")
    for d, row in zip(doc["summary"], summary_html[1:]):
        assert row[2] == d["slice"] and row[4] == f"{d['baseline_value']:.3f}" and row[5] == f"{d['candidate_value']:.3f}"
        assert row[6] == f"{d['delta']:.3f}"
    assert "| mgsm/native_cot | accuracy | all_excl_en | flan |" in paths.markdown.read_text()


def test_incomparable_runs_are_flagged(data_dir, tmp_path):
    runs = _run_pair(data_dir, tmp_path / "runs", 4, 7)
    task = MgsmTask(langs=["en", "bn"], data_dir=data_dir, limit=5)
    shutil.rmtree(runs / "flan")
    evaluate(task, ScriptedAdapter("flan"), RunOptions(runs, "flan"))
    doc = json.loads(build_report([runs], "base", tmp_path / "audit.html").json.read_text())
    assert any("run configs differ" in f and "task.options.limit 10 vs 5" in f for f in doc["flags"]), doc["flags"]
    assert all(d["delta_ci"] is None and d["delta"] is None for d in doc["summary"])  # not compared at all


def _edit_manifest(run: Path, **changes) -> None:
    path = run / "manifest.json"
    doc = json.loads(path.read_text())
    for key, value in changes.items():
        if key == "scorer":
            doc.setdefault("config", {})["scorer"] = value
        else:
            doc[key] = value
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("change, flag", [
    ({"task_version": 99}, "task version"),
    ({"scorer": "some-other-scorer"}, "toxicity scorer"),
])
def test_version_and_scorer_mismatches_are_flagged_and_fail_the_gate(data_dir, tmp_path, change, flag):
    runs = _run_pair(data_dir, tmp_path / "runs", 4, 7)
    _edit_manifest(find_run(runs / "flan", "mgsm-native_cot"), **change)
    paths = build_report([runs], "base", tmp_path / "audit.html")
    doc = json.loads(paths.json.read_text())
    assert any(flag in f for f in doc["flags"]), doc["flags"]
    assert all(d["delta_ci"] is None and d["p_value"] is None for d in doc["summary"])
    assert f"Not comparable as is: mgsm/native_cot base vs flan: {flag}" in paths.html.read_text()
    assert flag in paths.markdown.read_text()
    policy = _policy(tmp_path, '[[rule]]\ntask = "mgsm"\nmetric = "accuracy"\nslice = "all"\nmax_regression = 0.5\n')
    gate = evaluate_policy(policy, [runs], "base")
    assert gate.verdict == "fail" and "not comparable" in gate.results[0].reason and flag in gate.results[0].reason


def test_setting_mismatch_is_flagged(data_dir, tmp_path):
    runs = _run_pair(data_dir, tmp_path / "runs", 4, 7)
    shutil.rmtree(runs / "flan")
    task = MgsmTask(langs=["en", "bn", "sw"], data_dir=data_dir, limit=10, setting="direct")
    evaluate(task, ScriptedAdapter("flan", lambda r, i: ["1"]), RunOptions(runs, "flan"))
    doc = json.loads(build_report([runs], "base", tmp_path / "audit.html").json.read_text())
    assert "mgsm/native_cot: no run of 'flan'" in doc["flags"]
    assert any(f.startswith("mgsm/direct: no run of the baseline") for f in doc["flags"])
    assert doc["summary"] == []


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
    facts = json.loads(proc.stdout.splitlines()[0])
    assert facts["summary_rows"] == 4 and facts["images"] >= 2 and facts["broken_images"] == 0
    assert facts["scripts"] == 2  # the item data and the explorer's own script; the model's <script> stayed text
    assert facts["item_rows"] == 30 and facts["item_count"].startswith("30 of 30 items")
    # negative controls: the same check fails on a page that logs a console error (its CSP
    # taken out), and on one whose injected script the CSP blocks
    html = paths.html.read_text(encoding="utf-8")
    no_csp = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    assert no_csp != html
    for page, message in ((no_csp, "console.error: boom"), (html, "content security policy: script-src-elem blocked inline")):
        broken = tmp_path / "broken.html"
        broken.write_text(page.replace("</body>", "<script>console.error('boom')</script></body>"), encoding="utf-8")
        proc = subprocess.run(["bash", str(Path(__file__).resolve().parents[1] / "scripts" / "check_report_in_browser.sh"),
                               str(broken), str(tmp_path / "broken.png")], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr


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
    with pytest.raises(ConfigError, match=r"policy.toml:11: rule 2: unknown key\(s\) threshold"):
        parse_policy(malformed)  # line 11 holds the extra key (the rule's table starts on line 7)
    proc = subprocess.run(["rai-multi", "gate", str(runs), "--policy", str(malformed)], capture_output=True, text=True)
    assert proc.returncode == 2 and "policy.toml:11" in proc.stderr and "Traceback" not in proc.stderr


RULE = '[[rule]]\ntask = "mgsm"\nmetric = "accuracy"\nslice = "all"\n'


@pytest.mark.parametrize("body, message", [
    (RULE + "min = 0.1\n\n" + RULE + "min = 0.1\nmax = 0.9\n", r"policy.toml:12: rule 2: exactly one of"),
    (RULE + 'min = "high"\n', r"policy.toml:5: rule 1: 'min' must be a number"),
    (RULE + "max_regression = -0.1\n", r"policy.toml:5: rule 1: 'max_regression' must be >= 0"),
    (RULE + 'min = 0.1\nseverity = "fatal"\n', r"policy.toml:6: rule 1: severity must be"),
    (RULE.replace('slice = "all"\n', "") + "min = 0.1\n", r"policy.toml:1: rule 1: 'slice' \(a string\) is required"),
    (RULE + "min = 0.1\nmin = 0.2\n", r"policy.toml: invalid TOML: .*line 6"),
    (RULE + "min = 0.1\n[gate]\nx = 1\n", r"unknown top-level key\(s\) gate"),
    ('title = "empty"\n', r"no \[\[rule\]\] tables"),
])
def test_malformed_policies_name_the_line(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        parse_policy(_policy(tmp_path, body))


def test_unusable_runs_or_arguments_exit_2_with_one_line(data_dir, tmp_path):
    runs = _run_pair(data_dir, tmp_path / "runs", 5, 5)
    ok = _policy(tmp_path, RULE + "max_regression = 0.1\n")
    cases = [
        ([str(tmp_path / "nowhere"), "--policy", str(ok), "--baseline", "base"], "run directory does not exist"),
        ([str(runs), "--policy", str(ok), "--baseline", "nobody"], "baseline 'nobody' is not among"),
        ([str(runs), "--policy", str(ok)], "policy.toml:1: rule 1 compares with a baseline: pass --baseline"),
        ([str(runs), "--policy", str(tmp_path / "missing.toml"), "--baseline", "base"], "cannot read policy"),
    ]
    for args, message in cases:
        proc = subprocess.run(["rai-multi", "gate", *args], capture_output=True, text=True)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    # an incomplete run directory is unusable input, not a crash
    manifest = find_run(runs / "flan", "mgsm-native_cot") / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"status": "complete"', '"status": "running"'))
    proc = subprocess.run(["rai-multi", "gate", str(runs), "--policy", str(ok), "--baseline", "base"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "not complete" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(["rai-multi", "report", str(runs), "--baseline", "base", "-o", str(tmp_path / "r.html")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "not complete" in proc.stderr and "Traceback" not in proc.stderr


def test_gate_non_inferiority_and_warnings(data_dir, tmp_path):
    runs = _run_pair(data_dir, tmp_path / "runs", right_base=5, right_cand=5)
    policy = _policy(tmp_path, '[[rule]]\ntask = "mgsm"\nmetric = "accuracy"\nslice = "all_excl_en"\n'
                               'non_inferiority_margin = 0.01\n\n[[rule]]\ntask = "mgsm"\nmetric = "accuracy"\n'
                               'slice = "all"\nseverity = "warn"\nmin = 0.9\n')
    result = evaluate_policy(policy, [runs], "base")
    assert result.verdict == "pass" and result.n_failed_warnings == 1  # identical answers: delta CI [0, 0]
    xml = ET.fromstring(junit_xml(result))
    assert len(xml.findall("testsuite/testcase")) == 2 and not xml.findall("testsuite/testcase/failure")
