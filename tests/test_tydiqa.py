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
from helpers import find_run

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
        run = find_run(tmp_path / preds.stem, "tydiqa-one_shot")
        for lang, count in OFFICIAL_DEV_COUNTS.items():
            m = metric(run, "squad_em", f"lang={lang}")
            assert m["value"] == expected and m["n"] == count
            assert metric(run, "em", f"lang={lang}")["value"] == expected
        avg = metric(run, "squad_em", "all_excl_en")
        assert avg["value"] == expected and avg["n"] == sum(OFFICIAL_DEV_COUNTS.values()) - 440
    rows = RunDir(find_run(tmp_path / "gold", "tydiqa-one_shot")).read_samples()
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
    task = TydiqaTask(langs=["fi"], data_dir=data_dir, limit=20, shots=0, max_prompt_tokens=400, count_tokens=len,
                      limit_rule="head")
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
    run = RunDir(find_run(tmp_path / "t5", "tydiqa-one_shot"))
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


def _combined_dev(tmp_path: Path, data_dir: Path, langs: tuple[str, ...]) -> Path:
    """An official-style combined dev file holding the given languages' questions."""
    from rai_multi.data.tydiqa import LANG_NAMES

    data = []
    for lang in langs:
        data += json.loads((data_dir / "tydiqa_goldp" / "dev" / f"{LANG_NAMES[lang]}.json").read_text(encoding="utf-8"))["data"]
    root = tmp_path / "combined" / "tydiqa_goldp"
    root.mkdir(parents=True)
    (root / "tydiqa-goldp-v1.1-dev.json").write_text(json.dumps({"data": data}, ensure_ascii=False), encoding="utf-8")
    return tmp_path / "combined"


def test_combined_dev_file_is_split_on_the_id_prefix(data_dir, tmp_path):
    root = _combined_dev(tmp_path, data_dir, ("bn", "sw"))
    bn, path = load_tydiqa(root, "bn", "dev")
    assert path.name == "tydiqa-goldp-v1.1-dev.json"
    assert len(bn) == OFFICIAL_DEV_COUNTS["bn"] and all(i.id.startswith("bengali-") for i in bn)
    assert len(load_tydiqa(root, "sw", "dev")[0]) == OFFICIAL_DEV_COUNTS["sw"]
    with pytest.raises(DataError, match="no questions for language 'fi'"):  # empty slice: an error, not 0/0
        load_tydiqa(root, "fi", "dev")


MALFORMED = [
    ('{"data": ["x"]}', r"data\[0\]: needs a 'paragraphs' list"),
    ('{"data": [{"paragraphs": [{"context": 5, "qas": []}]}]}', "needs a 'context' string and a 'qas' list"),
    ('{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "bengali-1", "question": "q"}]}]}]}',
     r"qas\[0\]: needs 'id', 'question' and 'answers\[\].text'"),
    ('{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "bengali-1", "question": "q", "answers": [{"text": 5}]}]}]}]}',
     "must be strings"),
    ('{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "bengali-1", "question": "q", "answers": []}]}]}]}',
     "no gold answer"),
    ('{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "bengali-1", "question": "q", "answers": [{"text": "a"}]},'
     ' {"id": "bengali-1", "question": "q", "answers": [{"text": "a"}]}]}]}]}', "duplicate question id 'bengali-1'"),
    ('{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "bengali-1", "question": "q", "answers": [{"text": "a"}]},'
     ' {"id": "swahili-2", "question": "q", "answers": [{"text": "a"}]}]}]}]}', "holds 1 question.* not in language 'bn'"),
    ('[]', "expected the SQuAD layout"),
]


@pytest.mark.parametrize("text,message", MALFORMED)
def test_malformed_structure_names_file_and_place(text, message, tmp_path):
    folder = tmp_path / "tydiqa_goldp" / "dev"
    folder.mkdir(parents=True)
    (folder / "bengali.json").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message) as err:
        load_tydiqa(tmp_path, "bn", "dev")
    assert "bengali.json" in str(err.value)
    (folder / "bengali.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(DataError, match="not UTF-8"):
        load_tydiqa(tmp_path, "bn", "dev")


def test_dev_exemplar_never_shares_the_evaluated_passage(tmp_path):
    # Two questions on passage A, one on passage B: A's questions may only take B's as the shot.
    def qa(qid, answer):
        return {"id": f"bengali-{qid}", "question": f"q{qid}", "answers": [{"text": answer, "answer_start": 0}]}

    doc = {"data": [{"title": "t", "paragraphs": [
        {"context": "passage A", "qas": [qa(1, "A"), qa(2, "A")]},
        {"context": "passage B", "qas": [qa(3, "B")]},
    ]}]}
    folder = tmp_path / "tydiqa_goldp" / "dev"
    folder.mkdir(parents=True)
    (folder / "bengali.json").write_text(json.dumps(doc), encoding="utf-8")
    for seed in range(10):
        shots = {s.id: s.meta["exemplar_id"] for s in TydiqaTask(langs=["bn"], data_dir=tmp_path, seed=seed).build_samples()}
        assert shots["bengali-1"] == shots["bengali-2"] == "bengali-3"
        assert shots["bengali-3"] in {"bengali-1", "bengali-2"}


def _cli(args: list[str], data_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"RAI_MULTI_DATA": str(data_dir), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "rai_multi.cli.main", *args, "--out", str(tmp_path / "runs")],
                          capture_output=True, text=True, env=env)


def test_cli_bad_input_is_one_line_nonzero(tiny_seq2seq, data_dir, tmp_path):
    fake = tmp_path / "fake" / "tydiqa_goldp" / "dev"
    fake.mkdir(parents=True)
    shutil.copy(data_dir / "tydiqa_goldp" / "dev" / "swahili.json", fake / "bengali.json")
    cases = [
        (["eval", "tydiqa", "--model", str(tiny_seq2seq), "--langs", "xx"], "unknown language code 'xx'"),
        (["eval", "tydiqa", "--model", str(tiny_seq2seq), "--langs", "th"], "not part of this task"),
        (["eval", "tydiqa", "--model", str(tmp_path / "no-model"), "--langs", "bn"], "model path does not exist"),
        (["eval", "tydiqa", "--model", str(tiny_seq2seq), "--langs", "bn", "--data-dir", str(tmp_path / "fake")],
         "not in language 'bn'"),
    ]
    for args, message in cases:
        proc = _cli(args, data_dir, tmp_path)
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "runs").rglob("metrics.json"))


def test_hub_source_draws_the_shot_from_train(monkeypatch):
    """Without a data dir the hub is used; its train split exists for every GoldP language."""
    import rai_multi.data.tydiqa as loader

    def fake_hub(lang, split):
        return [loader.QAItem(f"{loader.LANG_NAMES[lang]}-{split}-{i}", lang, "t", f"{split} passage {i}", "q", ("a",))
                for i in range(3)]

    monkeypatch.setattr(loader, "load_tydiqa_hub", fake_hub)
    samples = TydiqaTask(langs=["fi"], data_dir=None).build_samples()
    assert len(samples) == 3
    assert all(s.meta["exemplar_source"] == "train" and "-train-" in s.meta["exemplar_id"] for s in samples)


def test_run_config_does_not_depend_on_the_models_window(data_dir):
    """Two models with different context windows give the same TyDiQA task config (so the
    same comparison hash): the window only decides which passages are cut, which each run's
    truncated_rate reports."""
    from rai_multi.tasks.tydiqa import TydiqaTask

    small = TydiqaTask(langs=["fi"], data_dir=data_dir, limit=3, max_prompt_tokens=8180, count_tokens=len).config()
    large = TydiqaTask(langs=["fi"], data_dir=data_dir, limit=3, max_prompt_tokens=32756, count_tokens=len).config()
    assert small == large
    assert small["passage_cut_to"] and TydiqaTask(langs=["fi"], data_dir=data_dir, limit=3).config()["passage_cut_to"] is None
