"""Start and stop a real OpenAI-compatible server on loopback: llama.cpp through
``llama-cpp-python[server]`` (``python -m llama_cpp.server``), serving a GGUF file.

Why this server: it is llama.cpp itself (the engine behind llama-server, Ollama and LM
Studio) and the one such server that installs from PyPI here (it builds llama.cpp from
source: over 65 minutes on the two shared, heavily loaded
cores of the development machine, much less on an idle one); it offers ``echo`` + ``logprobs`` on
``/v1/completions`` (with ``logits_all``), so the log-likelihood path is tested too, and
it ignores ``n``, so the one-request-per-continuation fallback is exercised for real.
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

SERVER_MISSING = ("llama-cpp-python[server] is not installed (scripts/install.sh installs it; "
                  "CI runs these tests)")


def server_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("uvicorn") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """``with LlamaServer(gguf, alias) as srv: srv.url``; waits at most ``start_timeout``."""

    def __init__(self, gguf: Path, alias: str, log: Path, api_key: str | None = None, start_timeout: float = 180.0):
        self.gguf, self.alias, self.log, self.api_key = gguf, alias, log, api_key
        self.start_timeout = start_timeout
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "LlamaServer":
        argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--model_alias", self.alias,
                "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "1024", "--n_threads", "1",
                "--n_batch", "512", "--logits_all", "true", "--seed", "0", "--verbose", "false"]
        if self.api_key:
            argv += ["--api_key", self.api_key]
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                req = urllib.request.Request(self.url + "/models", headers={"Authorization": f"Bearer {self.api_key}"}
                                             if self.api_key else {})
                with urllib.request.urlopen(req, timeout=2) as resp:
                    if json.loads(resp.read()).get("data"):
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer within {self.start_timeout:.0f} s")

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
