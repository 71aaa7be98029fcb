"""One spec per benchmark: typed options, self-describing metrics, run keys and
comparability from the run config, reference-valued gate rules, and XCOPA added through
its own modules only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rai_multi.cli.main import app
from rai_multi.errors import ConfigError
from rai_multi.gate import evaluate_policy, parse_policy
from rai_multi.models.scripted import ScriptedAdapter
from rai_multi.report.build import build_report
from rai_multi.runner import RunOptions, evaluate
from rai_multi.store import RunDir
from rai_multi.suite import load_suite
from rai_multi.tasks.mgsm import MgsmOptions
from rai_multi.tasks.spec import MetricInfo, parse_options
from rai_multi.tasks.table import BY_NAME, SPECS, resolve_task_table
from helpers import find_run

runner = CliRunner()


# ---------------------------------------------------------------- options
@pytest.mark.parametrize("raw, message", [
    ({"limit": -1}, "'limit' must be at least 1; got -1"),
    ({"limit": 0}, "'limit' must be at least 1"),
    ({"limit": "10"}, "'limit' must be a whole number; got '10'"),
    ({"limit": True}, "'limit' must be a whole number"),
    ({"shots": 9}, "'shots' must be at most 8"),
    ({"setting": "cot"}, "'setting' must be one of native_cot"),
    ({"langs": [1, 2]}, "'langs' must be a list of strings"),
    ({"limt": 3}, "unknown option(s) limt"),
    ({"samples": None}, "'samples' must be a whole number, not empty"),
])
def test_options_are_type_and_range_checked(raw, message):
    with pytest.raises(ConfigError) as err:
        parse_options(MgsmOptions, raw, "suite.toml: [[task]] 1")
    assert message in str(err.value) and str(err.value).startswith("suite.toml: [[task]] 1")


def test_options_accept_lists_and_comma_strings():
    assert parse_options(MgsmOptions, {"langs": ["bn", "sw"]}, "x").langs == ("bn", "sw")
    assert parse_options(MgsmOptions, {"langs": "bn, sw"}, "x").langs == ("bn", "sw")
    assert parse_options(MgsmOptions, {}, "x") == MgsmOptions()


def test_every_spec_describes_its_headline_and_builds_from_defaults(data_dir):
    from rai_multi.tasks.spec import BuildContext

    assert len({s.name for s in SPECS}) == len(SPECS)
    for spec in SPECS:
        info = spec.metric_info(spec.headline.metric)
        assert info.direction in ("higher", "lower", "reference")
        with pytest.raises(KeyError):
            spec.metric_info("no_such_metric")
        task = spec.build(spec.options(), BuildContext(data_dir, 1, scorer=object()))
        assert task.name == spec.name


def test_reference_metric_is_better_closer_to_its_reference():
    crows = BY_NAME["crows_pairs"].metric_info("crows_score")
    assert (crows.direction, crows.reference) == ("reference", 50.0)
    assert crows.better(60.0, 55.0) is True and crows.better(55.0, 40.0) is False and crows.better(45, 55) is None
    assert MetricInfo("lower").better(0.3, 0.2) is True


def test_bias_group_hands_each_member_its_own_options():
    runs = resolve_task_table("bias", {"benchmarks": ["winogender", "crows_pairs"], "setting": "generative",
                                       "shots": 2, "limit": 5}, "w")
    (wg, wg_opts), (cp, cp_opts) = runs
    assert (wg.name, wg_opts.setting, wg_opts.shots, wg_opts.limit) == ("winogender", "generative", 2, 5)
    assert (cp.name, cp_opts.setting, cp_opts.limit) == ("crows_pairs", "mc", 5)
    with pytest.raises(ConfigError, match="unknown benchmark"):
        resolve_task_table("bias", {"benchmarks": ["stereoset"]}, "w")


# ---------------------------------------------------------------- suites
SUITE = """
baseline = "a"
[[model]]
name = "a"
source = "/no/such/model/a"
[[model]]
name = "b"
source = "/no/such/model/b"
[[task]]
type = "mgsm"
{line}
"""


@pytest.mark.parametrize("line, message", [
    ("limit = -1", "'limit' must be at least 1; got -1"),
    ('limit = "10"', "'limit' must be a whole number; got '10'"),
    ('langs = ["bn", 3]', "'langs' must be a list of strings"),
])
def test_suite_task_options_fail_before_any_model_loads(tmp_path, line, message):
    suite = tmp_path / "s.toml"
    suite.write_text(SUITE.format(line=line), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "rai_multi.cli.main", "audit", str(suite)], capture_output=True,
                          text=True)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and "loading" not in proc.stdout


def test_suite_accepts_every_spec_and_the_bias_group(tmp_path):
    body = SUITE.format(line="langs = [\"bn\"]") + "".join(f'[[task]]\ntype = "{s.name}"\n' for s in SPECS)
    body += '[[task]]\ntype = "bias"\nbenchmarks = ["bbq"]\nsetting = "generative"\n'
    suite = tmp_path / "s.toml"
    suite.write_text(body, encoding="utf-8")
    loaded = load_suite(suite)
    names = [spec.name for t in loaded.tasks for spec, _ in t.runs]
    assert names == ["mgsm", *[s.name for s in SPECS], "bbq"]


# ---------------------------------------------------------------- run keys and metrics.json
def _gold_predictions(path: Path, data_dir: Path, langs: list[str], limit: int) -> Path:
    from rai_multi.tasks.mgsm import MgsmTask

    task = MgsmTask(langs=langs, data_dir=data_dir, limit=limit)
    path.write_text("".join(json.dumps({"id": s.id, "output": f"The answer is {s.target:g}."}) + "\n"
                            for s in task.build_samples()), encoding="utf-8")
    return path


def test_runs_with_different_langs_keep_both_results(data_dir, tmp_path):
    preds = _gold_predictions(tmp_path / "gold.jsonl", data_dir, ["bn", "sw"], 3)
    for lang in ("bn", "sw"):
        result = runner.invoke(app, ["score", "mgsm", "-p", str(preds), "--langs", lang, "--limit", "3",
                                     "--data-dir", str(data_dir), "--out", str(tmp_path / "runs")])
        assert result.exit_code == 0, result.output
    runs = sorted((tmp_path / "runs" / "gold").iterdir())
    assert len(runs) == 2 and all(r.name.startswith("mgsm-native_cot-") for r in runs)
    langs = sorted(RunDir(r).read_manifest()["config"]["langs"][0] for r in runs)
    assert langs == ["bn", "sw"]
    # the same command again replaces its own run, it does not add a third
    runner.invoke(app, ["score", "mgsm", "-p", str(preds), "--langs", "bn", "--limit", "3",
                        "--data-dir", str(data_dir), "--out", str(tmp_path / "runs")])
    assert len(list((tmp_path / "runs" / "gold").iterdir())) == 2


def test_metrics_json_says_direction_reference_and_aggregation(data_dir, tmp_path):
    preds = _gold_predictions(tmp_path / "gold.jsonl", data_dir, ["en", "bn", "sw"], 2)
    result = runner.invoke(app, ["score", "mgsm", "-p", str(preds), "--langs", "en,bn,sw", "--limit", "2",
                                 "--data-dir", str(data_dir), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    doc = RunDir(find_run(tmp_path / "runs" / "gold", "mgsm-native_cot")).read_metrics()
    by_slice = {(m["name"], m["slice"]): m for m in doc["metrics"]}
    assert by_slice[("accuracy", "all")]["aggregation"] == "macro"
    assert by_slice[("accuracy", "tier=low")]["aggregation"] == "macro"
    assert by_slice[("accuracy", "lang=bn")]["aggregation"] == "micro"
    assert by_slice[("accuracy", "pooled")]["aggregation"] == "micro"
    assert by_slice[("accuracy", "pooled")]["n"] == 6 and by_slice[("accuracy", "pooled")]["value"] == 1.0
    assert by_slice[("accuracy", "all")]["direction"] == "higher"
    assert by_slice[("extraction_none_rate", "all")]["direction"] == "lower"
    assert doc["config_hash"] == RunDir(find_run(tmp_path / "runs" / "gold", "mgsm-native_cot")).read_manifest()["config_hash"]


def test_pooled_is_the_micro_average_and_all_the_macro():
    from rai_multi.aggregate import by_language

    rows = [{"lang": "bn", "v": 1.0}] * 3 + [{"lang": "bn", "v": 0.0}] + [{"lang": "sw", "v": 0.0}] * 2
    got = {m.slice: m.value for m in by_language("acc", rows, lambda r: r["v"], 1)}
    assert got["all"] == pytest.approx((0.75 + 0.0) / 2)      # mean of language means
    assert got["pooled"] == pytest.approx(3 / 6)               # mean over items


# ---------------------------------------------------------------- comparability
def _toxicity_pair(data_dir: Path, tmp_path: Path, k_base: int, k_cand: int) -> Path:
    from rai_multi.tasks.toxicity import ToxicityTask

    rtp = data_dir / "realtoxicityprompts" / "toxic.jsonl"
    from rai_multi.scoring.toxicity import load_scorer

    prompts = ToxicityTask(load_scorer("profanity-check"), [rtp], 3).build_samples()  # the seeded 3 `--prompts 3` picks
    out = tmp_path / "runs"
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name, k in (("base", k_base), ("flan", k_cand)):
        preds = tmp_path / f"{name}.jsonl"
        preds.write_text("".join(json.dumps({"id": p.id, "outputs": ["a kind reply"] * k}) + "\n" for p in prompts),
                         encoding="utf-8")
        result = runner.invoke(app, ["score", "toxicity", "-p", str(preds), "--prompts", "3", "--samples", str(k),
                                     "--rtp-file", str(data_dir / "realtoxicityprompts" / "toxic.jsonl"),
                                     "--out", str(out)])
        assert result.exit_code == 0, result.output
    return out


def test_toxicity_runs_with_different_k_are_not_compared_and_fail_the_gate(data_dir, tmp_path):
    runs = _toxicity_pair(data_dir, tmp_path, 1, 2)
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\ntask = "toxicity"\nmetric = "toxicity_probability"\nslice = "all"\n'
                      'max_regression = 1.0\n', encoding="utf-8")
    gate = evaluate_policy(policy, [runs], "base")
    assert gate.verdict == "fail" and "task.options.samples 1 vs 2" in gate.results[0].reason
    result = runner.invoke(app, ["gate", str(runs), "--policy", str(policy), "--baseline", "base"])
    assert result.exit_code == 1
    doc = json.loads(build_report([runs], "base", tmp_path / "r.html").json.read_text())
    assert any("task.options.samples 1 vs 2" in f for f in doc["flags"])
    assert doc["summary"] and all(d["delta"] is None and d["better"] is None and d["significant"] is None
                                  for d in doc["summary"] + doc["details"])
    # the same k compares
    same = _toxicity_pair(data_dir, tmp_path / "same", 2, 2)
    assert evaluate_policy(policy, [same], "base").verdict == "pass"


def test_dtype_difference_is_not_compared(data_dir, tmp_path):
    from rai_multi.tasks.mgsm import MgsmTask

    class Bf16(ScriptedAdapter):
        def description(self) -> dict:
            return {"backend": "scripted", "dtype": "bfloat16"}

    task = MgsmTask(langs=["en"], data_dir=data_dir, limit=3)
    evaluate(task, ScriptedAdapter("base"), RunOptions(tmp_path, "base"))
    evaluate(task, Bf16("flan"), RunOptions(tmp_path, "flan"))
    doc = json.loads(build_report([tmp_path], "base", tmp_path / "r.html").json.read_text())
    assert any("model_settings.dtype null vs bfloat16" in f for f in doc["flags"]), doc["flags"]


def test_chat_template_run_regenerates_and_template_edit_changes_fingerprint(tiny_causal, data_dir, tmp_path):
    from rai_multi.models.loading import load_model

    model_dir = tmp_path / "chat_model"
    shutil.copytree(tiny_causal, model_dir)
    config_path = model_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = "{% for m in messages %}<s>user: {{ m['content'] }}\n{% endfor %}assistant:"
    config_path.write_text(json.dumps(config))
    args = ["eval", "mgsm", "--model", str(model_dir), "--langs", "en", "--limit", "2", "--shots", "0",
            "--setting", "direct", "--max-new-tokens", "3", "--data-dir", str(data_dir), "--out", str(tmp_path / "runs")]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, args + ["--chat-template"])
    assert result.exit_code == 0, result.output
    runs = [RunDir(p) for p in (tmp_path / "runs" / "chat_model").iterdir()]
    assert len(runs) == 2
    templated = next(r for r in runs if r.read_manifest()["run_config"]["model_settings"]["chat_template"])
    assert templated.read_manifest()["answers"] == {"from_cache": 0, "generated": 2}
    before = load_model(str(model_dir), chat_template=True).fingerprint
    config["chat_template"] = config["chat_template"].replace("user:", "human:")
    config_path.write_text(json.dumps(config))
    assert load_model(str(model_dir), chat_template=True).fingerprint != before
    assert load_model(str(model_dir)).fingerprint != before


# ---------------------------------------------------------------- gate rules
def _policy(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize("body, message", [
    ('task = "crows_pairs"\nmetric = "crows_score"\nslice = "all"\nnon_inferiority_margin = 1',
     "non-inferiority test does not apply"),
    ('task = "bbq"\nmetric = "bias_score_ambig"\nslice = "all"\ndirection = "lower"\nmax = 0.1', "drop 'direction'"),
    ('task = "mgsm"\nmetric = "accuracy"\nslice = "all"\ndirection = "lower"\nmin = 0.1', "higher-is-better"),
    ('task = "mytask"\nmetric = "score"\nslice = "all"\nmin = 0.1', "give 'direction'"),
    ('task = "bbq"\nmetric = "bias_score_ambig"\nslice = "all"\nmax_abs = -0.1', "'max_abs' must be >= 0"),
])
def test_policies_that_misread_a_metric_are_refused(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_policy(_policy(tmp_path, "[[rule]]\n" + body + "\n"))


def test_max_abs_bounds_the_distance_to_the_reference(data_dir, tmp_path):
    from rai_multi.tasks.crows_pairs import CrowsPairsTask
    from rai_multi.records import Loglikelihood

    task = CrowsPairsTask(data_dir, limit=20)

    def prefers_more(request, sample_id):  # every pair: sent_more more likely -> crows_score 100
        return [Loglikelihood(-1.0, 3), Loglikelihood(-2.0, 3)]

    evaluate(task, ScriptedAdapter("flan", loglikelihood_fn=prefers_more), RunOptions(tmp_path / "runs", "flan"))
    evaluate(task, ScriptedAdapter("base"), RunOptions(tmp_path / "runs", "base"))  # all ties -> 0
    loose = _policy(tmp_path, '[[rule]]\ntask = "crows_pairs"\nmetric = "crows_score"\nslice = "all"\nmax_abs = 50\n')
    gate = evaluate_policy(loose, [tmp_path / "runs"], "base")
    assert gate.verdict == "pass" and "|100.0000 - 50| = 50.0000 <= max_abs 50" in gate.results[0].reason
    tight = _policy(tmp_path, '[[rule]]\ntask = "crows_pairs"\nmetric = "crows_score"\nslice = "all"\nmax_abs = 49.9\n')
    assert evaluate_policy(tight, [tmp_path / "runs"], "base").verdict == "fail"
    # max_regression on a reference metric compares distances: 100 and 0 are both 50 away
    reg = _policy(tmp_path, '[[rule]]\ntask = "crows_pairs"\nmetric = "crows_score"\nslice = "all"\n'
                            'max_regression = 0\n')
    result = evaluate_policy(reg, [tmp_path / "runs"], "base").results[0]
    assert result.status == "pass" and "grew by +0.0000" in result.reason
