"""The OpenAI-compatible client against a fake server on loopback (tests/fake_openai.py):
retries and Retry-After, the retry cap, 401, malformed JSON, fewer choices, a server that
ignores n, unknown model, unreachable host, no echo log-probs, log-likelihood arithmetic,
concurrency, the cache (a re-run asks nothing), and the key never written anywhere."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fake_openai import FakeOpenAI
from rai_multi.models.openai_backend import OpenAIAdapter, RetryPolicy, ServerError, normalise_base_url, parse_retry_after
from rai_multi.models.spec import parse_model
from rai_multi.records import GenerationRequest, LoglikelihoodRequest

FAST = RetryPolicy(timeout=5.0, total=5.0, base=0.01, max_delay=0.05)
SECRET = "sk-test-5ecret-never-written-0123456789"


def adapter(url: str, model: str = "fake-model", backend: str = "openai", retry: RetryPolicy = FAST, **fields):
    spec = parse_model(f"{backend}:{model}", base_url=url, **fields)
    return OpenAIAdapter(spec, retry=retry, log=lambda line: None)


def greedy(prompt: str = "Q: 1+1?", **kw) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, max_new_tokens=8, **kw)


def test_generation_body_and_answer():
    with FakeOpenAI() as fake:
        a = adapter(fake.url)
        out = a.generate([greedy(stop=("\n",), seed=5)], ["id1"])
        assert out == [[" ok5"]]
        body = fake.posts()[0]["body"]
        assert body == {"model": "fake-model", "prompt": "Q: 1+1?", "max_tokens": 8, "n": 1, "seed": 5,
                        "stop": ["\n"], "temperature": 0.0, "top_p": 1.0, "repeat_penalty": 1.0}


def test_penalty_field_is_dropped_for_a_server_that_rejects_it():
    """llama.cpp-family servers default repeat_penalty to 1.1 (not greedy), so 1.0 is sent;
    OpenAI's own API rejects fields it does not know (HTTP 400 naming it): the request is
    sent again without the field, and later requests never carry it."""
    with FakeOpenAI() as fake:
        a = adapter(fake.url, concurrency=1)  # in order: the 400 answers the first request
        fake.queue.append((400, {}, b'{"error": {"message": "Unrecognized request argument supplied: repeat_penalty"}}'))
        out = a.generate([greedy(seed=1), greedy(seed=2)], ["a", "b"])
        assert out == [[" ok1"], [" ok2"]]
        bodies = [p["body"] for p in fake.posts()]
        assert [("repeat_penalty" in b) for b in bodies] == [True, False, False]
        assert "not sent" in a.description()["repeat_penalty"]
        fake.queue.append((400, {}, b'{"error": {"message": "max_tokens is too large"}}'))
        with pytest.raises(ServerError, match="HTTP 400"):  # any other 400 is still an error
            a.generate([greedy(seed=3)], ["c"])


def test_sampling_params_and_n_continuations():
    with FakeOpenAI() as fake:
        a = adapter(fake.url)
        req = GenerationRequest("p", max_new_tokens=4, num_samples=3, do_sample=True, temperature=0.7, top_k=40,
                                top_p=0.9, seed=1)
        out = a.generate([req], ["x"])[0]
        body = fake.posts()[0]["body"]
        assert (body["n"], body["temperature"], body["top_p"], body["top_k"]) == (3, 0.7, 0.9, 40)
        assert len(out) == 3 and len(set(out)) == 3 and len(fake.posts()) == 1


def test_server_that_ignores_n_gets_one_request_per_seed():
    with FakeOpenAI(n_support=False) as fake:
        a = adapter(fake.url)
        req = GenerationRequest("p", max_new_tokens=4, num_samples=3, do_sample=True, seed=1)
        out = a.generate([req], ["x"])[0]
        seeds = [p["body"]["seed"] for p in fake.posts()]
        assert len(seeds) == 3 and seeds[1] == seeds[0] + 1 and seeds[2] == seeds[0] + 2
        assert out == [f" ok{s}" for s in seeds]
        assert "ignored n" in a.description()["n_continuations"]


def test_retries_5xx_then_succeeds():
    with FakeOpenAI() as fake:
        a = adapter(fake.url)
        fake.queue += [(503, {}, b"busy"), (500, {}, b"oops")]
        assert a.generate([greedy()], ["i"]) == [[" ok0"]]
        assert len(fake.posts()) == 3


def test_retry_after_is_honoured():
    with FakeOpenAI() as fake:
        a = adapter(fake.url)
        fake.queue.append((429, {"Retry-After": "1"}, b"slow down"))
        start = time.monotonic()
        assert a.generate([greedy()], ["i"]) == [[" ok0"]]
        assert time.monotonic() - start >= 0.95  # FAST's own backoff would wait at most 0.05 s
        assert len(fake.posts()) == 2


def test_parse_retry_after_number_and_date():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None


def test_retry_time_is_capped():
    with FakeOpenAI() as fake:
        a = adapter(fake.url, retry=RetryPolicy(timeout=5.0, total=0.3, base=0.05, max_delay=0.1))
        fake.queue += [(503, {}, b"down")] * 100
        start = time.monotonic()
        with pytest.raises(ServerError, match=r"gave up after \d+ tries.*HTTP 503"):
            a.generate([greedy()], ["i"])
        assert time.monotonic() - start < 2.0


def test_401_is_one_error_without_the_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FakeOpenAI() as fake:
        a = adapter(fake.url)
        assert fake.requests[0]["auth"] == f"Bearer {SECRET}"  # the key is sent...
        fake.queue.append((401, {}, f'{{"error": "bad key {SECRET}"}}'.encode()))
        with pytest.raises(ServerError, match="HTTP 401") as err:
            a.generate([greedy()], ["i"])
        assert SECRET not in str(err.value)  # ...but never shown, even when the server echoes it
        assert len(fake.posts()) == 1  # not retried
        assert SECRET not in json.dumps(a.description()) and SECRET not in a.fingerprint


def test_named_key_variable(monkeypatch):
    monkeypatch.setenv("MY_KEY", SECRET)
    with FakeOpenAI() as fake:
        adapter(fake.url, api_key_env="MY_KEY").generate([greedy()], ["i"])
        assert all(r["auth"] == f"Bearer {SECRET}" for r in fake.requests)
    monkeypatch.delenv("MY_KEY")
    with pytest.raises(Exception, match="MY_KEY is not set"):
        adapter("http://127.0.0.1:9/v1", api_key_env="MY_KEY")


def test_malformed_json():
    with FakeOpenAI() as fake:
        a = adapter(fake.url)
        fake.queue.append((200, {}, b"{not json"))
        with pytest.raises(ServerError, match="malformed JSON"):
            a.generate([greedy()], ["i"])


def test_fewer_choices_than_asked():
    with FakeOpenAI() as fake:
        a = adapter(fake.url)
        two = json.dumps({"choices": [{"index": 0, "text": "a"}, {"index": 1, "text": "b"}]}).encode()
        fake.queue.append((200, {}, two))
        with pytest.raises(ServerError, match="asked for 3 continuation"):
            a.generate([GenerationRequest("p", num_samples=3, do_sample=True)], ["i"])
        fake.queue.append((200, {}, b'{"choices": []}'))
        with pytest.raises(ServerError, match="asked for 1 continuation"):
            a.generate([greedy()], ["i"])


def test_unknown_model():
    with FakeOpenAI() as fake:
        with pytest.raises(ServerError, match="does not serve model 'other'.*fake-model"):
            adapter(fake.url, model="other")
        assert not fake.posts()  # failed before any request


def test_unreachable_host():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ServerError, match="cannot reach"):
        adapter(f"http://127.0.0.1:{port}/v1")
    assert time.monotonic() - start < 5


def test_no_prompt_logprobs_fails_before_any_scoring_request():
    with FakeOpenAI(logprobs=False) as fake:
        a = adapter(fake.url)
        reqs = [LoglikelihoodRequest("A B", (" C", " D"))] * 5
        with pytest.raises(ServerError, match="prompt log-probabilities"):
            a.loglikelihood(reqs, [f"i{k}" for k in range(5)])
        assert len(fake.posts()) == 1  # the one probe, no scoring request


def test_chat_models_refuse_loglikelihood():
    with FakeOpenAI() as fake:
        a = adapter(fake.url, backend="openai-chat")
        assert a.generate([greedy()], ["i"]) == [[" chat0"]]
        assert fake.posts()[0]["body"]["messages"] == [{"role": "user", "content": "Q: 1+1?"}]
        with pytest.raises(ServerError, match="chat completions give no prompt log-probabilities"):
            a.loglikelihood([LoglikelihoodRequest("A", (" B",))], ["i"])


def test_loglikelihood_from_echoed_offsets():
    """Fake words: "A"(none) " B"(-1.0) " C"(-1.5) " D"(-2.0), then the generated " next".
    The continuation " C D" starts at offset 3 = len("A B"): -1.5 + -2.0, two tokens."""
    with FakeOpenAI() as fake:
        a = adapter(fake.url)
        [[cd, c]] = a.loglikelihood([LoglikelihoodRequest("A B", (" C D", " C"))], ["i"])
        assert (cd.logprob, cd.n_tokens, cd.is_greedy) == (-3.5, 2, True)
        assert (c.logprob, c.n_tokens) == (-1.5, 1)
        body = fake.posts()[-1]["body"]
        assert body["echo"] is True and body["logprobs"] == 1 and body["max_tokens"] == 1


def _echo_reply(pieces: list[tuple[str, int, float | None]], text: str) -> tuple[int, dict[str, str], bytes]:
    """A scripted /completions answer with the given (token text, offset, log-prob) rows."""
    lp = {"tokens": [p[0] for p in pieces], "text_offset": [p[1] for p in pieces],
          "token_logprobs": [p[2] for p in pieces],
          "top_logprobs": [None if p[2] is None else {p[0]: p[2]} for p in pieces]}
    body = {"choices": [{"index": 0, "text": text, "logprobs": lp}]}
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


def test_loglikelihood_counts_byte_pieces_that_open_the_continuation():
    """llama.cpp's server echoes the byte tokens of a multi-byte character as empty strings
    at the offset where the character starts (it decodes each piece alone, dropping
    incomplete UTF-8). "答" (3 bytes) opening the continuation is two pieces here, at the
    boundary offset 2: both are the continuation's (they used to be dropped, leaving a
    continuation with no tokens). A character closing the context is left out alike."""
    with FakeOpenAI() as fake:
        a = adapter(fake.url)
        a._probe_echo()
        fake.queue.append(_echo_reply([("A", 0, None), ("：", 1, -0.25), ("", 2, -1.0), ("", 2, -2.0),
                                       (" x", 3, -4.0)], "A：答 x"))
        [[cont]] = a.loglikelihood([LoglikelihoodRequest("A：", ("答",))], ["i"])
        assert (cont.logprob, cont.n_tokens, cont.is_greedy) == (-3.0, 2, True)
        fake.queue.append(_echo_reply([("", 0, None), ("答", 0, -0.5), (" B", 1, -1.5), (" x", 3, -4.0)], "答 B x"))
        [[b]] = a.loglikelihood([LoglikelihoodRequest("答", (" B",))], ["j"])
        assert (b.logprob, b.n_tokens) == (-1.5, 1)


def test_misaligned_echo_is_refused_before_any_scoring_request():
    """llama-cpp-python's server, for a model without a BOS token, echoes one entry per
    prompt token, shifted by one position, and none for the generated token: the probe
    sees the generated text without its entry and refuses, naming the cause."""
    with FakeOpenAI() as fake:
        a = adapter(fake.url)
        fake.queue.append(_echo_reply([("The", 0, None), (" answer", 3, -7.0), (" is", 10, -9.0)],
                                      "The answer is 42"))
        with pytest.raises(ServerError, match="not aligned with the prompt's tokens"):
            a.loglikelihood([LoglikelihoodRequest("A", (" B",))], ["i"])
        assert len(fake.posts()) == 1  # the probe only


def test_concurrency_keeps_k_requests_in_flight():
    with FakeOpenAI(delay=0.2) as fake:
        a = adapter(fake.url, concurrency=4)
        start = time.monotonic()
        out = a.generate([greedy(seed=i) for i in range(8)], [str(i) for i in range(8)])
        took = time.monotonic() - start
        assert out == [[f" ok{i}"] for i in range(8)]  # in request order
        assert fake.max_in_flight == 4 and took < 8 * 0.2 * 0.6


def test_fingerprint_names_host_model_and_settings_not_port(monkeypatch):
    a = OpenAIAdapter(parse_model("openai:m", base_url="http://127.0.0.1:1/v1"), probe=False)
    b = OpenAIAdapter(parse_model("openai:m", base_url="http://127.0.0.1:2/v1"), probe=False)
    c = OpenAIAdapter(parse_model("openai-chat:m", base_url="http://127.0.0.1:2/v1"), probe=False)
    d = OpenAIAdapter(parse_model("openai:m", base_url="http://127.0.0.1:2/v1", revision="v2"), probe=False)
    assert a.fingerprint == b.fingerprint and a.fingerprint.startswith("openai:127.0.0.1/m@-|completions")
    assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3
    monkeypatch.setenv("OPENAI_BASE_URL", "http://user:pw@Example.org:8000")
    e = OpenAIAdapter(parse_model("openai:m"), probe=False)
    assert e.base_url == "http://Example.org:8000/v1".replace("Example", "example") and "pw" not in e.fingerprint
    assert normalise_base_url("http://h:5/v1/") == "http://h:5/v1"


def _cli_env(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RAI_MULTI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("RAI_MULTI_RETRY_SECONDS", "0.5")


def test_cli_run_resume_and_key_never_written(tmp_path, monkeypatch, data_dir, capfd):
    from rai_multi.cli.main import app

    _cli_env(tmp_path, monkeypatch)
    runner = CliRunner()
    out = tmp_path / "runs"
    argv = ["eval", "mgsm", "--model", "openai:fake-model", "--langs", "en,de", "--limit", "3", "--shots", "0",
            "--setting", "direct", "--out", str(out), "--data-dir", str(data_dir), "--concurrency", "3"]
    with FakeOpenAI() as fake:
        first = runner.invoke(app, argv + ["--base-url", fake.url])
        assert first.exit_code == 0, first.output
        asked = len(fake.posts())
        assert asked == 6  # 3 questions x 2 languages
        again = runner.invoke(app, argv + ["--base-url", fake.url])
        assert again.exit_code == 0 and len(fake.posts()) == asked  # all from the cache
        # 401 mid-way: one error line, exit 2
        fake.post_reply = (401, {}, SECRET.encode())
        bad = runner.invoke(app, ["eval", "mgsm", "--model", "openai:fake-model", "--langs", "fr", "--limit", "2",
                                  "--shots", "0", "--setting", "direct", "--out", str(out), "--data-dir", str(data_dir),
                                  "--base-url", fake.url])
        assert bad.exit_code != 0 and isinstance(bad.exception, ServerError)
    manifests = list(out.rglob("manifest.json"))
    statuses = sorted(json.loads(m.read_text())["status"] for m in manifests)
    assert statuses == ["complete"]  # the refused run left nothing that looks like a run (its staging is dropped)
    captured = capfd.readouterr()
    written = [p for p in [*tmp_path.rglob("*")] if p.is_file()]
    assert written
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path
    for text in (first.output, again.output, str(bad.exception), captured.out, captured.err):
        assert SECRET not in text


def test_cli_error_line_and_exit_2(tmp_path, data_dir):
    import os
    import subprocess
    import sys

    env = {**os.environ, "RAI_MULTI_CACHE": str(tmp_path / "cache"), "OPENAI_API_KEY": SECRET,
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with FakeOpenAI() as fake:
        fake.queue.append((401, {}, f"invalid key {SECRET}".encode()))
        proc = subprocess.run([sys.executable, "-m", "rai_multi.cli.main", "eval", "mgsm", "--model",
                               "openai:fake-model", "--base-url", fake.url, "--langs", "en", "--limit", "1",
                               "--out", str(tmp_path / "runs"), "--data-dir", str(data_dir)],
                              capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error:") and "HTTP 401" in lines[-1] and "Traceback" not in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout


def test_client_imports_neither_torch_nor_transformers():
    """The served client speaks HTTP only: importing it must not cost a torch import (1.8 CPU
    seconds per client process, measured by benchmarks/bench_served.py before the fix)."""
    import subprocess
    import sys

    code = ("import sys, rai_multi.models.openai_backend, rai_multi.models.spec, rai_multi.records; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__('os').environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.stdout.strip() == "[]"
