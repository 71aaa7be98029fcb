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
from rai_multi.errors import ConfigError, DataError
from rai_multi.finetune import train as train_mod
from rai_multi.finetune.mixture import build_mixture, load_mixture, preview_counts, read_source
from rai_multi.finetune.train import TrainConfig, encode, prepare, train

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]

MIX = """
seed = 5
total_examples = {total}
cap = {cap}
few_shot_exemplars = 1
max_input_tokens = 96
max_target_tokens = 32

[renderings]
zero_shot_answer = 0.4
zero_shot_cot = 0.1
few_shot_answer = 0.2
few_shot_cot = 0.3

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


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is ~5x faster than two
    threads contending (and the numbers the test compares do not depend on it)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _mixture(tmp_path: Path, total=400, cap=3000, limit=2000, name="mix.toml") -> Path:
    path = tmp_path / name
    path.write_text(MIX.format(total=total, cap=cap, limit=limit))
    return path


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------- mixture and preview
def test_mixture_counts_follow_capped_rates_and_rendering_shares(data_dir, tmp_path):
    mixture = load_mixture(_mixture(tmp_path, total=400, cap=1500), data_dir)
    sizes = {s.name: len(read_source(s)) for s in mixture.sources}
    assert sizes == {"gsm8k_cot": 2000, "qasc_cot": 1084, "tydiqa_en": 2000}  # limit 2000; qasc has 1,084 rows
    # by hand: capped sizes 1500, 1084, 1500 -> rates 1500/4084, 1084/4084, 1500/4084
    totals = {"gsm8k_cot": round(400 * 1500 / 4084), "qasc_cot": round(400 * 1084 / 4084),
              "tydiqa_en": round(400 * 1500 / 4084)}
    assert totals == {"gsm8k_cot": 147, "qasc_cot": 106, "tydiqa_en": 147}
    examples = build_mixture(mixture)
    counts = preview_counts(examples)
    assert {k: sum(v.values()) for k, v in counts.items()} == totals
    # renderings in the configured shares 0.4 / 0.1 / 0.2 / 0.3 (largest remainder)
    assert counts["gsm8k_cot"] == {"zero_shot_answer": 59, "zero_shot_cot": 15, "few_shot_answer": 29, "few_shot_cot": 44}
    assert counts["qasc_cot"] == {"zero_shot_answer": 42, "zero_shot_cot": 11, "few_shot_answer": 21, "few_shot_cot": 32}
    # no rationale: the answer-only renderings share the source 0.4 : 0.2
    assert counts["tydiqa_en"] == {"zero_shot_answer": 98, "few_shot_answer": 49}
    assert examples == build_mixture(mixture)  # seeded
    assert len({e.id for e in examples}) == len(examples)
    assert {e.template for e in examples if e.source == "gsm8k_cot"} == {0, 1}  # several templates used
    few_cot = next(e for e in examples if e.rendering == "few_shot_cot")
    assert few_cot.input.count("Let's think step by step.") == 2 and few_cot.target.startswith(few_cot.fields["rationale"])
    zero = next(e for e in examples if e.rendering == "zero_shot_answer" and e.source == "qasc_cot")
    assert zero.input == zero.fields["question"] and zero.target == zero.fields["answer"]

    result = runner.invoke(app, ["mixture", "preview", str(tmp_path / "mix.toml"), "--data-dir", str(data_dir),
                                 "--no-decontam"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()
            if line.split() and line.split()[0] in totals}
    assert rows["gsm8k_cot"] == ["2000", "0.367", "59", "15", "29", "44", "147"]
    assert rows["tydiqa_en"] == ["2000", "0.367", "98", "0", "49", "0", "147"]
    assert "total examples: 400" in result.output


def test_shipped_mixture_preview_all_four_renderings_and_decontamination(data_dir):
    result = runner.invoke(app, ["mixture", "preview", str(REPO / "evals/finetune/flan_cot_mini.toml"),
                                 "--data-dir", str(data_dir), "--examples", "1"])
    assert result.exit_code == 0, result.output
    mixture = load_mixture(REPO / "evals/finetune/flan_cot_mini.toml", data_dir)
    assert len(mixture.sources) == 11 and all(len(s.templates) >= 2 for s in mixture.sources)
    lines = {line.split()[0]: line.split()[1:] for line in result.output.splitlines() if line.split()}
    for source in mixture.sources:
        counts = [int(c) for c in lines[source.name][2:6]]
        assert all(counts) if source.cot_template else counts[1] == counts[3] == 0, (source.name, counts)
    assert "total examples: 3997" in result.output
    # the upstream TyDiQA GoldP train split holds dev items; the shipped mixture drops them
    assert "tydiqa: " in result.output and "on exact hits: drop" in result.output


def test_hub_format_source_reads_through_datasets(data_dir, tmp_path):
    path = tmp_path / "hub.toml"
    path.write_text('total_examples = 20\n[[source]]\nname = "gsm_hub"\nformat = "hub"\ndataset = "json"\n'
                    'path = "gsm8k/train.jsonl"\nfields = {question = "question", solution = "answer"}\n'
                    'templates = ["Q: {question}"]\nanswer_template = "{solution}"\nlimit = 30\n')
    examples = build_mixture(load_mixture(path, data_dir))
    assert len(examples) == 20 and all(e.input.startswith("Q: ") and "####" in e.target for e in examples)
    path.write_text(path.read_text().replace('solution = "answer"', 'solution = "nope"'))
    with pytest.raises(DataError, match="no column.*nope"):
        build_mixture(load_mixture(path, data_dir))


# ---------------------------------------------------------------- decontamination
def test_decontamination_catches_a_planted_mgsm_question(data_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(data_dir / "mgsm", data / "mgsm")
    (data / "flan_cot").mkdir(parents=True)
    (data / "tydiqa_goldp" / "train").mkdir(parents=True)
    shutil.copy(data_dir / "tydiqa_goldp" / "train" / "english.json", data / "tydiqa_goldp" / "train" / "english.json")
    shutil.copy(data_dir / "flan_cot" / "gsm8k_train.tsv", data / "flan_cot" / "gsm8k_train.tsv")
    planted = (data_dir / "mgsm" / "mgsm_en.tsv").read_text().splitlines()[7].split("\t")[0]
    rows = (data_dir / "flan_cot" / "qasc_train.tsv").read_text().splitlines()[:50]
    # re-cased and re-punctuated: normalisation must still see it
    disguised = planted.upper().replace(".", " ; ")
    assert disguised != planted
    rows.append(f"{disguised}\t42\tplanted rationale")
    (data / "flan_cot" / "qasc_train.tsv").write_text("\n".join(rows) + "\n")
    mixture = load_mixture(_mixture(tmp_path, total=3000, limit=300), data)
    assert any(disguised in e.input for e in build_mixture(mixture))
    with pytest.raises(ConfigError, match=r"exact evaluation item.*holds mgsm/en/7"):
        prepare(TrainConfig(model="x", out=tmp_path / "o", data_dir=data), mixture)
    examples, report = prepare(TrainConfig(model="x", out=tmp_path / "o", data_dir=data, drop_contaminated=True), mixture)
    hits = report.exact_hits["mgsm"]
    # the planted row itself, and any example that shows it as a few-shot exemplar
    assert ("qasc_cot/50", "mgsm/en/7") in hits and {eval_id for _, eval_id in hits} == {"mgsm/en/7"}
    everything = build_mixture(mixture)
    assert {train_id for train_id, _ in hits} == {e.id for e in everything if disguised in e.input}
    assert len(examples) == len(everything) - len(hits) and not any(disguised in e.input for e in examples)
    assert set(report.exact_hits) == {"mgsm"} and report.ngram_hits["mgsm"] == len(hits)
    examples, _ = prepare(TrainConfig(model="x", out=tmp_path / "o", data_dir=data, allow_contaminated=True), mixture)
    assert "qasc_cot/50" in {e.id for e in examples}


# ---------------------------------------------------------------- training
def test_causal_loss_is_on_target_tokens_only(tiny_causal, tiny_seq2seq):
    from transformers import AutoTokenizer

    from rai_multi.finetune.mixture import Example

    tok = AutoTokenizer.from_pretrained(tiny_causal)
    tok.pad_token = tok.pad_token or tok.eos_token
    batch = [Example("a/0", "a", "zero_shot_answer", 0, "Question: Roger has 5 tennis balls.", "The answer is 11."),
             Example("a/1", "a", "zero_shot_answer", 0, "yes no", "Yes")]
    enc = encode(tok, batch, seq2seq=False, max_in=64, max_out=16)
    for i, e in enumerate(batch):
        prompt = tok(e.input)["input_ids"]
        target = tok(" " + e.target, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        n = len(prompt) + len(target)
        assert enc["input_ids"][i, :n].tolist() == prompt + target
        assert enc["labels"][i].tolist() == [-100] * len(prompt) + target + [-100] * (enc["labels"].shape[1] - n)
        assert enc["attention_mask"][i].tolist() == [1] * n + [0] * (enc["labels"].shape[1] - n)
    s2s = AutoTokenizer.from_pretrained(tiny_seq2seq)
    enc = encode(s2s, batch, seq2seq=True, max_in=64, max_out=16)
    assert enc["labels"][1].tolist()[: len(s2s("Yes")["input_ids"])] == s2s("Yes")["input_ids"]
    assert (enc["labels"][1] == -100).sum() == enc["labels"].shape[1] - len(s2s("Yes")["input_ids"])


@pytest.mark.parametrize("fixture", ["tiny_causal", "tiny_sliding"])
@pytest.mark.parametrize("exact", [True, False])
def test_target_only_head_loss_equals_the_models_own_loss(fixture, exact, request, data_dir, tmp_path):
    """The loss with logits computed only where a target is predicted equals transformers'
    loss over every position, and so do its gradients (right padding, prompts and targets of
    different lengths in one batch)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if exact and not train_mod._bool_selection_supported():
        pytest.skip("this transformers takes no boolean logits_to_keep; the union path is tested")
    path = request.getfixturevalue(fixture)
    tok = AutoTokenizer.from_pretrained(path)
    examples = sorted(build_mixture(load_mixture(_mixture(tmp_path, total=12, limit=50), data_dir)),
                      key=lambda e: len(e.input))[:4]  # the shortest: none cut to the input limit
    batch = encode(tok, examples, False, 400, 32)
    assert len({int(r.ne(-100).nonzero()[0]) for r in batch["labels"]}) > 1, "prompts of one length test nothing"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32")
    reference = model(**batch).loss
    reference.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    ours = train_mod.target_loss(model, batch, exact)
    ours.backward()
    assert ours.item() == pytest.approx(reference.item(), rel=1e-6)
    for name, grad in grads.items():
        assert torch.allclose(dict(model.named_parameters())[name].grad, grad, atol=1e-6), name
    # and it is not the loss over all positions: a wrong label shift would be caught
    wrong = {**batch, "labels": torch.roll(batch["labels"], 1, dims=1)}
    assert abs(train_mod.target_loss(model, wrong, exact).item() - reference.item()) > 1e-3


def test_heldout_examples_are_kept_out_and_scored(tiny_causal, data_dir, tmp_path):
    """heldout=N: the last N mixture examples never enter a batch; their loss is logged
    before training and at the end, and the summary says where and how the run trained."""
    mixture = load_mixture(_mixture(tmp_path, total=40, limit=100), data_dir)
    out = train(TrainConfig(model=str(tiny_causal), out=tmp_path / "ft", steps=6, batch_size=4, lr=3e-3,
                            warmup_steps=1, lora=False, save_every=100, heldout=8, data_dir=None, precision="fp32"),
                mixture, progress=False)
    log = _log(out / "train_log.jsonl")
    held = json.loads((out / "finetune_config.json").read_text())["heldout_ids"]
    assert len(held) == 8 and held == [e.id for e in build_mixture(mixture)[-8:]]
    assert not {i for r in log if "examples" in r for i in r["examples"]} & set(held)
    assert [r["step"] for r in log if "heldout_loss" in r] == [0, 6]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["device_type"] == "cpu" and summary["precision"] == "fp32" and summary["heldout_examples"] == 8
    assert [h["step"] for h in summary["heldout"]] == [0, 6] and summary["train_seconds"] > 0
    assert summary["heldout"][1]["loss"] < summary["heldout"][0]["loss"]  # 6 steps of a tiny model on its data


@pytest.mark.parametrize("fixture,lora", [("tiny_seq2seq", True), ("tiny_causal", False)])
def test_training_lowers_loss_checkpoints_resumes_and_evaluates(fixture, lora, request, data_dir, tmp_path, monkeypatch):
    model = request.getfixturevalue(fixture)
    mixture = load_mixture(_mixture(tmp_path, total=64, limit=200), data_dir)
    # data_dir=None: decontamination is tested above and in the CLI test below; here it only costs time
    cfg = dict(model=str(model), steps=12, batch_size=4, grad_accum=2, lr=2e-2 if lora else 3e-3, warmup_steps=1,
               lora=lora, save_every=4, data_dir=None)
    full = train(TrainConfig(out=tmp_path / "full", **cfg), mixture, progress=False)
    log = _log(full / "train_log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 13)) and all(len(r["examples"]) == 8 for r in log)
    first, last = sum(r["loss"] for r in log[:3]) / 3, sum(r["loss"] for r in log[-3:]) / 3
    assert last < first - 0.2, (first, last)
    assert all(r["tokens_per_s"] > 0 for r in log)
    assert sorted(p.name for p in (full / "checkpoints").iterdir()) == ["step-4", "step-8"]
    resolved = json.loads((full / "finetune_config.json").read_text())
    assert resolved["train"]["steps"] == 12 and resolved["mixture"]["seed"] == 5 and resolved["seq2seq"] is lora
    assert (full / "config.json").is_file() and (full / "model.safetensors").is_file()
    assert (full / "adapter" / "adapter_config.json").is_file() is lora

    # an interrupted run: dies during step 10, after the step-8 checkpoint
    real_encode, calls = train_mod.encode, []

    def dying_encode(*args, **kwargs):
        calls.append(1)
        if len(calls) > 9 * cfg["grad_accum"]:
            raise RuntimeError("simulated crash")
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(train_mod, "encode", dying_encode)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(TrainConfig(out=tmp_path / "crashed", **cfg), mixture, progress=False)
    monkeypatch.setattr(train_mod, "encode", real_encode)
    assert [r["step"] for r in _log(tmp_path / "crashed" / "train_log.jsonl")] == list(range(1, 10))
    # same seed, fresh process state: the first 9 steps are the uninterrupted run's
    assert [r["loss"] for r in _log(tmp_path / "crashed" / "train_log.jsonl")] == pytest.approx(
        [r["loss"] for r in log[:9]], rel=1e-5)
    with pytest.raises(ConfigError, match="different seed"):
        train(TrainConfig(out=tmp_path / "crashed", resume=True, **{**cfg, "seed": 99}), mixture, progress=False)
    train(TrainConfig(out=tmp_path / "crashed", resume=True, **cfg), mixture, progress=False)
    resumed = _log(tmp_path / "crashed" / "train_log.jsonl")
    assert [r["step"] for r in resumed] == list(range(1, 13))  # step 9 redone once, not logged twice
    assert [r["examples"] for r in resumed] == [r["examples"] for r in log]  # same data order
    assert [r["loss"] for r in resumed] == pytest.approx([r["loss"] for r in log], rel=1e-4)
    assert json.loads((tmp_path / "crashed" / "finetune_config.json").read_text())["resumed_from_step"] == 8

    result = runner.invoke(app, ["eval", "mgsm", "--model", str(full), "--langs", "en", "--limit", "2",
                                 "--max-new-tokens", "4", "--data-dir", str(data_dir), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "runs").rglob("*.json")), "eval wrote no run record"


# ---------------------------------------------------------------- bad input
def _main(monkeypatch, capsys, argv: list[str]) -> tuple[int, str]:
    from rai_multi.cli import main as cli_main

    monkeypatch.setattr(sys, "argv", ["rai-multi", *argv])
    with pytest.raises(SystemExit) as exc:
        cli_main.main()
    return int(exc.value.code or 0), capsys.readouterr().err


def test_bad_inputs_fail_in_one_line_before_compute(tiny_causal, data_dir, tmp_path, monkeypatch, capsys):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    def no_weights(*args, **kwargs):
        raise AssertionError("weights were loaded before the input was checked")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_weights)
    monkeypatch.setattr(AutoModelForSeq2SeqLM, "from_pretrained", no_weights)
    text = MIX.format(total=10, cap=10, limit=10)
    cases = {
        "missing_file": (text.replace("flan_cot/qasc_train.tsv", "flan_cot/nope.tsv"), [],
                         "(qasc_cot): source file does not exist: "),
        "missing_field": (text.replace('templates = ["{question}"]', 'templates = ["{question} {hint}"]'), [],
                          "template '{question} {hint}' refers to missing field(s) hint; flan_cot_tsv has answer, "
                          "question, rationale"),
        "bad_braces": (text.replace('templates = ["{question}"]', 'templates = ["{question"]'), [],
                       "is not a valid format string"),
        "bad_type": (text.replace("seed = 5", 'seed = "five"'), [], "'seed' must be an integer"),
        "lora_target": (text, ["--lora-targets", "q,v"], "LoRA target module(s) q, v not found in the model; "
                        "its linear layers: down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj"),
        "resume_nothing": (text, ["--resume"], "--resume: no checkpoint under"),
        "no_model": (text, ["--model", str(tmp_path / "no-model")], "model directory does not exist"),
    }
    for name, (toml, extra, message) in cases.items():
        config = tmp_path / f"{name}.toml"
        config.write_text(toml)
        out = tmp_path / f"out-{name}"
        code, err = _main(monkeypatch, capsys, ["finetune", str(config), "--model", str(tiny_causal), "--out", str(out),
                                                "--data-dir", str(data_dir), *extra])
        assert code == 2, (name, err)
        assert err.startswith("error: ") and message in err and err.count("\n") == 1 and "Traceback" not in err, (name, err)
        assert not out.exists(), name
    code, err = _main(monkeypatch, capsys, ["mixture", "preview", str(tmp_path / "missing_field.toml"),
                                            "--data-dir", str(data_dir)])
    assert code == 2 and "refers to missing field(s) hint" in err and err.count("\n") == 1


# ---------------------------------------------------------------- data-parallel
@pytest.mark.slow
def test_two_process_data_parallel_ranks_see_disjoint_data(tiny_seq2seq, data_dir, tmp_path):
    mix = _mixture(tmp_path, total=64, limit=200)
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "rai_multi.cli.main", "finetune", str(mix), "--model", str(tiny_seq2seq), "--out", str(out),
         "--steps", "3", "--batch-size", "2", "--grad-accum", "2", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "decontamination: bbq: " in proc.stdout + proc.stderr
    logs = [_log(out / f"train_log.rank{r}.jsonl") for r in (0, 1)]
    assert [len(log) for log in logs] == [3, 3]
    mixture = load_mixture(mix, data_dir)
    examples = build_mixture(mixture)
    order = train_mod.batch_order(len(examples), 8, 3, 1234, [len(e.input) + len(e.target) for e in examples])
    for step, (a, b) in enumerate(zip(*logs)):
        assert len(a["examples"]) == len(b["examples"]) == 4  # batch 2 x grad-accum 2 per rank
        assert not set(a["examples"]) & set(b["examples"])
        assert a["examples"] + b["examples"] == [examples[i].id for i in order[step]]  # together: the global batch
        assert a["loss"] == pytest.approx(b["loss"])  # the logged loss is the mean over ranks
    resolved = json.loads((out / "finetune_config.json").read_text())
    assert resolved["world_size"] == 2 and resolved["order_key"]["global_batch"] == 8
    assert resolved["distributed_backend"] == "gloo"
    assert (out / "model.safetensors").is_file()
