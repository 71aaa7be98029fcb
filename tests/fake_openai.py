"""A tiny OpenAI-compatible server on loopback for the client's unit tests.

It answers ``/v1/models`` and ``/v1/completions`` (and ``/v1/chat/completions``) in the
OpenAI shape; a test scripts failures by pushing (status, headers, body) replies onto
``queue``, which are served first, one per request (or sets ``post_reply`` for every POST). Completions are deterministic: the
continuation of a prompt is ``" ok<seed>"``; echoed prompts are split into whitespace-led
words, word i (i >= 1) getting log-prob -0.5 * (i + 1), the first none, each word its own
top-1 alternative (so every continuation is greedy).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def words(text: str) -> list[str]:
    return re.findall(r"\s*\S+", text)


class FakeOpenAI:
    def __init__(self, model: str = "fake-model", n_support: bool = True, logprobs: bool = True,
                 delay: float = 0.0):
        self.model = model
        self.n_support = n_support
        self.logprobs = logprobs
        self.delay = delay
        self.queue: list[tuple[int, dict[str, str], bytes]] = []
        self.post_reply: tuple[int, dict[str, str], bytes] | None = None  # every POST gets it when set
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                with fake._lock:
                    fake.requests.append({"method": method, "path": self.path, "body": body,
                                          "auth": self.headers.get("Authorization")})
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                    scripted = fake.queue.pop(0) if fake.queue else None
                    if scripted is None and method == "POST" and fake.post_reply is not None:
                        scripted = fake.post_reply
                try:
                    if fake.delay:
                        time.sleep(fake.delay)
                    if scripted is not None:
                        self._reply(*scripted)
                    else:
                        status, payload = fake.answer(method, self.path, body, self.headers.get("Authorization"))
                        self._reply(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def posts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST"]

    def answer(self, method: str, path: str, body: Any, auth: str | None) -> tuple[int, Any]:
        if path == "/v1/models":
            return 200, {"object": "list", "data": [{"id": self.model, "object": "model"}]}
        if body.get("model") != self.model:
            return 404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}}
        n = int(body.get("n", 1)) if self.n_support else 1
        seed = int(body.get("seed", 0))
        if path == "/v1/chat/completions":
            choices = [{"index": i, "message": {"role": "assistant", "content": f" chat{seed + i}"}} for i in range(n)]
            return 200, {"choices": choices}
        prompt = body["prompt"]
        if body.get("echo"):
            toks = words(prompt) + [" next"]
            offsets, pos = [], 0
            for t in toks:
                offsets.append(pos)
                pos += len(t)
            values = [None] + [-0.5 * (i + 1) for i in range(1, len(toks))]
            tops = [None] + [{t: v} for t, v in zip(toks[1:], values[1:])]
            lp = {"tokens": toks, "token_logprobs": values, "text_offset": offsets, "top_logprobs": tops}
            choice: dict[str, Any] = {"index": 0, "text": prompt + " next"}
            if self.logprobs:
                choice["logprobs"] = lp
            return 200, {"choices": [choice]}
        text = f" ok{seed}"
        return 200, {"choices": [{"index": i, "text": f" ok{seed + i}" if n > 1 else text} for i in range(n)]}
