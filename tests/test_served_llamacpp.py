"""The openai: backend against a real llama.cpp server process on loopback (tests/served.py),
serving the demo GGUF ``demo:smollm2-135m-instruct`` (SmolLM2-135M-Instruct, Q4_1) as it
is, compared with the hf backend on the same file (dequantised to float32 by transformers).

What is compared, and what may legitimately differ:
- tokenisation: the server's own token ids for every prompt equal the hf tokenizer's
  (neither side adds a BOS token: the file says ``add_bos_token = false``);
- greedy generation: the backend sends ``repeat_penalty 1.0`` (the server's default, 1.1,
  is not greedy decoding: test_default_repeat_penalty_is_not_greedy). llama.cpp then
  multiplies the Q4_1 weights with 8-bit-quantised activations, the hf backend the same
  weights dequantised in float32: outputs agree token for token until hf is near a tie
  (a margin the kernels' measured log-prob differences can flip), and every pair that
  differs is attributed to such a step, or to a multi-byte character cut by the token
  limit;
- log-likelihood: this server's echoed prompt log-probs are shifted by one position for
  a model without BOS; the test measures that and the backend refuses to score;
- no chat template on /v1/completions on either side.

One server for the module (a second for the key check, a third that the resume test
kills). Skipped without llama-cpp-python[server]; failed instead under
RAI_MULTI_STRICT_DATA=1, as CI runs."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from served import LlamaServer, require_server

pytestmark = [pytest.mark.slow]

ALIAS = "smollm2"
MAX_TOKENS = 24
PROMPTS = [
    "Question: Roger has 5 tennis balls. He buys 2 more cans of 3 tennis balls each. How many tennis balls "
    "does he have now?\nAnswer:",
    "Frage: Roger hat 5 Tennisbälle. Er kauft 2 weitere Dosen mit je 3 Tennisbällen. Wie viele Tennisbälle "
    "hat er jetzt?\nAntwort:",
    "Pregunta: Roger tiene 5 pelotas de tenis. Compra 2 latas más con 3 pelotas cada una. ¿Cuántas pelotas "
    "tiene ahora?\nRespuesta:",
    "Question : Roger a 5 balles de tennis. Il achète 2 boîtes de 3 balles chacune. Combien de balles a-t-il "
    "maintenant ?\nRéponse :",
    "問題：ロジャーはテニスボールを5個持っています。彼はさらに3個入りの缶を2つ買いました。今、彼はテニスボールを何個持っていますか？\n答え：",
    "问题：罗杰有5个网球。他又买了2罐，每罐3个网球。他现在有多少个网球？\n答案：",
    "Задача: У Роджера 5 теннисных мячей. Он покупает ещё 2 банки по 3 мяча. Сколько мячей у него теперь?\nОтвет:",
    "Swali: Roger ana mipira 5 ya tenisi. Ananunua makopo 2 zaidi yenye mipira 3 kila moja. Ana mipira "
    "mingapi sasa?\nJibu:",
]
SECRET = "sk-llama-test-secret-0987654321"


@pytest.fixture(scope="module")
def gguf() -> Path:
    require_server()
    from rai_multi.demo_models import resolve_demo_model

    return Path(resolve_demo_model("demo:smollm2-135m-instruct"))


@pytest.fixture(scope="module")
def server(gguf, tmp_path_factory):
    with LlamaServer(gguf, ALIAS, tmp_path_factory.mktemp("log") / "server.log") as srv:
        yield srv


@pytest.fixture(scope="module")
def hf(gguf):
    """The hf backend on the same file, float32 (``auto`` would be bf16 on AMX CPUs), all
    prompts in one batch. One torch thread while this module runs: the server takes the
    other core, and two torch threads on a busy two-core machine spin more than they work
    (measured: 25 s against 5 s for the 8 greedy prompts)."""
    import torch

    from rai_multi.models.loading import load_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield load_model(str(gguf), dtype="fp32", batch_size=len(PROMPTS))
    finally:
        torch.set_num_threads(threads)


def _served(url: str, **fields: Any):
    from rai_multi.models.spec import load_backend, parse_model

    return load_backend(parse_model(f"openai:{ALIAS}", base_url=url, **fields))


# ---------------------------------------------------------------------------- tokenisation
def test_server_tokenises_prompts_like_the_hf_tokenizer(server, hf):
    """Same ids, no BOS on either side: what both backends feed the model is the same."""
    for prompt in PROMPTS:
        assert server.tokenize(prompt) == hf.tokenizer(prompt)["input_ids"], prompt


# ---------------------------------------------------------------------------- greedy parity
KERNEL_LIMIT = 0.5  # nats: the most |hf - server| log-prob on the same token that is kernel rounding


@dataclass
class Parting:
    """Where the served output leaves hf's greedy path, seen by hf along the served path.

    ``step`` is the first generated token at which hf's own choice is not the server's
    (None: hf would pick every served token, and the server's end too); ``margin`` is how
    much hf prefers its token there (log-prob of hf's token minus that of the server's, in
    nats, from the same prefix); ``deltas`` are |hf - server| log-probs of the tokens
    before that step (the two kernels on the same tokens)."""

    step: int | None
    margin: float
    hf_token: str
    served_token: str
    deltas: list[float]


def _continuation_ids(hf, prompt: str, text: str) -> list[int]:
    """The hf tokenizer's ids for ``text`` after ``prompt`` (prompt ids are a prefix of the
    joined text's: checked), decoding back to ``text``."""
    head = hf.tokenizer(prompt)["input_ids"]
    joined = hf.tokenizer(prompt + text)["input_ids"]
    ids = joined[len(head):] if joined[: len(head)] == head else hf.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert hf.tokenizer.decode(ids) == text, (prompt, text)
    return list(ids)


def _parting(hf, prompt: str, served_text: str, served_logprobs: list[float], eos: set[int], ended: bool) -> Parting:
    """One hf forward pass over prompt + served output: hf's choice at every served step."""
    import torch

    head = hf.tokenizer(prompt)["input_ids"]
    ids = _continuation_ids(hf, prompt, served_text)
    with torch.inference_mode():
        logits = hf.model(input_ids=torch.tensor([head + ids])).logits[0, len(head) - 1:].float()
    lp = logits.log_softmax(-1)
    deltas = []
    for i, token in enumerate(ids):
        best = int(lp[i].argmax())
        if best != token and float(lp[i, best] - lp[i, token]) > 1e-4:  # not a float tie
            return Parting(i, float(lp[i, best] - lp[i, token]), hf.tokenizer.decode([best]),
                           hf.tokenizer.decode([token]), deltas)
        if i < len(served_logprobs):
            deltas.append(abs(float(lp[i, token]) - served_logprobs[i]))
    best = int(lp[len(ids)].argmax())
    if ended and best not in eos:  # the server ended (EOS) where hf goes on
        worst_eos = max(float(lp[len(ids), e]) for e in eos)
        return Parting(len(ids), float(lp[len(ids), best]) - worst_eos, hf.tokenizer.decode([best]), "<eos>", deltas)
    return Parting(None, 0.0, "", "", deltas)


@pytest.fixture(scope="module")
def greedy_runs(server, hf) -> dict[str, list[Any]]:
    """Both backends' greedy outputs, and the server's answer with log-probs to the same
    request (the backend's body plus ``logprobs``), computed once for the module."""
    from rai_multi.records import GenerationRequest

    requests = [GenerationRequest(p, max_new_tokens=MAX_TOKENS) for p in PROMPTS]
    ids = [str(i) for i in range(len(PROMPTS))]
    raw = [server.post("/v1/completions", {"model": ALIAS, "prompt": p, "max_tokens": MAX_TOKENS, "temperature": 0.0,
                                           "top_p": 1.0, "repeat_penalty": 1.0, "logprobs": 1, "seed": 0})["choices"][0]
           for p in PROMPTS]
    return {"hf": [o[0] for o in hf.generate(requests, ids)],
            "served": [o[0] for o in _served(server.url, concurrency=2).generate(requests, ids)], "raw": raw}


def _eos(hf) -> set[int]:
    config = hf.model.generation_config.eos_token_id
    return {int(e) for e in (config if isinstance(config, (list, tuple)) else [config])}


def test_greedy_parity_with_the_hf_backend(greedy_runs, hf, capsys):
    """Greedy, 24 new tokens, 8 MGSM-style prompts in 8 languages. Every output pair is
    equal, or agrees token for token and then parts where hf prefers its own token by
    less than twice the largest log-prob difference the two kernels show on shared tokens
    (dequantisation: the server multiplies Q4_1 weights with 8-bit-quantised activations,
    hf the dequantised weights in float32), or has the same tokens with hf's text ending in
    U+FFFD where the token limit cut a multi-byte character (hf decodes the partial bytes
    as U+FFFD, the server drops them). That largest difference must itself stay below
    KERNEL_LIMIT (wrong weights or a misaligned prompt would show far more). Measured on
    2026-12-02: 4/8 equal, partings at 0.03-0.11 nats, largest difference 0.23 nats."""
    eos = _eos(hf)
    report, deltas, margins, equal = [], [], [], 0
    for prompt, h, s, choice in zip(PROMPTS, greedy_runs["hf"], greedy_runs["served"], greedy_runs["raw"]):
        assert choice["text"] == s  # the backend's request, plus log-probs: the same output
        part = _parting(hf, prompt, s, choice["logprobs"]["token_logprobs"], eos, choice["finish_reason"] == "stop")
        deltas += part.deltas
        hf_ids = _continuation_ids(hf, prompt, h)
        served_ids = _continuation_ids(hf, prompt, s)
        if h == s:
            assert part.step is None
            equal += 1
            report.append(f"equal ({len(hf_ids)} tokens)")
        elif part.step is None:
            # hf agrees with every served token: the texts can only differ by hf's cut character
            assert h.endswith("\ufffd") and h.rstrip("\ufffd") == s, (prompt, h, s)
            report.append("same tokens; hf ends in U+FFFD (a multi-byte character cut by the token limit), "
                          "the server drops the partial bytes")
        else:
            # hf's own output follows the served tokens up to the parting step, then takes its choice
            assert hf_ids[: part.step] == served_ids[: part.step], (prompt, h, s)
            margins.append(part.margin)
            report.append(f"parts at token {part.step}: hf {part.hf_token!r} over the server's "
                          f"{part.served_token!r} by {part.margin:.3f} nats")
    with capsys.disabled():
        print(f"\ngreedy parity, hf (fp32) vs llama.cpp server (Q4_1), {MAX_TOKENS} tokens: {equal}/{len(PROMPTS)} "
              f"outputs equal; max |log-prob difference| on agreeing tokens {max(deltas):.3f} nats "
              f"({len(deltas)} tokens)")
        for prompt, line in zip(PROMPTS, report):
            print(f"  {prompt.split(':')[0][:12]!r}: {line}")
    # kernels that agree closely on shared tokens, and partings only where hf's margin is
    # within what two such log-probs moving apart can flip (2 x the largest difference seen)
    assert max(deltas) < KERNEL_LIMIT, max(deltas)
    assert all(m < 2 * max(deltas) for m in margins), (margins, max(deltas))


def test_default_repeat_penalty_is_not_greedy(server, greedy_runs, capsys):
    """Why the backend sends repeat_penalty 1.0: the same greedy requests without it (the
    server's default, 1.1) give fewer outputs equal to hf's (measured 0 of 8 against 4 of
    8 on 2026-12-02)."""
    default = [server.post("/v1/completions", {"model": ALIAS, "prompt": p, "max_tokens": MAX_TOKENS,
                                               "temperature": 0.0, "top_p": 1.0})["choices"][0]["text"]
               for p in PROMPTS]
    plain = sum(h == s for h, s in zip(greedy_runs["hf"], greedy_runs["served"]))
    penalised = sum(h == s for h, s in zip(greedy_runs["hf"], default))
    with capsys.disabled():
        print(f"\noutputs equal to hf's: {plain}/{len(PROMPTS)} with repeat_penalty 1.0, "
              f"{penalised}/{len(PROMPTS)} with the server's default 1.1")
    assert penalised < plain


# ---------------------------------------------------------------------------- log-likelihood
def test_echoed_logprobs_are_shifted_and_the_backend_refuses_them(server, hf, capsys):
    """llama-cpp-python 0.3.36 pairs each echoed prompt token k with the log-probs computed
    *after* token k when the model adds no BOS token (this GGUF: add_bos_token false): one
    entry per prompt token, none for the generated token, and values that are hf's
    log-prob of token k at the position after it, not at its own. A log-likelihood from
    them would be wrong, so the backend refuses at its probe (misaligned_echo). What is
    measured here is that cause, against hf's float32 log-probs on the same ids."""
    import torch

    from rai_multi.models.openai_backend import ServerError
    from rai_multi.records import LoglikelihoodRequest

    prompt = PROMPTS[0]
    choice = server.post("/v1/completions", {"model": ALIAS, "prompt": prompt, "max_tokens": 1, "echo": True,
                                             "logprobs": 1, "temperature": 0.0, "repeat_penalty": 1.0})["choices"][0]
    ids = server.tokenize(prompt)
    echoed = choice["logprobs"]
    assert len(echoed["token_logprobs"]) == len(ids)  # the prompt's tokens only
    assert max(echoed["text_offset"]) < len(prompt) < len(choice["text"])  # a token was generated, not echoed
    with torch.inference_mode():
        lp = hf.model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
    served = echoed["token_logprobs"][1:]
    shifted = [float(lp[k, ids[k]]) for k in range(1, len(ids))]
    aligned = [float(lp[k - 1, ids[k]]) for k in range(1, len(ids))]
    off_shifted = sum(abs(a - b) for a, b in zip(served, shifted)) / len(served)
    off_aligned = sum(abs(a - b) for a, b in zip(served, aligned)) / len(served)
    with capsys.disabled():
        print(f"\necho log-probs of {len(served)} prompt tokens: mean |served - hf at the next position| "
              f"{off_shifted:.3f} nats, mean |served - hf at their own position| {off_aligned:.3f} nats")
    assert off_shifted < 0.2 < 1.0 < off_aligned, (off_shifted, off_aligned)
    with pytest.raises(ServerError, match="not aligned with the prompt's tokens"):
        _served(server.url).loglikelihood([LoglikelihoodRequest("Question: 2 + 2 =", (" 4", " 5"))], ["a"])


# ---------------------------------------------------------------------------- n, keys
def test_real_server_ignores_n_and_refuses_a_missing_key(server, gguf, tmp_path, monkeypatch):
    from rai_multi.models.openai_backend import ServerError
    from rai_multi.models.spec import load_backend, parse_model
    from rai_multi.records import GenerationRequest

    adapter = _served(server.url)
    outs = adapter.generate([GenerationRequest("The answer is", max_new_tokens=4, num_samples=3, do_sample=True,
                                               seed=3)], ["x"])[0]
    assert len(outs) == 3
    assert "ignored n" in adapter.description().get("n_continuations", "")  # llama.cpp's server ignores n
    with pytest.raises(ServerError, match="does not serve model 'other'"):
        load_backend(parse_model("openai:other", base_url=server.url))
    with LlamaServer(gguf, ALIAS, tmp_path / "keyed.log", api_key=SECRET) as keyed:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        with pytest.raises(ServerError, match="HTTP 401"):
            _served(keyed.url)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        assert len(_served(keyed.url).generate([GenerationRequest("Hi", max_new_tokens=2)], ["h"])[0]) == 1


# ---------------------------------------------------------------------------- kill, resume
LIMIT = 8  # MGSM questions; the runner commits them 4 at a time (chunk = 4 x --batch-size 1)


def _committed(db: Path) -> int:
    """Answers committed to the generation cache (read-only, while the run writes)."""
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet, or locked by the writer
        return 0


def test_server_killed_mid_run_then_resumed(gguf, tmp_path, monkeypatch, data_dir, capsys):
    """SIGKILL the server once the first chunk of answers is committed: the run fails with
    one ServerError and leaves no complete manifest, a subset of the answers is cached;
    the re-run against a fresh server (another port) sends exactly one POST per missing
    answer and completes, counting the rest as from the cache."""
    from rai_multi.cli.main import app
    from rai_multi.models.openai_backend import OpenAIAdapter, ServerError

    cache = tmp_path / "cache"
    db = cache / "generations.sqlite"
    monkeypatch.setenv("RAI_MULTI_CACHE", str(cache))
    monkeypatch.setenv("RAI_MULTI_RETRY_SECONDS", "1")
    posts: list[str] = []
    real_once = OpenAIAdapter._once

    def counting(self, method: str, path: str, body: dict[str, Any] | None):
        if method == "POST":
            posts.append(path)
        return real_once(self, method, path, body)

    monkeypatch.setattr(OpenAIAdapter, "_once", counting)
    out = tmp_path / "runs"
    argv = ["eval", "mgsm", "--model", f"openai:{ALIAS}", "--langs", "en", "--limit", str(LIMIT), "--shots", "0",
            "--setting", "direct", "--batch-size", "1", "--concurrency", "1", "--out", str(out),
            "--data-dir", str(data_dir)]

    srv = LlamaServer(gguf, ALIAS, tmp_path / "server.log").start()
    killed_at: list[int] = []
    try:
        def killer() -> None:
            deadline = time.monotonic() + 240
            while _committed(db) < 4 and time.monotonic() < deadline:
                time.sleep(0.02)
            killed_at.append(len(posts))
            srv.kill()

        watcher = threading.Thread(target=killer)
        watcher.start()
        first = CliRunner().invoke(app, argv + ["--base-url", srv.url])
        watcher.join()
    finally:
        srv.stop()
    assert isinstance(first.exception, ServerError), first.output
    done_before = _committed(db)
    assert 4 <= done_before < LIMIT, done_before
    # a failed run leaves its staging folder removed: no manifest says "complete"
    statuses = [json.loads(m.read_text())["status"] for m in out.rglob("manifest.json")]
    assert "complete" not in statuses, statuses
    posts.clear()
    with LlamaServer(gguf, ALIAS, tmp_path / "server2.log") as again:  # another port: same cache keys
        second = CliRunner().invoke(app, argv + ["--base-url", again.url])
    assert second.exit_code == 0, second.output
    [manifest] = out.rglob("manifest.json")
    doc = json.loads(manifest.read_text())
    assert doc["status"] == "complete"
    assert doc["answers"] == {"from_cache": done_before, "generated": LIMIT - done_before}
    assert posts == ["/completions"] * (LIMIT - done_before)  # nothing already cached was asked again
    assert _committed(db) == LIMIT
    with capsys.disabled():
        print(f"\nkilled after {killed_at[0]} POSTs with {done_before}/{LIMIT} answers cached; "
              f"the resumed run sent {len(posts)} POSTs and completed")


def test_missing_server_skips_or_fails_in_strict_mode(monkeypatch):
    """Without the server package the served tests skip, and fail under
    RAI_MULTI_STRICT_DATA=1 (CI): a green CI run has started a real server."""
    import served

    monkeypatch.setattr(served, "SERVER_PACKAGES", ("no_such_package_for_rai_multi",))
    monkeypatch.delenv("RAI_MULTI_STRICT_DATA", raising=False)
    with pytest.raises(pytest.skip.Exception):
        served.require_server()
    monkeypatch.setenv("RAI_MULTI_STRICT_DATA", "1")
    with pytest.raises(pytest.fail.Exception, match="fails instead of skipping"):
        served.require_server()
