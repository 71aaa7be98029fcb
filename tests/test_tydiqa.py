"""TyDiQA GoldP: real counts, gold/empty scoring, prompts and truncation, CLI, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rai_multi.cli.main import app
from rai_multi.data.tydiqa import GOLDP_LANGS, load_tydiqa
from rai_multi.errors import ConfigError, DataError
from rai_multi.store import RunDir
from rai_multi.tasks.tydiqa import TydiqaTask

runner = CliRunner()
OFFICIAL_DEV_COUNTS = {"ar": 921, "bn": 113, "en": 440, "fi": 782, "id": 565, "ko": 276, "ru": 812, "sw": 499, "te": 669}


def metric(run: Path, name: str, slice_name: str) -> dict:
    doc = json.loads((run / "metrics.json").read_text())
    return next(m for m in doc["metrics"] if m["name"] == name and m["slice"] == slice_name)


def test_dev_counts_match_official(data_dir):
    for lang, expected in OFFICIAL_DEV_COUNTS.items():
        items, _ = load_tydiqa(data_dir, lang, "dev")
        assert len(items) == expected, lang
        assert {i.lang for i in items} == {lang}


def _predictions(path: Path, data_dir: Path, empty: bool) -> None:
    rows = []
    for lang in GOLDP_LANGS:
        for item in load_tydiqa(data_dir, lang, "dev")[0]:
            rows.append({"id": item.id, "output": "" if empty else item.answers[0]})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_score_first_gold_is_one_and_empty_is_zero(data_dir, tmp_path):
    for empty, expected in ((False, 1.0), (True, 0.0)):
        preds = tmp_path / ("empty.jsonl" if empty else "gold.jsonl")
        _predictions(preds, data_dir, empty)
        result = runner.invoke(app, ["score", "tydiqa", "-p", str(preds), "--data-dir", str(data_dir), "--out", str(tmp_path)])
        assert result.exit_code == 0, result.output
        run = tmp_path / preds.stem / "tydiqa-one_shot"
        for lang, count in OFFICIAL_DEV_COUNTS.items():
            m = metric(run, "squad_em", f"lang={lang}")
            assert m["value"] == expected and m["n"] == count
            assert metric(run, "em", f"lang={lang}")["value"] == expected
        avg = metric(run, "squad_em", "all_excl_en")
        assert avg["value"] == expected and avg["n"] == sum(OFFICIAL_DEV_COUNTS.values()) - 440
    rows = RunDir(tmp_path / "gold" / "tydiqa-one_shot").read_samples()
    assert rows[0]["id"].startswith("arabic-")


def test_one_shot_exemplar_source_and_exclusion(data_dir):
    samples = TydiqaTask(langs=["sw", "bn"], data_dir=data_dir, limit=5).build_samples()
    sw = [s for s in samples if s.lang == "sw"]
    bn = [s for s in samples if s.lang == "bn"]
    assert all(s.meta["exemplar_source"] == "train" for s in sw)  # GoldP train exists for sw
    assert all(s.meta["exemplar_source"] == "dev" and s.meta["exemplar_id"] != s.id for s in bn)
    assert all(s.request.prompt.count("Passage: ") == 2 and s.request.prompt.endswith("Answer:") for s in samples)
    assert all(s.request.stop == ("\n",) for s in samples)
    again = TydiqaTask(langs=["sw", "bn"], data_dir=data_dir, limit=5).build_samples()
    assert [s.request.prompt for s in again] == [s.request.prompt for s in samples]  # seeded


def test_truncation_keeps_question_whole(data_dir):
    task = TydiqaTask(langs=["fi"], data_dir=data_dir, limit=20, shots=0, max_prompt_tokens=400, count_tokens=len)
    samples = task.build_samples()
    items = load_tydiqa(data_dir, "fi", "dev")[0][:20]
    for sample, item in zip(samples, items):
        prompt = sample.request.prompt
        assert len(prompt) <= 400 or not sample.meta["truncated"]
        assert prompt.endswith(f"Question: {item.question}\nAnswer:")
        assert sample.meta["truncated"] == (len(item.context) + len(item.question) + 30 > 400)


def test_eval_end_to_end_on_tiny_model_then_cache(tiny_seq2seq, data_dir, tmp_path):
    args = ["eval", "tydiqa", "--model", str(tiny_seq2seq), "--langs", "bn,sw", "--limit", "2", "--max-new-tokens", "4",
            "--data-dir", str(data_dir), "--out", str(tmp_path), "--name", "t5"]
    assert runner.invoke(app, args).exit_code == 0
    run = RunDir(tmp_path / "t5" / "tydiqa-one_shot")
    assert run.read_manifest()["answers"]["generated"] == 4
    assert {"squad_em", "squad_f1", "em", "f1", "exemplar_source", "truncated"} <= set(run.read_samples()[0])
    assert runner.invoke(app, args).exit_code == 0
    assert run.read_manifest()["answers"] == {"from_cache": 4, "generated": 0}


def test_unknown_language_and_wrong_language_file(data_dir, tmp_path):
    with pytest.raises(ConfigError, match="not in TyDiQA GoldP"):
        TydiqaTask(langs=["th"], data_dir=data_dir)
    fake = tmp_path / "tydiqa_goldp" / "dev"
    fake.mkdir(parents=True)
    shutil.copy(data_dir / "tydiqa_goldp" / "dev" / "swahili.json", fake / "bengali.json")
    with pytest.raises(DataError, match=r"bengali.json: holds 499 question\(s\) not in language 'bn'"):
        load_tydiqa(tmp_path, "bn", "dev")


def test_malformed_json_is_one_line_error(data_dir, tmp_path):
    fake = tmp_path / "tydiqa_goldp" / "dev"
    fake.mkdir(parents=True)
    (fake / "korean.json").write_text('{"data": [\n  {"title": "x",\n', encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "rai_multi.cli.main", "score", "tydiqa", "-p", str(tmp_path / "p.jsonl"), "--langs", "ko",
         "--data-dir", str(tmp_path), "--out", str(tmp_path / "runs")],
        capture_output=True, text=True,
    )
    # the predictions file is checked first
    assert proc.returncode == 2 and "predictions file not found" in proc.stderr
    (tmp_path / "p.jsonl").write_text('{"id": "korean-1", "output": "x"}\n', encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "rai_multi.cli.main", "score", "tydiqa", "-p", str(tmp_path / "p.jsonl"), "--langs", "ko",
         "--data-dir", str(tmp_path), "--out", str(tmp_path / "runs")],
        capture_output=True, text=True,
    )
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "korean.json:3:1: not valid JSON" in lines[0], proc.stderr
