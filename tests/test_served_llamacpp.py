"""The openai: backend against a real llama.cpp server process on loopback (tests/served.py),
serving a tiny float32 GGUF written here from the tiny causal model (test_gguf.py's
writer): greedy parity with the hf backend loading the same file, log-likelihood parity,
the real server's 401 and n handling, and a server killed mid-run then resumed from the
cache without re-asking. Skipped only when llama-cpp-python[server] is not installed."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from served import SERVER_MISSING, LlamaServer, server_installed
from test_gguf import write_llama_gguf

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not server_installed(), reason=SERVER_MISSING)]

PROMPTS = [
    "Question: Roger has 5 tennis balls. The answer is", "Frage: Die Antwort ist", "Pregunta: La respuesta es",
    "Question : La réponse est", "問題：答えは", "问题：答案是", "Задача: Ответ —", "Swali: Jibu ni",
    "The quick brown fox", "yes no Yes", "سؤال: الإجابة هي", "Kysymys: Vastaus on", "Pertanyaan: Jawabannya",
    "질문: 답은", "প্রশ্ন: উত্তর হল", "โจทย์: คำตอบคือ",
]
SECRET = "sk-llama-test-secret-0987654321"


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    from rai_multi.models.tiny import build_tiny_model

    folder = tmp_path_factory.mktemp("served")
    path = folder / "tiny-llama-f32.gguf"
    write_llama_gguf(build_tiny_model(folder / "tiny", "tiny-causal"), path, add_bos=True)
    return path


@pytest.fixture(scope="module")
def server(tiny_gguf, tmp_path_factory):
    with LlamaServer(tiny_gguf, "tiny", tmp_path_factory.mktemp("log") / "server.log") as srv:
        yield srv


def _served(url: str, **fields):
    from rai_multi.models.spec import load_backend, parse_model

    return load_backend(parse_model("openai:tiny", base_url=url, **fields))


def test_greedy_parity_with_the_hf_backend(server, tiny_gguf, tmp_path, monkeypatch):
    """Same file, both float32, greedy, 8 new tokens: every one of the 16 outputs equal.
    (Differences here could only come from tokenisation or kernels: there is no
    dequantisation, and no chat template on /completions.)"""
    from rai_multi.models.loading import load_model
    from rai_multi.records import GenerationRequest

    monkeypatch.setenv("RAI_MULTI_MODEL_CACHE", str(tmp_path / "cache"))
    requests = [GenerationRequest(p, max_new_tokens=8) for p in PROMPTS]
    ids = [str(i) for i in range(len(PROMPTS))]
    hf = load_model(str(tiny_gguf), dtype="fp32", batch_size=1).generate(requests, ids)
    served = _served(server.url, concurrency=2).generate(requests, ids)
    equal = sum(a == b for a, b in zip(hf, served))
    diffs = [(p, a, b) for p, a, b in zip(PROMPTS, hf, served) if a != b]
    print(f"greedy parity hf vs llama.cpp server: {equal}/{len(PROMPTS)} equal; differences: {diffs}")
    assert equal == len(PROMPTS), diffs


def test_loglikelihood_parity_with_the_hf_backend(server, tiny_gguf, tmp_path, monkeypatch):
    from rai_multi.models.loading import load_model
    from rai_multi.records import LoglikelihoodRequest

    monkeypatch.setenv("RAI_MULTI_MODEL_CACHE", str(tmp_path / "cache"))
    requests = [LoglikelihoodRequest("Question: The answer is", (" 11.", " 29.")),
                LoglikelihoodRequest("The quick brown fox", (" jumps over", " yes no"))]
    hf = load_model(str(tiny_gguf), dtype="fp32").loglikelihood(requests, ["a", "b"])
    served = _served(server.url).loglikelihood(requests, ["a", "b"])
    for h_list, s_list in zip(hf, served):
        for h, s in zip(h_list, s_list):
            assert s.n_tokens == h.n_tokens
            assert s.logprob == pytest.approx(h.logprob, abs=2e-3)
            assert s.is_greedy == h.is_greedy


def test_real_server_ignores_n_and_refuses_a_missing_key(server, tiny_gguf, tmp_path, monkeypatch):
    from rai_multi.models.openai_backend import ServerError
    from rai_multi.records import GenerationRequest

    adapter = _served(server.url)
    outs = adapter.generate([GenerationRequest("The answer is", max_new_tokens=4, num_samples=3, do_sample=True,
                                               seed=3)], ["x"])[0]
    assert len(outs) == 3
    assert "ignored n" in adapter.description().get("n_continuations", "")  # llama.cpp's server ignores n
    with pytest.raises(ServerError, match="does not serve model 'other'"):
        from rai_multi.models.spec import load_backend, parse_model

        load_backend(parse_model("openai:other", base_url=server.url))
    with LlamaServer(tiny_gguf, "tiny", tmp_path / "keyed.log", api_key=SECRET) as keyed:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        with pytest.raises(ServerError, match="HTTP 401"):
            _served(keyed.url)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        assert len(_served(keyed.url).generate([GenerationRequest("Hi", max_new_tokens=2)], ["h"])[0]) == 1


def test_server_killed_mid_run_then_resumed(tiny_gguf, tmp_path, monkeypatch, data_dir):
    from rai_multi.cli.main import app
    from rai_multi.models.openai_backend import OpenAIAdapter, ServerError

    cache = tmp_path / "cache"
    monkeypatch.setenv("RAI_MULTI_CACHE", str(cache))
    monkeypatch.setenv("RAI_MULTI_RETRY_SECONDS", "1")
    posts: list[str] = []
    real_once = OpenAIAdapter._once

    def counting(self, method, path, body):
        if method == "POST":
            posts.append(path)
        return real_once(self, method, path, body)

    monkeypatch.setattr(OpenAIAdapter, "_once", counting)
    out = tmp_path / "runs"
    argv = ["eval", "mgsm", "--model", "openai:tiny", "--langs", "en", "--limit", "10", "--shots", "0",
            "--setting", "direct", "--batch-size", "1", "--concurrency", "1", "--out", str(out),
            "--data-dir", str(data_dir)]

    def committed() -> int:
        db = cache / "generations.sqlite"
        if not db.is_file():
            return 0
        with sqlite3.connect(str(db)) as conn:
            return conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    srv = LlamaServer(tiny_gguf, "tiny", tmp_path / "server.log").start()
    try:
        def killer() -> None:
            deadline = time.monotonic() + 300
            while committed() < 4 and time.monotonic() < deadline:  # one chunk (4 x batch size 1) in the cache
                time.sleep(0.05)
            srv.kill()

        watcher = threading.Thread(target=killer)
        watcher.start()
        first = CliRunner().invoke(app, argv + ["--base-url", srv.url])
        watcher.join()
    finally:
        srv.stop()
    assert isinstance(first.exception, ServerError), first.output
    done_before = committed()
    assert 4 <= done_before < 10
    [manifest] = out.rglob("manifest.json")
    assert json.loads(manifest.read_text())["status"] != "complete"
    posts.clear()
    with LlamaServer(tiny_gguf, "tiny", tmp_path / "server2.log") as again:  # another port: same cache keys
        second = CliRunner().invoke(app, argv + ["--base-url", again.url])
    assert second.exit_code == 0, second.output
    doc = json.loads(manifest.read_text())
    assert doc["status"] == "complete"
    assert doc["answers"] == {"from_cache": done_before, "generated": 10 - done_before}
    assert len(posts) == 10 - done_before  # nothing already cached was asked again
