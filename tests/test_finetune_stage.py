"""The audit's finetune stage: a suite row that is a finetune of another row is checked when
the suite is read, trained once into the model cache under a key of what decides its
weights, reused by the next audit, resumed after a crash, and named in the report with
where it was trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rai_multi.errors import ConfigError
from rai_multi.finetune import stage as stage_mod
from rai_multi.finetune import train as train_mod
from rai_multi.suite import load_suite

MIXTURE = """
seed = 3
total_examples = 40
cap = 1000
few_shot_exemplars = 1
max_input_tokens = 96
max_target_tokens = 24

[[source]]
name = "gsm8k_cot"
format = "flan_cot_tsv"
path = "flan_cot/gsm8k_train.tsv"
templates = ["{question}"]
cot_template = "{rationale} So the answer is {answer}."
limit = 200

[[source]]
name = "tydiqa_sw"
format = "tydiqa_json"
path = "tydiqa_goldp/train/swahili.json"
templates = ["{context}\\nQuestion: {question}"]
limit = 200
"""

SUITE = """
title = "finetune stage"
baseline = "base"
seed = 11

[[model]]
name = "base"
source = "{base}"
batch_size = 4

[[model]]
name = "flan"
batch_size = 4
finetune = {{ of = "base", mixture = "mix.toml", steps = {steps}, batch_size = 4, lr = 0.01, warmup_steps = 1, heldout = 4, save_every = 2, precision = "fp32" }}

[[task]]
type = "mgsm"
langs = ["en", "sw"]
limit = 1
max_new_tokens = 4
"""


def _suite(tmp_path: Path, base: Path, steps: int = 4) -> Path:
    (tmp_path / "mix.toml").write_text(MIXTURE)
    path = tmp_path / "suite.toml"
    path.write_text(SUITE.format(base=base, steps=steps))
    return path


@pytest.fixture(autouse=True)
def _private_model_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_MULTI_MODEL_CACHE", str(tmp_path / "models"))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_finetune_rows_are_checked_when_the_suite_is_read(tmp_path, tiny_causal):
    path = _suite(tmp_path, tiny_causal)
    suite = load_suite(path)
    flan = suite.model("flan")
    assert flan.source == "" and flan.finetune.of == "base" and flan.finetune.mixture == tmp_path / "mix.toml"
    assert flan.finetune.steps == 4 and flan.finetune.lora and flan.finetune.heldout == 4
    text = path.read_text()
    row = 'finetune = { of = "base", mixture = "mix.toml", steps = 4, '
    for old, new, message in (
        ('of = "base"', 'of = "nobody"', r"\[\[model\]\] 2 \(flan\): finetune.of must name another model row \(base\); got 'nobody'"),
        ('of = "base"', 'of = "flan"', r"finetune.of must name another model row"),
        ('steps = 4,', 'steps = 0,', r"\[\[model\]\] 2: finetune.steps must be a whole number >= 1; got 0"),
        ('lr = 0.01', 'lr = 5', r"finetune.lr must be a number between 0 and 1"),
        ('mixture = "mix.toml"', 'mixture = "nope.toml"', r"finetune.mixture: no such file .*nope.toml"),
        ('precision = "fp32"', 'precision = "fp8"', r"finetune.precision must be one of auto, bf16, fp32"),
        ('save_every = 2', 'save_evry = 2', r"finetune: unknown key\(s\) save_evry"),
        (row, 'source = "x"\n' + row, r"give 'source' or 'finetune', not both"),
        (row, 'finetune = 3\n#', r"'finetune' must be a table"),
    ):
        assert old in text, old
        bad = tmp_path / "bad.toml"
        bad.write_text(text.replace(old, new, 1))
        with pytest.raises(ConfigError, match=message):
            load_suite(bad)
    served = text.replace(f'source = "{tiny_causal}"', 'source = "openai:m"\nbase_url = "http://127.0.0.1:9/v1"')
    (tmp_path / "served.toml").write_text(served)
    with pytest.raises(ConfigError, match=r"names 'base', a openai model; finetuning needs weights in this process"):
        load_suite(tmp_path / "served.toml")
    chained = text + '\n[[model]]\nname = "flan2"\nfinetune = { of = "flan", mixture = "mix.toml", steps = 1 }\n'
    (tmp_path / "chain.toml").write_text(chained)
    with pytest.raises(ConfigError, match=r"\(flan2\): finetune.of names 'flan', itself a finetune"):
        load_suite(tmp_path / "chain.toml")


def test_audit_trains_once_reuses_the_cache_and_says_where_it_trained(tmp_path, tiny_causal, data_dir, monkeypatch):
    from rai_multi.audit import run_audit

    suite = load_suite(_suite(tmp_path, tiny_causal))
    lines: list[str] = []
    first = run_audit(suite, out=tmp_path / "runs", report=tmp_path / "a.html", data_dir=data_dir, echo=lines.append)
    folders = list((tmp_path / "models").glob("finetune-*"))
    assert len(folders) == 1 and (folders[0] / stage_mod.COMPLETE).is_file()
    assert not (folders[0] / "checkpoints").exists()  # the finished model makes them redundant
    assert any(line.startswith("[flan] finetune of base trained in") for line in lines), lines
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("manifest.json")]
    assert {m["model"]["name"] for m in manifests} == {"base", "flan"}
    report = json.loads((tmp_path / "a.json").read_text())
    note = next(n for n in report["notes"] if n.startswith("flan: "))
    assert "LoRA r=16" in note and "of base on mix.toml, 4 steps x 4 (16 of its 36 training examples, fp32)" in note
    assert "trained on cpu (" in note
    assert "held-out loss" in note and "reused from the model cache" not in note
    assert "trained on cpu" in (tmp_path / "a.html").read_text(encoding="utf-8")
    summary = json.loads((folders[0] / "train_summary.json").read_text())
    assert summary["steps"] == 4 and summary["train_examples"] == 36 and summary["heldout_examples"] == 4

    # a second audit trains nothing: the folder is complete
    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(train_mod, "train", no_training)
    lines.clear()
    second = run_audit(suite, out=tmp_path / "runs", report=tmp_path / "b.html", data_dir=data_dir, echo=lines.append)
    assert any("finetune of base found in the model cache" in line for line in lines), lines
    note = next(n for n in json.loads((tmp_path / "b.json").read_text())["notes"] if n.startswith("flan: "))
    assert "reused from the model cache" in note
    assert len(second.run_dirs) == len(first.run_dirs)


def test_key_follows_what_decides_the_weights(tmp_path, tiny_causal, tiny_seq2seq, data_dir, monkeypatch):
    """Same base, mixture and settings: same folder; another step count, another base or
    another seed: another folder. Checkpoint cadence and held-out scoring do not count."""
    made: list[Path] = []

    def fake_train(cfg, mixture, progress=True, prepared=None):
        made.append(Path(cfg.out))
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        (Path(cfg.out) / "train_summary.json").write_text("{}")
        return cfg.out

    def no_decontamination(cfg, mixture):  # the check is tested elsewhere; here it only costs 5 s a call
        from rai_multi.finetune.decontam import ContaminationReport
        from rai_multi.finetune.mixture import build_mixture

        return build_mixture(mixture), ContaminationReport()

    monkeypatch.setattr(train_mod, "train", fake_train)
    monkeypatch.setattr(train_mod, "prepare", no_decontamination)
    spec = load_suite(_suite(tmp_path, tiny_causal)).model("flan").finetune
    run = lambda s, base=tiny_causal, seed=11: stage_mod.ensure_finetuned(s, str(base), data_dir, seed, echo=lambda _: None)
    first = run(spec)
    assert not first.cached and run(spec).cached and len(made) == 1
    import dataclasses

    assert run(dataclasses.replace(spec, save_every=9, eval_every=1)).cached
    others = [run(dataclasses.replace(spec, steps=5)), run(spec, base=tiny_seq2seq), run(spec, seed=12),
              run(dataclasses.replace(spec, lora_r=4))]
    assert len({o.path for o in others} | {first.path}) == 5 and len(made) == 5


def test_a_crashed_finetune_resumes_and_is_never_evaluated_half_done(tmp_path, tiny_causal, data_dir, monkeypatch):
    spec = load_suite(_suite(tmp_path, tiny_causal, steps=6)).model("flan").finetune
    real_encode, calls = train_mod.encode, []

    def dying_encode(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1 + 5:  # held-out scoring (one batch), then steps 1-5; dies in step 6
            raise RuntimeError("simulated crash")
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(train_mod, "encode", dying_encode)
    with pytest.raises(RuntimeError, match="simulated crash"):
        stage_mod.ensure_finetuned(spec, str(tiny_causal), data_dir, 11, echo=lambda _: None)
    folder = next((tmp_path / "models").glob("finetune-*"))
    assert not (folder / stage_mod.COMPLETE).exists()
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["step-2", "step-4"]
    monkeypatch.setattr(train_mod, "encode", real_encode)
    said: list[str] = []
    outcome = stage_mod.ensure_finetuned(spec, str(tiny_causal), data_dir, 11, echo=said.append)
    assert outcome.path == folder and not outcome.cached and "(resuming)" in said[0]
    assert json.loads((folder / "finetune_config.json").read_text())["resumed_from_step"] == 4
    log = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2, 3, 4, 5, 6]  # the held-out score at 0 kept, 5 and 6 redone once
    assert (folder / stage_mod.COMPLETE).is_file() and outcome.summary["resumed_from_step"] == 4
