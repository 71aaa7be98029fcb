"""MGSM end to end: loader on the real files, prompts, scoring, CLI, cache and resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rai_multi.cli.main import app
from rai_multi.data.mgsm import exemplars_path, load_exemplars, load_mgsm_tsv, tsv_path
from rai_multi.errors import DataError
from rai_multi.languages import MGSM_LANGS
from rai_multi.models.scripted import ScriptedAdapter
from rai_multi.runner import RunOptions, evaluate
from rai_multi.store import RunDir
from rai_multi.tasks.mgsm import MgsmTask
from helpers import find_run

runner = CliRunner()


def metric(run_dir: Path, name: str, slice_name: str) -> dict:
    doc = json.loads((run_dir / "metrics.json").read_text())
    found = [m for m in doc["metrics"] if m["name"] == name and m["slice"] == slice_name]
    assert len(found) == 1, (name, slice_name)
    return found[0]


def test_loader_reads_all_eleven_real_files(data_dir):
    for code in MGSM_LANGS:
        items = load_mgsm_tsv(tsv_path(data_dir, code), code)
        assert len(items) == 250, code
        assert all(isinstance(i.answer, float) for i in items)
        assert len({i.id for i in items}) == 250
    en = load_mgsm_tsv(tsv_path(data_dir, "en"), "en")
    assert en[146].answer == 2125.0 and en[146].answer_raw == "2,125"


def test_malformed_row_names_file_and_line(tmp_path):
    bad = tmp_path / "mgsm_en.tsv"
    bad.write_text("What is 1+1?\t2\nno tab on this line\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"mgsm_en.tsv:2: expected"):
        load_mgsm_tsv(bad, "en")
    bad.write_text("What is 1+1?\ttwo\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"mgsm_en.tsv:1: answer 'two' is not a number"):
        load_mgsm_tsv(bad, "en")


def test_bom_is_dropped_and_non_utf8_names_the_line(tmp_path):
    tsv = tmp_path / "mgsm_en.tsv"
    tsv.write_bytes("\ufeffWhat is 1+1?\t2\r\nWhat is 2+2?\t4\r\n".encode("utf-8"))
    items = load_mgsm_tsv(tsv, "en")
    assert [(i.question, i.answer) for i in items] == [("What is 1+1?", 2.0), ("What is 2+2?", 4.0)]
    tsv.write_bytes(b"What is 1+1?\t2\nCaf\xe9?\t3\n")
    with pytest.raises(DataError, match=r"mgsm_en.tsv:2: not UTF-8"):
        load_mgsm_tsv(tsv, "en")


@pytest.mark.parametrize(
    "body,message",
    [
        ("MGSM_EXEMPLARS = {'en': [1]}", r"MGSM_EXEMPLARS\['en'\] must map"),
        ("MGSM_EXEMPLARS = {'en': {'a': {'q': 'x', 'a': 'y'}}}", "keys must be numbers"),
        ("MGSM_EXEMPLARS = {'en': {'1': {'x': 1}}}", r"\['1'\]: needs string fields 'q' and 'a'"),
        ("MGSM_EXEMPLARS = {'en': {'1': {'q': 'x', 'a': 'y'}, '2': {'q': 'x', 'a': 'y'}}}", "2 exemplars, expected 1"),
        ("MGSM_EXEMPLARS = dict(en=1)", "is not a plain literal"),
    ],
)
def test_malformed_exemplars_are_data_errors(body, message, tmp_path):
    src = tmp_path / "exemplars.py"
    src.write_text(f"EXEMPLAR_NUMBER_ANSWERS = [3]\n{body}\n", encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_exemplars(src)


def test_language_missing_from_exemplars_is_a_data_error(data_dir, tmp_path):
    folder = tmp_path / "mgsm"
    folder.mkdir()
    (folder / "mgsm_sw.tsv").write_text("Swali?\t3\n", encoding="utf-8")
    (folder / "exemplars.py").write_text(
        "EXEMPLAR_NUMBER_ANSWERS = [3]\nMGSM_EXEMPLARS = {'en': {'1': {'q': 'Question: x', 'a': 'The answer is 3.'}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError, match="no exemplars for sw"):
        MgsmTask(langs=["sw"], data_dir=tmp_path).build_samples()
    assert MgsmTask(langs=["sw"], data_dir=tmp_path, setting="en_cot").build_samples()[0].target == 3.0


def test_exemplars_are_parsed_never_executed(tmp_path):
    marker = tmp_path / "executed"
    src = tmp_path / "exemplars.py"
    src.write_text(
        f"open({str(marker)!r}, 'w').write('x')\n"
        "EXEMPLAR_NUMBER_ANSWERS = [3]\n"
        "MGSM_EXEMPLARS = {'en': {'1': {'q': 'Question: 1+2?', 'a': 'Step-by-Step Answer: The answer is 3.'}}}\n",
        encoding="utf-8",
    )
    parsed = load_exemplars(src)
    assert parsed["en"][0].number == 3.0
    assert not marker.exists()


def test_prompts_follow_the_exemplar_format(data_dir):
    native = MgsmTask(langs=["ja"], data_dir=data_dir, limit=1).build_samples()[0].request.prompt
    assert native.count("問題：") == 9 and native.endswith("ステップごとの答え：")
    assert "\n\n問題：" in native and "問題： " not in native
    en_cot = MgsmTask(langs=["bn"], data_dir=data_dir, setting="en_cot", limit=1).build_samples()[0]
    assert en_cot.request.prompt.startswith("Question: Roger")
    assert en_cot.request.prompt.endswith("Step-by-Step Answer:")
    zero = MgsmTask(langs=["sw"], data_dir=data_dir, setting="zero_shot_cot", limit=1).build_samples()[0]
    assert zero.request.prompt.startswith("Swali: ") and zero.request.prompt.endswith("Hebu tufikirie hatua kwa hatua.")
    direct = MgsmTask(langs=["fr"], data_dir=data_dir, setting="direct", limit=1).build_samples()[0]
    assert "Réponse : 11\n\n" in direct.request.prompt and direct.request.max_new_tokens == 16


def _scripted_correct_first(n_correct: dict[str, int]) -> ScriptedAdapter:
    """Answers correctly for the first n_correct[lang] items of each language, wrongly after."""

    def generate(request, sample_id):
        _, lang, index = sample_id.split("/")
        return ["The answer is 18." if int(index) < n_correct[lang] else "The answer is 999999."]

    return ScriptedAdapter("scripted", generate_fn=generate)


def test_language_slices_and_macro_averages_by_hand(data_dir, tmp_path):
    # Gold of item 0 is 18 in every language file (Janet's ducks); items 1-3 are not 18.
    task = MgsmTask(langs=["en", "bn", "sw"], data_dir=data_dir, limit=4, limit_rule="head")
    golds = {s.id: s.target for s in task.build_samples()}
    assert golds["mgsm/en/0"] == 18 and golds["mgsm/bn/1"] != 18
    run = evaluate(task, _scripted_correct_first({"en": 2, "bn": 1, "sw": 0}), RunOptions(tmp_path, "s"))
    # en: item 0 right (gold 18), item 1 says 18 but gold is 3 -> 1/4 right; sw: none right
    assert metric(run, "accuracy", "lang=en")["value"] == pytest.approx(0.25)
    assert metric(run, "accuracy", "lang=bn")["value"] == pytest.approx(0.25)
    assert metric(run, "accuracy", "lang=sw")["value"] == 0.0
    assert metric(run, "accuracy", "tier=low")["value"] == pytest.approx(0.125)  # (bn + sw) / 2
    assert metric(run, "accuracy", "all")["value"] == pytest.approx(0.5 / 3)
    assert metric(run, "accuracy", "all_excl_en")["value"] == pytest.approx(0.125)  # the paper's average: no en
    assert metric(run, "accuracy", "all_excl_en")["n"] == 8
    ci = metric(run, "accuracy", "lang=en")["ci"]
    assert ci[0] <= 0.25 <= ci[1] and ci[0] < ci[1]
    # English phrase: found by the phrase in en; in bn/sw native_cot only the native
    # phrase counts, so the same sentence is a last-number fallback there.
    assert metric(run, "extraction_phrase_rate", "lang=en")["value"] == 1.0
    assert metric(run, "extraction_fallback_rate", "lang=bn")["value"] == 1.0


def test_self_consistency_majority_vote(data_dir, tmp_path):
    def generate(request, sample_id):
        assert request.num_samples == 3 and request.do_sample
        return ["The answer is 5.", "The answer is 18.", "So 9 + 9 = 18."]

    task = MgsmTask(langs=["en"], data_dir=data_dir, limit=1, samples=3, limit_rule="head")
    run = evaluate(task, ScriptedAdapter("sc", generate_fn=generate), RunOptions(tmp_path, "sc"))
    assert metric(run, "maj@1", "lang=en")["value"] == 0.0
    assert metric(run, "maj@3", "lang=en")["value"] == 1.0
    row = RunDir(run).read_samples()[0]
    assert row["extractions"] == ["phrase", "phrase", "fallback"] and row["majority"] == 18.0


def _write_predictions(path: Path, data_dir: Path, empty: bool = False) -> None:
    rows = []
    for code in MGSM_LANGS:
        for i, line in enumerate(tsv_path(data_dir, code).read_text(encoding="utf-8").splitlines()):
            gold = line.split("\t")[1]
            rows.append({"id": f"mgsm/{code}/{i}", "output": "" if empty else gold})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_score_gold_predictions_is_one_and_empty_is_zero(data_dir, tmp_path):
    gold = tmp_path / "gold.jsonl"
    _write_predictions(gold, data_dir)
    result = runner.invoke(app, ["score", "mgsm", "-p", str(gold), "--data-dir", str(data_dir), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    run = find_run(tmp_path / "runs" / "gold", "mgsm-native_cot")
    for code in MGSM_LANGS:
        m = metric(run, "accuracy", f"lang={code}")
        assert m["value"] == 1.0 and m["n"] == 250 and m["ci"] == [1.0, 1.0]
    assert metric(run, "accuracy", "tier=low")["value"] == 1.0
    empty = tmp_path / "empty.jsonl"
    _write_predictions(empty, data_dir, empty=True)
    result = runner.invoke(app, ["score", "mgsm", "-p", str(empty), "--data-dir", str(data_dir), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    run = find_run(tmp_path / "runs" / "empty", "mgsm-native_cot")
    for code in MGSM_LANGS:
        assert metric(run, "accuracy", f"lang={code}")["value"] == 0.0
    assert metric(run, "extraction_none_rate", "all")["value"] == 1.0


@pytest.mark.parametrize("fixture", ["tiny_seq2seq", "tiny_causal"])
def test_eval_end_to_end_on_tiny_models_then_from_cache(fixture, request, data_dir, tmp_path):
    model = request.getfixturevalue(fixture)
    args = ["eval", "mgsm", "--model", str(model), "--langs", "en,bn", "--limit", "2", "--limit-rule", "head",
            "--max-new-tokens", "8", "--data-dir", str(data_dir), "--out", str(tmp_path), "--name", "tiny"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    run = RunDir(find_run(tmp_path / "tiny", "mgsm-native_cot"))
    manifest = run.read_manifest()
    assert manifest["status"] == "complete" and manifest["answers"] == {"from_cache": 0, "generated": 4}
    assert manifest["model"]["fingerprint"].startswith("sha256:")
    assert set(manifest["data_files"]) == {str(tsv_path(data_dir, "en")), str(tsv_path(data_dir, "bn")), str(exemplars_path(data_dir))}
    rows = run.read_samples()
    assert [r["id"] for r in rows] == ["mgsm/en/0", "mgsm/en/1", "mgsm/bn/0", "mgsm/bn/1"]
    assert all({"prompt_hash", "outputs", "extracted", "extraction", "gold", "correct", "tier"} <= set(r) for r in rows)
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert run.read_manifest()["answers"] == {"from_cache": 4, "generated": 0}
    assert run.read_samples() == rows  # greedy + cache: identical rows


def test_killed_run_resumes_without_losing_or_duplicating(data_dir, tmp_path):
    calls = {"n": 0}

    def flaky(request, sample_id):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return ["The answer is 1."]

    task = MgsmTask(langs=["en", "sw"], data_dir=data_dir, limit=4)
    adapter = ScriptedAdapter("flaky", generate_fn=flaky)
    adapter.cacheable = True
    options = RunOptions(tmp_path, "flaky", chunk_size=2)
    with pytest.raises(KeyboardInterrupt):
        evaluate(task, adapter, options)
    model_dir = tmp_path / "flaky"
    # the unfinished run was built in a staging folder, dropped on the interrupt: nothing
    # that looks like a run (finished or not) is left, the answers are in the cache
    assert list(model_dir.iterdir()) == []
    calls["n"] = -100  # healthy again
    run = RunDir(evaluate(task, adapter, options))
    manifest = run.read_manifest()
    assert manifest["status"] == "complete"
    assert manifest["answers"] == {"from_cache": 4, "generated": 4}  # two chunks of 2 were committed
    ids = [r["id"] for r in run.read_samples()]
    assert len(ids) == len(set(ids)) == 8


BAD_INPUTS = [
    (["eval", "mgsm", "--model", "MODEL", "--langs", "xx"], "unknown language code 'xx'"),
    (["eval", "mgsm", "--model", "MODEL", "--langs", "ko"], "is not part of this task"),
    (["eval", "mgsm", "--model", "/no/such/model", "--langs", "en"], "model path does not exist"),
    (["eval", "mgsm", "--model", "MODEL", "--data-dir", "/no/such/dir"], "data directory does not exist"),
    (["eval", "mgsm", "--model", "MODEL", "--langs", "en", "--data-dir", "BADDATA"], "mgsm_en.tsv:1: expected"),
    (["eval", "mgsm", "--model", "MODEL", "--setting", "cot"], "'setting' must be one of native_cot"),
    (["eval", "mgsm", "--model", "MODEL", "--langs", "en", "--batch-size", "0"], "--batch-size must be a positive"),
    (["eval", "mgsm", "--model", "MODEL", "--langs", "en", "--batch-size", "many"], "or 'auto'; got 'many'"),
    (["score", "mgsm", "-p", "BADPRED", "--langs", "en"], "not valid JSON"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS)
def test_bad_input_is_one_line_nonzero_no_traceback(args, message, tiny_seq2seq, data_dir, tmp_path):
    bad_data = tmp_path / "bad" / "mgsm"
    bad_data.mkdir(parents=True)
    (bad_data / "mgsm_en.tsv").write_text("only one field\n", encoding="utf-8")
    (bad_data / "exemplars.py").write_text("", encoding="utf-8")
    bad_pred = tmp_path / "bad.jsonl"
    bad_pred.write_text('{"id": "mgsm/en/0", "output": "1"}\n{not json\n', encoding="utf-8")
    subst = {"MODEL": str(tiny_seq2seq), "BADDATA": str(tmp_path / "bad"), "BADPRED": str(bad_pred)}
    argv = [subst.get(a, a) for a in args] + ["--out", str(tmp_path / "runs")]
    env = {"RAI_MULTI_DATA": str(data_dir), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "rai_multi.cli.main", *argv], capture_output=True, text=True, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "runs").rglob("metrics.json"))
