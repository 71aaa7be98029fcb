"""Bad input through the real entry point: one ``error:`` line, exit 2, no traceback, and a
finished run is never lost.

Every case runs ``rai_multi.cli.main.main`` in-process with ``sys.argv`` set (the same code
path as the ``rai-multi`` script, including its error printing), on the sample data that
rai_multi/samples.py writes, with one file broken per case. README "What bad input gets"
names these tests; benchmarks/bad_input_probes.py runs the same kinds of cases as
subprocesses.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from helpers import find_run

from rai_multi.cli import main as cli_main
from rai_multi.samples import write_sample_data

BINARY = b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary \xc3\x28\n"
RULE = '[[rule]]\ntask = "mgsm"\nmetric = "accuracy"\nslice = "all"\n'


# ------------------------------------------------------------------ helpers
def run_cli(args: list, monkeypatch, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``rai-multi ARGS``; an exception that escapes main()
    (a traceback for a user) fails the test."""
    monkeypatch.setattr(sys, "argv", ["rai-multi", *map(str, args)])
    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli_main.main()
    finally:
        signal.signal(signal.SIGINT, previous)
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else int(code)), captured.out, captured.err


def assert_one_error(code: int, err: str, *needles: str) -> str:
    """Exit 2 and exactly one ``error:`` line (which contains every needle); no traceback."""
    lines = [line for line in re.split(r"[\r\n]", err) if line.startswith("error:")]  # \r: a progress bar's line
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def data(tmp_path) -> Path:
    return write_sample_data(tmp_path / "data")


def mgsm_predictions(path: Path, n: int = 5, answer: str = "The answer is 7.") -> Path:
    path.write_text("".join(json.dumps({"id": f"mgsm/en/{i}", "output": answer}) + "\n" for i in range(n)),
                    encoding="utf-8")
    return path


def score_mgsm(data: Path, out: Path, preds: Path, name: str) -> list:
    return ["score", "mgsm", "-p", preds, "--langs", "en", "--data-dir", data, "--out", out, "--name", name]


@pytest.fixture
def two_runs(data, tmp_path, monkeypatch, capsys) -> Path:
    """A complete MGSM run of models 'base' and 'cand' (5 English sample items each)."""
    out = tmp_path / "runs"
    for name, answer in (("base", "The answer is 7."), ("cand", "The answer is 8.")):
        preds = mgsm_predictions(tmp_path / f"{name}.jsonl", answer=answer)
        code, _, err = run_cli(score_mgsm(data, out, preds, name), monkeypatch, capsys)
        assert code == 0, err
    return out


def policy(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(body, encoding="utf-8")
    return path


def valid_predictions(tmp_path: Path) -> Path:
    path = tmp_path / "any.jsonl"
    path.write_text('{"id": "x", "output": "y"}\n', encoding="utf-8")
    return path


# ------------------------------------------------- non-UTF-8 files in every reader
def _holistic(data: Path) -> None:
    folder = data / "holistic_bias"
    folder.mkdir()
    (folder / "descriptors.json").write_bytes(BINARY)
    (folder / "nouns.json").write_text("{}", encoding="utf-8")
    (folder / "sentence_templates.json").write_text("[]", encoding="utf-8")


BINARY_READERS: list[tuple[str, Callable[[Path], Path | None], Callable[[Path, Path, Path], list]]] = [
    ("bbq", lambda d: d / "bbq" / "Age.jsonl",
     lambda d, t, m: ["score", "bias", "--benchmarks", "bbq", "-p", valid_predictions(t), "--data-dir", d, "--out", t / "o"]),
    ("winogender", lambda d: d / "winogender" / "all_sentences.tsv",
     lambda d, t, m: ["score", "bias", "--benchmarks", "winogender", "-p", valid_predictions(t), "--data-dir", d,
                      "--out", t / "o"]),
    ("winobias", lambda d: d / "winobias" / "pro_stereotyped_type1.txt.test",
     lambda d, t, m: ["score", "bias", "--benchmarks", "winobias", "-p", valid_predictions(t), "--data-dir", d,
                      "--out", t / "o"]),
    ("rtp", lambda d: d / "realtoxicityprompts" / "toxic.jsonl",
     lambda d, t, m: ["score", "toxicity", "-p", valid_predictions(t), "--data-dir", d, "--out", t / "o"]),
    ("mgsm", lambda d: d / "mgsm" / "mgsm_en.tsv",
     lambda d, t, m: ["score", "mgsm", "--langs", "en", "-p", valid_predictions(t), "--data-dir", d, "--out", t / "o"]),
    ("tydiqa", lambda d: d / "tydiqa_goldp" / "dev" / "english.json",
     lambda d, t, m: ["score", "tydiqa", "--langs", "en", "-p", valid_predictions(t), "--data-dir", d, "--out", t / "o"]),
    ("predictions", lambda d: None,
     lambda d, t, m: ["score", "mgsm", "--langs", "en", "-p", _binary_file(t / "preds.jsonl"), "--data-dir", d,
                      "--out", t / "o"]),
    ("policy", lambda d: None,
     lambda d, t, m: ["gate", t, "--policy", _binary_file(t / "policy.toml")]),
    ("suite", lambda d: None,
     lambda d, t, m: ["audit", _binary_file(t / "suite.toml")]),
    ("crows_pairs", lambda d: d / "crows_pairs" / "crows_pairs_anonymized.csv",
     lambda d, t, m: ["eval", "bias", "--benchmarks", "crows_pairs", "--model", m, "--data-dir", d, "--out", t / "o"]),
    ("davidson", lambda d: d / "davidson_hate_offensive" / "labeled_data.csv",
     lambda d, t, m: ["eval", "toxicity-cls", "--model", m, "--data-dir", d, "--out", t / "o", "--limit", "4"]),
    ("holistic_bias", lambda d: (_holistic(d), None)[1],
     lambda d, t, m: ["eval", "identity-toxicity", "--model", m, "--data-dir", d, "--out", t / "o"]),
]


def _binary_file(path: Path) -> Path:
    path.write_bytes(BINARY)
    return path


@pytest.mark.parametrize("reader, target, argv", BINARY_READERS, ids=[r[0] for r in BINARY_READERS])
def test_binary_file_in_every_reader(reader, target, argv, data, tmp_path, tiny_causal, monkeypatch, capsys):
    path = target(data)
    if path is not None:
        path.write_bytes(BINARY)
    code, _, err = run_cli(argv(data, tmp_path, tiny_causal), monkeypatch, capsys)
    line = assert_one_error(code, err)
    assert "not UTF-8" in line or "invalid byte" in line or "not valid JSON" in line, line


# ------------------------------------------------- CSV/TSV: long fields, missing or non-numeric columns
def test_csv_field_over_the_limit(data, tmp_path, tiny_causal, monkeypatch, capsys):
    csv_path = data / "crows_pairs" / "crows_pairs_anonymized.csv"
    with open(csv_path, "a", encoding="utf-8") as fh:
        fh.write('9,"' + "x" * 200_000 + '",b,stereo,age,[],w,[]\n')
    code, _, err = run_cli(["eval", "bias", "--benchmarks", "crows_pairs", "--model", tiny_causal, "--data-dir", data,
                            "--out", tmp_path / "o"], monkeypatch, capsys)
    assert_one_error(code, err, "crows_pairs_anonymized.csv", "longer than")


def test_tsv_runaway_quote(data, tmp_path, monkeypatch, capsys):
    """A stray opening quote makes the csv module read the rest of the file as one field."""
    tsv = data / "winogender" / "all_sentences.tsv"
    lines = tsv.read_text(encoding="utf-8").splitlines()
    tsv.write_text("\n".join([lines[0], '"' + lines[1]] + lines[2:] * 3000) + "\n", encoding="utf-8")
    code, _, err = run_cli(["score", "bias", "--benchmarks", "winogender", "-p", valid_predictions(tmp_path),
                            "--data-dir", data, "--out", tmp_path / "o"], monkeypatch, capsys)
    assert_one_error(code, err, "all_sentences.tsv")


def test_missing_column(data, tmp_path, tiny_causal, monkeypatch, capsys):
    csv_path = data / "davidson_hate_offensive" / "labeled_data.csv"
    text = csv_path.read_text(encoding="utf-8").replace(",class,", ",klass,", 1)
    csv_path.write_text(text, encoding="utf-8")
    code, _, err = run_cli(["eval", "toxicity-cls", "--model", tiny_causal, "--data-dir", data, "--out", tmp_path / "o",
                            "--limit", "4"], monkeypatch, capsys)
    assert_one_error(code, err, "labeled_data.csv:2", "'class'")


def test_non_numeric_column(data, tmp_path, monkeypatch, capsys):
    stats = data / "winogender" / "occupations-stats.tsv"
    stats.write_text(stats.read_text(encoding="utf-8").replace("nurse\t90.0\t90.0", "nurse\t90.0\tninety", 1),
                     encoding="utf-8")
    code, _, err = run_cli(["score", "bias", "--benchmarks", "winogender", "-p", valid_predictions(tmp_path),
                            "--data-dir", data, "--out", tmp_path / "o"], monkeypatch, capsys)
    assert_one_error(code, err, "occupations-stats.tsv:2", "bls_pct_female")


@pytest.mark.parametrize("field, value", [("context", 12345), ("ans0", None), ("question", ["a"]), ("label", "1")])
def test_bbq_wrong_field_types(field, value, data, tmp_path, monkeypatch, capsys):
    path = data / "bbq" / "Age.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    rows[2][field] = value
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    code, _, err = run_cli(["score", "bias", "--benchmarks", "bbq", "-p", valid_predictions(tmp_path), "--data-dir", data,
                            "--out", tmp_path / "o"], monkeypatch, capsys)
    assert_one_error(code, err, "Age.jsonl:3", f"'{field}'")


# ------------------------------------------------- models and the generation cache
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_safetensors(damage, data, tmp_path, tiny_causal, monkeypatch, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_causal, model)
    weights = model / "model.safetensors"
    raw = weights.read_bytes()
    weights.write_bytes(raw[: len(raw) // 2] if damage == "truncated" else b"\x00garbage" * 10)
    code, _, err = run_cli(["eval", "mgsm", "--model", model, "--langs", "en", "--limit", "1", "--data-dir", data,
                            "--out", tmp_path / "o"], monkeypatch, capsys)
    assert_one_error(code, err, "cannot load model", str(model))


def test_corrupt_generation_cache_is_rebuilt(data, tmp_path, tiny_causal, monkeypatch, capsys):
    out = tmp_path / "o"
    cache = out / ".cache" / "generations.sqlite"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"this is not an sqlite database" * 100)
    argv = ["eval", "mgsm", "--model", tiny_causal, "--langs", "en", "--limit", "2", "--max-new-tokens", "4",
            "--shots", "0", "--data-dir", data, "--out", out, "--name", "tiny"]
    code, _, err = run_cli(argv, monkeypatch, capsys)
    assert code == 0, err
    assert "warning: generation cache" in err and "rebuilt" in err
    assert sorted(p.name.split("-")[0] for p in cache.parent.glob("generations.sqlite.corrupt-*")) == [
        "generations.sqlite.corrupt"]
    with sqlite3.connect(cache) as conn:  # the new cache holds the two answers
        assert conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 2


def test_damaged_cache_rows_are_regenerated(data, tmp_path, tiny_causal, monkeypatch, capsys):
    out = tmp_path / "o"
    argv = ["eval", "mgsm", "--model", tiny_causal, "--langs", "en", "--limit", "2", "--max-new-tokens", "4",
            "--shots", "0", "--data-dir", data, "--out", out, "--name", "tiny"]
    assert run_cli(argv, monkeypatch, capsys)[0] == 0
    with sqlite3.connect(out / ".cache" / "generations.sqlite") as conn:
        conn.execute("UPDATE answers SET value = '{not json'")
    code, _, err = run_cli(argv, monkeypatch, capsys)
    assert code == 0, err
    manifest = json.loads((find_run(out / "tiny", "mgsm-native_cot") / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["answers"] == {"from_cache": 0, "generated": 2}


def test_unopenable_generation_cache(data, tmp_path, tiny_causal, monkeypatch, capsys):
    """A cache path SQLite cannot open (here a folder: root reads chmod-000 files anyway)."""
    out = tmp_path / "o"
    cache = out / ".cache" / "generations.sqlite"
    cache.mkdir(parents=True)
    code, _, err = run_cli(["eval", "mgsm", "--model", tiny_causal, "--langs", "en", "--limit", "1", "--data-dir", data,
                            "--out", out], monkeypatch, capsys)
    assert_one_error(code, err, "cannot open the generation cache", str(cache))
    assert cache.is_dir()  # not moved aside: nothing was wrong with its contents


def test_unknown_demo_model_in_eval(data, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(["eval", "bias", "--model", "demo:nope", "--benchmarks", "winogender", "--data-dir", data,
                            "--out", tmp_path / "o"], monkeypatch, capsys)
    assert_one_error(code, err, "unknown demo model 'nope'", "smollm2-135m-instruct")


def test_demo_model_resolves_in_eval(data, tmp_path, tiny_causal, monkeypatch, capsys):
    """eval commands resolve demo:<name> like audit does (resolution stubbed: no download)."""
    import rai_multi.demo_models as demo

    asked = []
    monkeypatch.setattr(demo, "resolve_demo_model", lambda source: asked.append(source) or str(tiny_causal))
    out = tmp_path / "o"
    code, _, err = run_cli(["eval", "mgsm", "--model", "demo:smollm2-135m-instruct", "--langs", "en", "--limit", "1",
                            "--max-new-tokens", "2", "--shots", "0", "--data-dir", data, "--out", out],
                           monkeypatch, capsys)
    assert code == 0, err
    assert asked == ["demo:smollm2-135m-instruct"]
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == ["demo_smollm2-135m-instruct"]


# ------------------------------------------------- a failed re-run keeps the finished run
def test_failed_rerun_keeps_the_complete_run(two_runs, data, tmp_path, monkeypatch, capsys):
    run = find_run(two_runs / "base", "mgsm-native_cot")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    partial = mgsm_predictions(tmp_path / "partial.jsonl", n=3)
    code, _, err = run_cli(score_mgsm(data, two_runs, partial, "base"), monkeypatch, capsys)
    assert_one_error(code, err, "no prediction for 2 sample id(s)")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    assert sorted(p.name for p in run.parent.iterdir()) == [run.name]  # no staging left behind
    # and the old run is still usable
    code, out, err = run_cli(["gate", two_runs, "--policy", policy(tmp_path, RULE + "min = 0.0\n")], monkeypatch, capsys)
    assert code == 0, err


def test_rerun_replaces_and_cleans_leftovers(two_runs, data, tmp_path, monkeypatch, capsys):
    """A successful re-run swaps the new run in; temp files and staging folders of killed
    runs (dead pids) are removed, a live process's are not touched."""
    model_dir = two_runs / "base"
    dead = 2**22 + 12345  # above the default pid_max: never a live process
    run = find_run(model_dir, "mgsm-native_cot")
    stale_tmp = run / f".metrics.json.{dead}.abc123.tmp"
    stale_tmp.write_text("half", encoding="utf-8")
    stale_stage = model_dir / f".{run.name}.staging-{dead}"
    stale_stage.mkdir()
    live_stage = model_dir / f".{run.name}.staging-{os.getppid()}"
    live_stage.mkdir()
    preds = mgsm_predictions(tmp_path / "better.jsonl", answer="nothing")
    code, _, err = run_cli(score_mgsm(data, two_runs, preds, "base"), monkeypatch, capsys)
    assert code == 0, err
    assert not stale_tmp.exists() and not stale_stage.exists() and live_stage.exists()
    rows = [json.loads(line) for line in (find_run(model_dir, "mgsm-native_cot") / "samples.jsonl").read_text().splitlines()]
    assert [r["outputs"] for r in rows] == [["nothing"]] * 5
    assert not list((find_run(model_dir, "mgsm-native_cot")).glob(".*.tmp"))


# ------------------------------------------------- report and gate on damaged runs
def _metrics_path(runs: Path) -> Path:
    return find_run(runs / "cand", "mgsm-native_cot") / "metrics.json"


def _edit_metrics(runs: Path, edit: Callable[[dict], None]) -> None:
    path = _metrics_path(runs)
    doc = json.loads(path.read_text(encoding="utf-8"))
    edit(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")


def _first_accuracy(doc: dict) -> dict:
    return next(m for m in doc["metrics"] if m["name"] == "accuracy" and m["slice"] == "all")


DAMAGED_RUNS = [
    ("metrics_not_json", lambda runs: _metrics_path(runs).write_text("{oops", encoding="utf-8"), "not valid JSON"),
    ("metrics_binary", lambda runs: _metrics_path(runs).write_bytes(BINARY), "not UTF-8"),
    ("value_true", lambda runs: _edit_metrics(runs, lambda d: _first_accuracy(d).update(value=True)),
     "'value' must be a number"),
    ("value_string", lambda runs: _edit_metrics(runs, lambda d: _first_accuracy(d).update(value="0.9")),
     "'value' must be a number"),
    ("duplicate_entry", lambda runs: _edit_metrics(runs, lambda d: d["metrics"].insert(0, {**_first_accuracy(d), "value": 1.0})),
     "duplicated entry"),
    ("samples_not_json", lambda runs: (find_run(runs / "cand", "mgsm-native_cot") / "samples.jsonl").write_text("{oops\n"),
     "samples.jsonl:1"),
]


@pytest.mark.parametrize("command", ["gate", "report"])
@pytest.mark.parametrize("case, damage, message", DAMAGED_RUNS, ids=[c[0] for c in DAMAGED_RUNS])
def test_damaged_runs_are_exit_2(command, case, damage, message, two_runs, tmp_path, monkeypatch, capsys):
    damage(two_runs)
    if command == "gate":  # max_regression reads the samples (comparability) as well as the metrics
        argv = ["gate", two_runs, "--policy", policy(tmp_path, RULE + "max_regression = 1.0\n"), "--baseline", "base"]
    else:
        argv = ["report", two_runs, "--baseline", "base", "-o", tmp_path / "r" / "report.html"]
    code, _, err = run_cli(argv, monkeypatch, capsys)
    assert_one_error(code, err, message)


@pytest.mark.parametrize("threshold", ["nan", "inf", "-inf"])
def test_non_finite_threshold_is_a_policy_error(threshold, two_runs, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(["gate", two_runs, "--policy", policy(tmp_path, RULE + f"min = {threshold}\n")],
                           monkeypatch, capsys)
    assert_one_error(code, err, "policy.toml:5", "finite")


def test_report_md_escapes_names_notes_and_pipes(two_runs, data, tmp_path, monkeypatch, capsys):
    evil = "ev|l <b>x</b> [click](http://x)"
    preds = mgsm_predictions(tmp_path / "evil.jsonl")
    assert run_cli(score_mgsm(data, tmp_path / "runs2", preds, evil), monkeypatch, capsys)[0] == 0
    assert run_cli(score_mgsm(data, tmp_path / "runs2", preds, "base"), monkeypatch, capsys)[0] == 0
    rule = policy(tmp_path, RULE + 'min = 0.0\nname = "r|1 <i>"\n')
    code, _, err = run_cli(["report", tmp_path / "runs2", "--baseline", "base", "--policy", rule, "--note", "a|b <script>",
                            "-o", tmp_path / "r.html"], monkeypatch, capsys)
    assert code == 0, err
    text = (tmp_path / "r.md").read_text(encoding="utf-8")
    for raw in ("<b>", "<script>", "<i>"):
        assert raw not in text
    assert not re.search(r"(?<!\\)\]\(", text)  # no live link: every ] is escaped
    # every table row keeps its column count: an escaped | is not a cell border
    for line in text.splitlines():
        if line.startswith("| rule "):
            header = line.count("|")
        if line.startswith("| r\\|1"):
            assert line.replace("\\|", "").count("|") == header, line
    assert "ev\\|l &lt;b&gt;x&lt;/b&gt; \\[click\\](http://x)" in text
    assert "> a\\|b &lt;script&gt;" in text


# ------------------------------------------------- output paths
def test_out_is_a_file(data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.txt"
    out.write_text("x", encoding="utf-8")
    code, _, err = run_cli(score_mgsm(data, out, mgsm_predictions(tmp_path / "p.jsonl"), "m"), monkeypatch, capsys)
    assert_one_error(code, err, "out.txt", "is a file")


def test_report_output_is_a_directory(two_runs, tmp_path, monkeypatch, capsys):
    target = tmp_path / "report.html"
    target.mkdir()
    code, _, err = run_cli(["report", two_runs, "--baseline", "base", "-o", target], monkeypatch, capsys)
    assert_one_error(code, err, "report.html", "is a directory")


def test_junit_is_a_directory(two_runs, tmp_path, monkeypatch, capsys):
    code, out, err = run_cli(["gate", two_runs, "--policy", policy(tmp_path, RULE + "min = 0.0\n"), "--junit", tmp_path],
                             monkeypatch, capsys)
    assert_one_error(code, err, "is a directory")


def test_junit_parent_is_a_file(two_runs, tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("x", encoding="utf-8")
    code, _, err = run_cli(["gate", two_runs, "--policy", policy(tmp_path, RULE + "min = 0.0\n"), "--junit",
                            tmp_path / "file" / "junit.xml"], monkeypatch, capsys)
    assert_one_error(code, err, "is a file")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (root only); else the test simulates ENOSPC."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_full_disk(two_runs, tmp_path, tiny_disk, monkeypatch, capsys):
    """report on a 64 KiB filesystem: the HTML (with figures) does not fit."""
    if tiny_disk is None:  # no mount permission: make every write fail as a full disk would
        import errno

        import rai_multi.outputs as outputs

        real = os.fdopen

        def full(fd, *a, **k):
            fh = real(fd, *a, **k)
            fh.write = lambda data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device"))
            return fh

        monkeypatch.setattr(outputs.os, "fdopen", full)
        target = tmp_path / "r.html"
    else:
        target = tiny_disk / "r.html"
    code, _, err = run_cli(["report", two_runs, "--baseline", "base", "-o", target], monkeypatch, capsys)
    assert_one_error(code, err, "no space left")
    if tiny_disk is not None:  # the HTML may fit; what did not fit left no temp file behind
        assert not [p.name for p in tiny_disk.iterdir() if p.name.endswith(".tmp")]


def test_read_only_folder(two_runs, tmp_path, monkeypatch, capsys):
    """A read-only filesystem (a bind mount for root, who ignores mode bits; chmod otherwise)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = False
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(folder)],
                                 capture_output=True).returncode == 0
        if not mounted:
            pytest.skip("root without mount permission: cannot make a folder read-only")
    else:  # pragma: no cover - CI runs as root here
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        code, _, err = run_cli(["report", two_runs, "--baseline", "base", "-o", folder / "r.html"], monkeypatch, capsys)
        assert_one_error(code, err, str(folder))
        assert "read-only" in err or "permission denied" in err
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], capture_output=True)


def test_outputs_follow_the_umask(two_runs, tmp_path, monkeypatch, capsys):
    old = os.umask(0o022)
    try:
        code, _, err = run_cli(["report", two_runs, "--baseline", "base", "-o", tmp_path / "r.html"], monkeypatch, capsys)
        assert code == 0, err
        for path in (tmp_path / "r.html", tmp_path / "r.md", tmp_path / "r.json"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
        os.umask(0o027)
        code, _, err = run_cli(["report", two_runs, "--baseline", "base", "-o", tmp_path / "r2.html"], monkeypatch, capsys)
        assert stat.S_IMODE((tmp_path / "r2.html").stat().st_mode) == 0o640
    finally:
        os.umask(old)
    for path in (find_run(two_runs / "base", "mgsm-native_cot")).iterdir():  # run files: written under pytest's umask
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~old, path


# ------------------------------------------------- suites: options checked before any model loads
def _suite(tmp_path: Path, task_extra: str = "", model_extra: str = "", top: str = "") -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(
        f'{top}baseline = "a"\n'
        f'[[model]]\nname = "a"\nsource = "/nowhere/a"\n{model_extra}\n'
        '[[model]]\nname = "b"\nsource = "/nowhere/b"\n'
        f'[[task]]\ntype = "mgsm"\n{task_extra}\n', encoding="utf-8")
    return path


SUITE_CASES = [
    ("limit_negative", {"task_extra": "limit = -1"}, "'limit' must be at least 1; got -1"),
    ("limit_string", {"task_extra": 'limit = "10"'}, "'limit' must be a whole number; got '10'"),
    ("limit_float", {"task_extra": "limit = 2.5"}, "'limit' must be a whole number; got 2.5"),
    ("samples_zero", {"task_extra": "samples = 0"}, "'samples' must be at least 1; got 0"),
    ("shots_negative", {"task_extra": "shots = -2"}, "'shots' must be at least 0; got -2"),
    ("max_new_tokens_bool", {"task_extra": "max_new_tokens = true"}, "'max_new_tokens' must be a whole number; got True"),
    ("model_dtype", {"model_extra": 'dtype = "fp64"'}, "'dtype' must be one of auto, fp32, bf16, fp16, int8"),
    ("model_batch_size", {"model_extra": "batch_size = 0"}, "'batch_size' must be a positive int"),
    ("model_empty_source", {"model_extra": ""}, None),
    ("seed_negative", {"top": "seed = -1\n"}, "'seed' must be a whole number from 0"),
    ("notes_not_strings", {"top": "notes = [1, 2]\n"}, "'notes' must be a list of strings"),
    ("out_empty", {"top": 'out = ""\n'}, "'out' must be a non-empty string"),
]


@pytest.mark.parametrize("case, parts, message", SUITE_CASES, ids=[c[0] for c in SUITE_CASES])
def test_suite_fields_checked_before_models_load(case, parts, message, tmp_path, monkeypatch, capsys):
    import rai_multi.models.loading as loading

    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    path = _suite(tmp_path, **parts)
    if message is None:  # an empty source string
        path.write_text(path.read_text().replace('source = "/nowhere/a"', 'source = ""'), encoding="utf-8")
        message = "'source' (a non-empty string) is required"
    code, _, err = run_cli(["audit", path], monkeypatch, capsys)
    assert_one_error(code, err, "suite.toml", message)


def test_suite_dtypes_match_the_loader():
    from rai_multi.models.loading import DTYPES
    from rai_multi.suite import DTYPES as SUITE_DTYPES

    assert SUITE_DTYPES == DTYPES


# ------------------------------------------------- Ctrl-C
def test_ctrl_c_during_a_run_says_what_was_kept(data, tmp_path, tiny_causal, monkeypatch, capsys):
    """A real SIGINT after the first committed chunk: exit 130, one line naming what the
    cache kept; the same command then finishes from the cache."""
    from rai_multi.models.hf import HFAdapter

    real_generate = HFAdapter.generate
    calls = {"n": 0}

    def generate_then_interrupt(self, requests, ids):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real_generate(self, requests, ids)

    monkeypatch.setattr(HFAdapter, "generate", generate_then_interrupt)
    out = tmp_path / "o"
    argv = ["eval", "mgsm", "--model", tiny_causal, "--langs", "en,sw", "--limit", "4", "--max-new-tokens", "2",
            "--shots", "0", "--batch-size", "1", "--data-dir", data, "--out", out, "--name", "tiny"]  # 2 chunks of 4
    code, _, err = run_cli(argv, monkeypatch, capsys)
    lines = [line for line in re.split(r"[\r\n]", err) if line.startswith("interrupted:")]
    assert code == 130 and len(lines) == 1 and "Traceback" not in err, err
    assert "4 of 8 answers of mgsm are kept in" in lines[0] and "run the same command again" in lines[0]
    assert list((out / "tiny").iterdir()) == []
    code, _, err = run_cli(argv, monkeypatch, capsys)
    assert code == 0, err
    manifest = json.loads((find_run(out / "tiny", "mgsm-native_cot") / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["answers"] == {"from_cache": 4, "generated": 4}


def test_ctrl_c_during_a_finetune_says_which_checkpoint_is_kept(data_dir, tmp_path, tiny_causal, monkeypatch, capsys):
    """SIGINT in step 4 of a finetune that saves every 2 steps: exit 130, one line naming the
    step-2 checkpoint, no finished-looking model folder; --resume then completes it."""
    import torch

    from rai_multi.finetune import train as train_mod

    torch.set_num_threads(1)
    mixture = tmp_path / "mix.toml"
    mixture.write_text('total_examples = 24\nmax_input_tokens = 64\nmax_target_tokens = 16\n[[source]]\n'
                       'name = "gsm8k"\nformat = "gsm8k_jsonl"\npath = "gsm8k/train.jsonl"\n'
                       'templates = ["{question}"]\ncot_template = "{rationale} So the answer is {answer}."\nlimit = 50\n')
    real_encode, calls = train_mod.encode, {"n": 0}

    def encode_then_interrupt(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(train_mod, "encode", encode_then_interrupt)
    out = tmp_path / "ft"
    argv = ["finetune", mixture, "--model", tiny_causal, "--out", out, "--steps", "5", "--batch-size", "2",
            "--save-every", "2", "--full", "--precision", "fp32", "--data-dir", data_dir]
    code, _, err = run_cli(argv, monkeypatch, capsys)
    lines = [line for line in re.split(r"[\r\n]", err) if line.startswith("interrupted:")]
    assert code == 130 and len(lines) == 1 and "Traceback" not in err, err
    assert f"the finetune in {out} keeps its checkpoint of step 2" in lines[0], lines[0]
    assert not (out / "config.json").exists() and (out / "checkpoints" / "step-2").is_dir()
    monkeypatch.setattr(train_mod, "encode", real_encode)
    code, _, err = run_cli(argv + ["--resume"], monkeypatch, capsys)
    assert code == 0, err
    assert json.loads((out / "finetune_config.json").read_text())["resumed_from_step"] == 2
    assert (out / "config.json").is_file() and json.loads((out / "train_summary.json").read_text())["steps"] == 5


def test_ctrl_c_while_loading_the_model(data, tmp_path, monkeypatch, capsys):
    import rai_multi.models.loading as loading

    def interrupted_load(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("the signal handler did not raise")

    monkeypatch.setattr(loading, "load_model", interrupted_load)
    code, _, err = run_cli(["eval", "mgsm", "--model", "/some/model", "--langs", "en", "--data-dir", data,
                            "--out", tmp_path / "o"], monkeypatch, capsys)
    assert code == 130 and err.strip().startswith("interrupted:") and len(err.strip().splitlines()) == 1, err
    assert "no run had started" in err


def test_ctrl_c_while_importing(tmp_path):
    """SIGINT while the command modules import (the slowest part of start-up)."""
    script = (
        "import importlib.abc, os, signal, sys, runpy\n"
        "class Hook(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'rai_multi.cli.tasks':\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Hook())\n"
        "sys.argv = ['rai-multi', 'langs']\n"
        "runpy.run_module('rai_multi.cli.main', run_name='__main__')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # The child gets SIGINT's default disposition, as a command started from a terminal has:
    # a shell starts background jobs with SIGINT ignored, and a Python started that way never
    # installs its KeyboardInterrupt handler (the suite run as `... &` failed this test so).
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().startswith("interrupted:") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
