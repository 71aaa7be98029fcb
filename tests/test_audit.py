"""The audit command: suite validation, an end-to-end audit of two tiny models on the
sample data (no RAI_MULTI_DATA), re-run from cache, and a killed audit that resumes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rai_multi.errors import ConfigError
from rai_multi.samples import MARKER, write_sample_data
from rai_multi.store import RunDir
from rai_multi.suite import load_suite

REPO = Path(__file__).resolve().parents[1]

SUITE = """
title = "tiny audit"
baseline = "base"
policy = "{policy}"
seed = 7

[[model]]
name = "base"
source = "{base}"
batch_size = 4

[[model]]
name = "cand"
source = "{cand}"
batch_size = 4

[[task]]
type = "mgsm"
langs = ["en", "bn", "sw"]
limit = 2
max_new_tokens = 6

[[task]]
type = "tydiqa"
langs = ["en", "sw", "fi"]
limit = 2
max_new_tokens = 4

[[task]]
type = "toxicity"
prompts = 2
samples = 2
max_new_tokens = 4

[[task]]
type = "toxicity_cls"
limit = 10

[[task]]
type = "bias"
limit = 2
"""

POLICY = """
[[rule]]
task = "mgsm"
metric = "accuracy"
slice = "tier=low"
max_regression = 1.0

[[rule]]
task = "bbq"
metric = "accuracy_disambig"
slice = "all"
min = 0.0
"""


def _suite(tmp_path: Path, base: Path, cand: Path) -> Path:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    path = tmp_path / "suite.toml"
    path.write_text(SUITE.format(policy=policy.name, base=base, cand=cand))
    return path


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAI_MULTI_DATA"}
    env.update(HOME=str(tmp_path / "home"), RAI_MULTI_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
    return env


def test_suite_validation(tmp_path, tiny_seq2seq, tiny_causal):
    path = _suite(tmp_path, tiny_seq2seq, tiny_causal)
    suite = load_suite(path)
    assert [m.name for m in suite.models] == ["base", "cand"] and suite.policy == tmp_path / "policy.toml"
    for old, new, message in (
        ('limit = 2\nmax_new_tokens = 6', 'limits = 2', r"\[\[task\]\] 1: unknown option\(s\) limits"),
        ('baseline = "base"', 'baseline = "nobody"', "'baseline' must name one of the models"),
        ('type = "bias"', 'type = "stereoset"', r"\[\[task\]\] 5: 'type' must be one of"),
        ('batch_size = 4\n\n[[model]]', 'batch_size = "4"\n\n[[model]]', r"\[\[model\]\] 1: 'batch_size' must be a positive int or \"auto\""),
    ):
        text = path.read_text()
        assert old in text
        bad = tmp_path / "bad.toml"
        bad.write_text(text.replace(old, new, 1))
        with pytest.raises(ConfigError, match=message):
            load_suite(bad)


def test_broken_policy_fails_before_any_model_runs(tmp_path, tiny_seq2seq, tiny_causal):
    from rai_multi.audit import run_audit

    suite = _suite(tmp_path, tiny_seq2seq, tiny_causal)
    (tmp_path / "policy.toml").write_text(POLICY + "\n[[rule]]\ntask = \"mgsm\"\nmetric = \"accuracy\"\nslice = \"all\"\nminimum = 1\n")
    with pytest.raises(ConfigError, match=r"policy.toml:\d+: rule 3: unknown key\(s\) minimum"):
        run_audit(load_suite(suite), out=tmp_path / "runs", report=tmp_path / "a.html")
    assert not (tmp_path / "runs").exists()


def test_sample_data_is_marked(tmp_path):
    root = write_sample_data(tmp_path / "samples")
    assert (root / MARKER).is_file()
    assert "[sample]" in (root / "mgsm" / "mgsm_bn.tsv").read_text(encoding="utf-8")


@pytest.mark.slow
def test_audit_end_to_end_cache_and_kill_resume(tmp_path, tiny_seq2seq, tiny_causal):
    suite = _suite(tmp_path, tiny_seq2seq, tiny_causal)
    out, report = tmp_path / "runs", tmp_path / "audit.html"
    argv = [sys.executable, "-m", "rai_multi.cli.main", "audit", str(suite), "--out", str(out), "--report", str(report)]
    # 1. a run killed once some run directories are complete
    proc = subprocess.Popen(argv, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if sum(RunDir(p.parent).is_complete() for p in out.rglob("manifest.json")) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed half way, not finished
    finished = sorted(p.parent for p in out.rglob("manifest.json") if RunDir(p.parent).is_complete())
    assert 3 <= len(finished) < 2 * 8
    assert not report.exists()
    # 2. run again: finishes, nothing finished before is generated again
    done = subprocess.run(argv, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert f"report: {report.resolve()}" in done.stdout and "gate verdict: PASS" in done.stdout
    assert "[audit] task 1 of 16 done: base mgsm/native_cot" in done.stdout and "ETA " in done.stdout
    assert re.search(r"\[audit\] task 16 of 16 done: cand .* items done, .* elapsed, done", done.stdout), done.stdout
    for run in finished:
        assert RunDir(run).read_manifest()["answers"]["generated"] == 0, run
    runs = [p.parent for p in out.rglob("manifest.json")]
    assert len(runs) == 2 * 8 and all(RunDir(r).is_complete() for r in runs)  # 8 task runs per model
    html = report.read_text(encoding="utf-8")
    assert "SAMPLE DATA" in html and "NOT benchmark scores" in html
    assert "NOT benchmark scores" in report.with_suffix(".md").read_text(encoding="utf-8")
    doc = json.loads(report.with_suffix(".json").read_text())
    assert doc["sample_data"] is True
    # a later `rai-multi report` on the same runs still says they are sample data
    later = subprocess.run([sys.executable, "-m", "rai_multi.cli.main", "report", str(out), "--baseline", "base",
                            "-o", str(tmp_path / "later.html")], env=_env(tmp_path), capture_output=True, text=True)
    assert later.returncode == 0, later.stderr
    assert "NOT benchmark scores" in (tmp_path / "later.html").read_text(encoding="utf-8")
    assert doc["gate"]["verdict"] == "pass"
    assert {d["task"] for d in doc["summary"]} >= {"mgsm", "tydiqa", "bbq", "winogender", "toxicity"}
    # 3. a third run is served entirely from the cache
    again = subprocess.run(argv, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    assert all(RunDir(r).read_manifest()["answers"]["generated"] == 0 for r in runs)
