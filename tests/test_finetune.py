"""Flan-style finetuning: mixture rates and renderings, decontamination, training that
lowers the loss, checkpoint + resume with the same data order, evaluation of the output,
data-parallel ranks on disjoint data, and bad input caught before compute."""

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
from rai_multi.finetune.mixture import build_mixture, load_mixture, preview_counts, read_source
from rai_multi.finetune.train import TrainConfig, train

runner = CliRunner()

MIX = """
seed = 5
total_examples = {total}
cap = {cap}
few_shot_exemplars = 1
max_input_tokens = 96
max_target_tokens = 32

[[source]]
name = "gsm8k_cot"
format = "flan_cot_tsv"
path = "flan_cot/gsm8k_train.tsv"
templates = ["{{question}}", "Q: {{question}}\\nA:"]
cot_template = "{{rationale}} So the answer is {{answer}}."
limit = {limit}

[[source]]
name = "qasc_cot"
format = "flan_cot_tsv"
path = "flan_cot/qasc_train.tsv"
templates = ["{{question}}"]
cot_template = "{{rationale}} So the answer is {{answer}}."
limit = {limit}

[[source]]
name = "tydiqa_en"
format = "tydiqa_json"
path = "tydiqa_goldp/train/english.json"
templates = ["{{context}}\\nQuestion: {{question}}"]
limit = {limit}
"""


def _mixture(tmp_path: Path, total=400, cap=3000, limit=2000) -> Path:
    path = tmp_path / "mix.toml"
    path.write_text(MIX.format(total=total, cap=cap, limit=limit))
    return path


def test_mixture_counts_follow_capped_rates_and_all_renderings_occur(data_dir, tmp_path):
    mixture = load_mixture(_mixture(tmp_path, total=400, cap=1500), data_dir)
    sizes = {s.name: len(read_source(s)) for s in mixture.sources}
    assert sizes == {"gsm8k_cot": 2000, "qasc_cot": 1084, "tydiqa_en": 2000}  # limit 2000; qasc has 1,084 rows
    # by hand: capped sizes 1500, 1084, 1500 -> rates 1500/4084, 1084/4084, 1500/4084
    expected = {"gsm8k_cot": round(400 * 1500 / 4084), "qasc_cot": round(400 * 1084 / 4084),
                "tydiqa_en": round(400 * 1500 / 4084)}
    counts = preview_counts(build_mixture(mixture))
    assert {k: sum(v.values()) for k, v in counts.items()} == expected
    assert set(counts["gsm8k_cot"]) == {"zero_shot_answer", "zero_shot_cot", "few_shot_answer", "few_shot_cot"}
    assert set(counts["tydiqa_en"]) == {"zero_shot_answer", "few_shot_answer"}  # no rationale: no CoT rendering
    examples = build_mixture(mixture)
    assert examples == build_mixture(mixture)  # seeded
    few_cot = next(e for e in examples if e.rendering == "few_shot_cot")
    assert few_cot.input.count("Let's think step by step.") == 2 and few_cot.target.endswith(".")
    result = runner.invoke(app, ["mixture", "preview", str(_mixture(tmp_path, total=400, cap=1500)), "--data-dir", str(data_dir)])
    assert result.exit_code == 0 and "qasc_cot" in result.output and "total examples: 400" in result.output


def test_decontamination_catches_a_planted_mgsm_question(data_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(data_dir / "mgsm", data / "mgsm")
    (data / "flan_cot").mkdir(parents=True)
    (data / "tydiqa_goldp" / "train").mkdir(parents=True)
    shutil.copy(data_dir / "tydiqa_goldp" / "train" / "english.json", data / "tydiqa_goldp" / "train" / "english.json")
    shutil.copy(data_dir / "flan_cot" / "gsm8k_train.tsv", data / "flan_cot" / "gsm8k_train.tsv")
    planted = (data_dir / "mgsm" / "mgsm_en.tsv").read_text().splitlines()[7].split("\t")[0]
    rows = (data_dir / "flan_cot" / "qasc_train.tsv").read_text().splitlines()[:50]
    rows.append(f"{planted}\t42\tplanted rationale")
    (data / "flan_cot" / "qasc_train.tsv").write_text("\n".join(rows) + "\n")
    mixture = load_mixture(_mixture(tmp_path, total=3000, limit=2000), data)
    from rai_multi.finetune.train import prepare

    with pytest.raises(ConfigError, match=r"exact evaluation item.*mgsm/en/7"):
        prepare(TrainConfig(model="x", out=tmp_path / "o", data_dir=data), mixture)
    examples, report = prepare(TrainConfig(model="x", out=tmp_path / "o", data_dir=data, drop_contaminated=True), mixture)
    assert report.exact_hits["mgsm"] and all(e.id != report.exact_hits["mgsm"][0][0] for e in examples)


@pytest.mark.parametrize("fixture,lora", [("tiny_seq2seq", True), ("tiny_causal", False)])
def test_training_lowers_loss_checkpoints_resumes_and_evaluates(fixture, lora, request, data_dir, tmp_path):
    model = request.getfixturevalue(fixture)
    mixture = load_mixture(_mixture(tmp_path, total=64, limit=200), data_dir)
    cfg = dict(model=str(model), steps=12, batch_size=8, lr=2e-2 if lora else 3e-3, warmup_steps=1, lora=lora,
               save_every=6, data_dir=data_dir, drop_contaminated=True)
    full = train(TrainConfig(out=tmp_path / "full", **cfg), mixture, progress=False)
    log = [json.loads(line) for line in (full / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 13))
    first, last = sum(r["loss"] for r in log[:3]) / 3, sum(r["loss"] for r in log[-3:]) / 3
    assert last < first - 0.2, (first, last)
    assert (full / "checkpoints" / "step-6" / "trainer.pt").is_file()
    # resume from the step-6 checkpoint in a fresh folder: same batches, same losses
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(full / "checkpoints", resumed_dir / "checkpoints")
    train(TrainConfig(out=resumed_dir, resume=True, **cfg), mixture, progress=False)
    resumed = [json.loads(line) for line in (resumed_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed] == list(range(7, 13))
    assert [r["examples"] for r in resumed] == [r["examples"] for r in log[6:]]
    assert [r["loss"] for r in resumed] == pytest.approx([r["loss"] for r in log[6:]], rel=1e-4)
    result = runner.invoke(app, ["eval", "mgsm", "--model", str(full), "--langs", "en", "--limit", "2",
                                 "--max-new-tokens", "4", "--data-dir", str(data_dir), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output


def test_bad_inputs_fail_before_compute(tiny_causal, data_dir, tmp_path):
    text = MIX.format(total=10, cap=10, limit=10)
    bad_file = tmp_path / "bad1.toml"
    bad_file.write_text(text.replace("flan_cot/qasc_train.tsv", "flan_cot/nope.tsv"))
    with pytest.raises(ConfigError, match="source file does not exist"):
        load_mixture(bad_file, data_dir)
    bad_field = tmp_path / "bad2.toml"
    bad_field.write_text(text.replace('templates = ["{question}"]', 'templates = ["{question} {hint}"]'))
    with pytest.raises(ConfigError, match=r"refers to missing field\(s\) hint"):
        load_mixture(bad_field, data_dir)
    out = tmp_path / "out"
    result = runner.invoke(app, ["finetune", str(_mixture(tmp_path)), "--model", str(tiny_causal), "--out", str(out),
                                 "--lora-targets", "q,v", "--data-dir", str(data_dir)])
    assert isinstance(result.exception, ConfigError) and "LoRA target module(s) q, v not found" in str(result.exception)
    assert not out.exists()


@pytest.mark.slow
def test_two_process_data_parallel_ranks_see_disjoint_data(tiny_seq2seq, data_dir, tmp_path):
    mix = _mixture(tmp_path, total=64, limit=200)
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "rai_multi.cli.main", "finetune",
         str(mix), "--model", str(tiny_seq2seq), "--out", str(out), "--steps", "3", "--batch-size", "4",
         "--drop-contaminated", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    logs = [[json.loads(line) for line in (out / f"train_log.rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    for a, b in zip(*logs):
        assert len(a["examples"]) == len(b["examples"]) == 4
        assert not set(a["examples"]) & set(b["examples"])
    assert json.loads((out / "finetune_config.json").read_text())["world_size"] == 2
    assert (out / "model.safetensors").is_file()
