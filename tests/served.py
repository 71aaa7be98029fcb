"""Start and stop a real OpenAI-compatible server on loopback: llama.cpp through
``llama-cpp-python[server]`` (``python -m llama_cpp.server``), serving a GGUF file.

Why this server: it is llama.cpp itself (the engine behind llama-server, Ollama and LM
Studio), it serves the demo GGUF files as they are (no conversion), and it is the one such
server that installs from PyPI on a CPU-only machine (it builds llama.cpp from source:
scripts/install_server.sh). It offers ``echo`` + ``logprobs`` on ``/v1/completions`` (with
``logits_all``), so the log-likelihood path is tested for real; it ignores ``n``, so the
one-request-per-continuation fallback is exercised; and its ``/extras/tokenize`` endpoint
shows the server's own token ids, which the parity tests compare with the hf tokenizer's.

Missing server package: the tests that need it skip, except under
``RAI_MULTI_STRICT_DATA=1`` (what .ci/run sets), where they fail, as missing data does
(tests/conftest.py): a green CI run has run them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from conftest import STRICT_ENV, strict_data

SERVER_PACKAGES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
SERVER_MISSING = ("llama-cpp-python[server] is not installed (bash scripts/install_server.sh installs it; "
                  ".ci/run does)")


def server_installed() -> bool:
    """Whether ``python -m llama_cpp.server`` can start (its package and its extras)."""
    return all(importlib.util.find_spec(name) is not None for name in SERVER_PACKAGES)


def require_server() -> None:
    """Skip without the server package; fail instead under strict mode (CI)."""
    if server_installed():
        return
    if strict_data():
        pytest.fail(f"{SERVER_MISSING}; {STRICT_ENV} is set, so this fails instead of skipping", pytrace=False)
    pytest.skip(SERVER_MISSING)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """``with LlamaServer(gguf, alias, log) as srv: srv.url``; waits at most ``start_timeout``.

    One CPU thread by default: the machines this runs on have two shared cores, and the
    client (and the hf side of the parity tests) needs the other one."""

    def __init__(self, gguf: Path, alias: str, log: Path, api_key: str | None = None,
                 start_timeout: float = 180.0, threads: int = 1, n_ctx: int = 2048):
        self.gguf, self.alias, self.log, self.api_key = gguf, alias, log, api_key
        self.start_timeout, self.threads, self.n_ctx = start_timeout, threads, n_ctx
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.root + "/v1"

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--model_alias", self.alias,
                "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
                "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads), "--n_batch", "512",
                "--logits_all", "true", "--seed", "0", "--verbose", "false"]
        return argv + (["--api_key", self.api_key] if self.api_key else [])

    def start(self) -> "LlamaServer":
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode}: "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            try:
                if self.get("/v1/models").get("data"):
                    return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer within {self.start_timeout:.0f} s")

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def get(self, path: str) -> Any:
        req = urllib.request.Request(self.root + path, headers=self._headers())
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """A raw request (the tests' own probes: token ids, echoed log-probs)."""
        req = urllib.request.Request(self.root + path, data=json.dumps(body).encode(), headers=self._headers())
        with urllib.request.urlopen(req, timeout=300) as resp:
            return json.loads(resp.read())

    def tokenize(self, text: str) -> list[int]:
        """The server's own token ids for ``text`` (what /v1/completions feeds the model)."""
        return list(self.post("/extras/tokenize", {"input": text})["tokens"])

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
