"""OpenAI-compatible servers (vllm serve, llama.cpp, TGI, Ollama, providers) as a ModelAdapter.

Why it is shaped this way:
- stdlib HTTP only (urllib): a client for two JSON endpoints needs no SDK, and the SDK's
  own retries would hide what this module must control (a cap on total retry time);
- requests go out from a thread pool (``concurrency`` in flight): a server batches
  concurrent requests itself (vLLM continuous batching), which is where its speed is;
- retries with exponential backoff on 429, 5xx, timeouts and dropped connections,
  honouring ``Retry-After``, until a total time cap; anything else that is wrong (401,
  unknown model, malformed JSON, fewer choices than asked) is a one-line
  :class:`ServerError` at once, so the runner marks no run complete;
- log-likelihoods come from ``echo`` + ``logprobs`` on ``/completions``; whether the
  server gives them is probed once, before the first scoring request, and a server that
  does not is an error, never a made-up number;
- the API key is read from the environment when a request is sent and lives only in the
  ``Authorization`` header: it is in no description, fingerprint, log or error text (error
  texts quote at most 200 characters of a server's reply, with the key masked anyway).
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import random
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

from rai_multi.errors import ModelLoadError, RaiMultiError
from rai_multi.models.text_ops import cut_at_stop, row_seed
from rai_multi.models.spec import DEFAULT_KEY_ENV, ModelSpec, base_url_host
from rai_multi.records import GenerationRequest, Loglikelihood, LoglikelihoodRequest

RETRY_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504}
# Not in OpenAI's API, but llama.cpp-family servers read it and default to 1.1 (llama-cpp-python's
# server): a penalty on every token already in the prompt or the output, so "temperature 0"
# there is not greedy decoding of the model (measured: 0 of 8 outputs equal to the hf
# backend's with the default, 4 of 8 with 1.0; tests/test_served_llamacpp.py). 1.0 is no
# penalty; vLLM ignores the unknown field; a server that rejects it is asked without it.
PENALTY_FIELD = "repeat_penalty"


class ServerError(RaiMultiError):
    """The server answered something unusable, or could not be reached in time."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff (``base`` doubling up to ``max_delay``, with jitter) until
    ``total`` seconds have been spent waiting; ``timeout`` is per request."""

    timeout: float = field(default_factory=lambda: float(os.environ.get("RAI_MULTI_HTTP_TIMEOUT", "300")))
    total: float = field(default_factory=lambda: float(os.environ.get("RAI_MULTI_RETRY_SECONDS", "300")))
    base: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return max(0.0, retry_after)
        return min(self.max_delay, self.base * 2 ** attempt) * (0.75 + 0.5 * random.random())


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def normalise_base_url(url: str) -> str:
    """``http://host:port`` or ``.../v1`` -> ``<scheme>://<host:port><path ending in /v1>``,
    with user info, query and fragment dropped (they never reach a manifest)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelLoadError(f"base URL must be http(s)://host[:port][/v1]; got {_public_url(url)!r}")
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    if ":" in parts.hostname:  # IPv6 literal
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _public_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return urlunsplit((parts.scheme, host + (f":{parts.port}" if parts.port else ""), parts.path, "", ""))


def continuation_token(token: Any, offset: Any, context_chars: int, prompt_chars: int) -> bool:
    """Whether an echoed prompt token (its text and character offset) is scored with the
    continuation that starts at character ``context_chars``.

    A token that starts at or after the boundary is; so is one that starts before it and
    carries continuation text (a token straddling the boundary: the server tokenised the
    joined text, where the hf backend tokenises context and continuation apart). The
    generated token (offset at or past the prompt's end) never is.

    Why not "ends after the boundary" alone: byte-level tokenisers split a multi-byte
    character into byte tokens, and llama.cpp's server echoes each such piece as an empty
    string at the offset where the character starts (it decodes pieces with
    ``errors="ignore"``); a character that opens the continuation then has pieces that
    "end" at the boundary, and were dropped (the continuation lost its first tokens)."""
    if not isinstance(offset, int) or offset >= prompt_chars:
        return False
    if offset >= context_chars:
        return True
    return isinstance(token, str) and offset + len(token) > context_chars


def misaligned_echo(text: str, offsets: Sequence[Any], prompt_chars: int) -> bool:
    """Whether an echo + logprobs answer (max_tokens 1) lacks an entry for the generated token.

    A correct server echoes one entry per prompt token and one for the generated token (at
    offset >= the prompt's length). llama-cpp-python 0.3.x, for a model that adds no BOS
    token, pairs prompt token k with the log-probs computed after token k (those of token
    k+1's position), so its entries are shifted by one and the generated token's is
    missing: measured on SmolLM2 (tests/test_served_llamacpp.py). The missing entry is the
    sign the client can see; an answer where nothing was generated (the model ended at
    once) cannot show it and passes."""
    generated = len(text) > prompt_chars
    return generated and not any(isinstance(o, int) and o >= prompt_chars for o in offsets)


class OpenAIAdapter:
    """ModelAdapter over ``/v1/completions`` (backend ``openai``) or ``/v1/chat/completions``
    (``openai-chat``) of one served model."""

    cacheable = True

    def __init__(self, spec: ModelSpec, name: str | None = None, retry: RetryPolicy | None = None,
                 log: Callable[[str], None] | None = None, probe: bool = True):
        self.spec = spec
        self.chat = spec.backend == "openai-chat"
        raw_url = spec.base_url or os.environ.get("OPENAI_BASE_URL")
        if not raw_url:
            raise ModelLoadError(f"{spec.backend}:{spec.source} needs a server: pass --base-url "
                                 "(e.g. http://127.0.0.1:8000/v1) or set OPENAI_BASE_URL")
        self.base_url = normalise_base_url(raw_url)
        self._key_env = spec.api_key_env or DEFAULT_KEY_ENV
        if spec.api_key_env and not os.environ.get(spec.api_key_env):
            raise ModelLoadError(f"the API key variable {spec.api_key_env} is not set")
        self.retry = retry or RetryPolicy()
        self._log = log or (lambda line: print(line, file=sys.stderr))
        self.model_id = spec.source
        self.name = name or spec.source.rstrip("/").rsplit("/", 1)[-1]
        endpoint = "chat" if self.chat else "completions"
        self.fingerprint = (f"{spec.backend}:{base_url_host(self.base_url)}/{self.model_id}"
                            f"@{spec.revision or '-'}|{endpoint}|{PENALTY_FIELD}=1"
                            f"|spec:{dataclasses.replace(spec, base_url=self.base_url).canonical_hash()}")
        self.requests_sent = 0  # HTTP requests that reached the server (tests count re-asks)
        self._lock = threading.Lock()
        self._ignores_n: bool | None = None
        self._send_penalty = True  # until the server rejects the field (see PENALTY_FIELD)
        self._echo_ok: bool | None = None
        if probe:
            self._check_model()

    # ---------------------------------------------------------------- protocol
    def description(self) -> dict[str, Any]:
        desc: dict[str, Any] = {"backend": self.spec.backend, "base_url": self.base_url,
                                "served_model": self.model_id, "revision": self.spec.revision,
                                "concurrency": self.spec.concurrency, "chat_template": self.chat}
        if self._ignores_n:
            desc["n_continuations"] = "server ignored n: one request per continuation, seeds seed+i"
        desc[PENALTY_FIELD] = "1.0 (no penalty) sent" if self._send_penalty else "rejected by the server: not sent"
        return desc

    def count_tokens(self, text: str) -> int:
        raise ModelLoadError(f"{self.spec.backend}: models have no local tokenizer to count tokens with; "
                             "drop max_model_len for this model (the server cuts prompts itself)")

    @property
    def max_context(self) -> int | None:
        return None

    # ---------------------------------------------------------------- HTTP
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self._key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _mask(self, text: str) -> str:
        key = os.environ.get(self._key_env)
        text = text.replace(key, "***") if key else text
        text = " ".join(text.split())
        return text[:200] + ("..." if len(text) > 200 else "")

    def _once(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, dict[str, str], bytes]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=self._headers())
        with self._lock:
            self.requests_sent += 1
        try:
            with urllib.request.urlopen(req, timeout=self.retry.timeout) as resp:
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as exc:
            payload = exc.read() if exc.fp is not None else b""
            return exc.code, dict(exc.headers.items()) if exc.headers else {}, payload

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, retry: bool = True) -> Any:
        """One JSON request with retries; returns the decoded JSON or raises ServerError."""
        waited, attempt, last = 0.0, 0, ""
        where = f"{_public_url(self.base_url)}{path}"
        while True:
            retry_after: float | None = None
            try:
                status, headers, payload = self._once(method, path, body)
            except (urllib.error.URLError, http.client.HTTPException, socket.timeout, TimeoutError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"no answer ({type(reason).__name__}: {self._mask(str(reason))})"
                if not retry:
                    raise ServerError(f"cannot reach {where}: {last}") from None
            else:
                if 200 <= status < 300:
                    try:
                        return json.loads(payload.decode("utf-8"))
                    except (UnicodeDecodeError, json.JSONDecodeError):
                        raise ServerError(f"{where} answered HTTP {status} with malformed JSON: "
                                          f"{self._mask(payload.decode('utf-8', 'replace'))!r}") from None
                text = self._mask(payload.decode("utf-8", "replace"))
                if status in (401, 403):
                    raise ServerError(f"{where} refused the request (HTTP {status}): check the key in "
                                      f"${self._key_env}: {text}")
                if status == 404 and self.model_id in text:
                    raise ServerError(f"{where}: the server does not serve model {self.model_id!r} (HTTP 404): {text}")
                if status not in RETRY_STATUSES and status < 500:
                    raise ServerError(f"{where} rejected the request (HTTP {status}): {text}")
                last = f"HTTP {status}: {text}"
                heads = {k.lower(): v for k, v in headers.items()}
                retry_after = parse_retry_after(heads.get("retry-after"))
            delay = self.retry.delay(attempt, retry_after)
            if waited + delay > self.retry.total:
                raise ServerError(f"{where}: gave up after {attempt + 1} tries and {waited:.0f} s of retries "
                                  f"(cap {self.retry.total:.0f} s); last: {last}")
            time.sleep(delay)
            waited += delay
            attempt += 1

    def _check_model(self) -> None:
        """Reach the server once before anything runs: unreachable, 401 and an unknown model
        fail here. A server without ``/models`` (some proxies) is let through."""
        try:
            listing = self._call("GET", "/models", retry=False)
        except ServerError as exc:
            if "HTTP 404" in str(exc) or "HTTP 405" in str(exc):
                return
            raise
        ids = [m.get("id") for m in listing.get("data", []) if isinstance(m, dict)] if isinstance(listing, dict) else []
        if ids and self.model_id not in ids:
            raise ServerError(f"{_public_url(self.base_url)} does not serve model {self.model_id!r}; "
                              f"it serves: {', '.join(map(str, ids[:10]))}")

    # ---------------------------------------------------------------- generation
    def _body(self, r: GenerationRequest, prompt: str, n: int, seed: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model_id, "max_tokens": r.max_new_tokens, "n": n, "seed": seed}
        if self.chat:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        if r.stop:
            body["stop"] = list(r.stop)
        if r.do_sample:
            body.update(temperature=r.temperature, top_p=r.top_p)
            if r.top_k:
                body["top_k"] = r.top_k  # not in OpenAI's API; vLLM and llama.cpp take it
        else:
            body.update(temperature=0.0, top_p=1.0)
        if self._send_penalty:
            body[PENALTY_FIELD] = 1.0
        return body

    def _ask(self, path: str, r: GenerationRequest, n: int, seed: int) -> Any:
        """One generation request; a server that rejects ``repeat_penalty`` (HTTP 400 naming
        it: OpenAI's own API) is asked again without it, and never sent it again."""
        try:
            return self._call("POST", path, self._body(r, r.prompt, n, seed))
        except ServerError as exc:
            if not (self._send_penalty and "HTTP 400" in str(exc) and PENALTY_FIELD in str(exc)):
                raise
        with self._lock:
            if self._send_penalty:
                self._send_penalty = False
                self._log(f"note: {_public_url(self.base_url)} rejects {PENALTY_FIELD}; not sending it")
        return self._call("POST", path, self._body(r, r.prompt, n, seed))

    def _texts(self, answer: Any, asked: int, where: str) -> list[str]:
        if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
            raise ServerError(f"{where}: the answer has no 'choices' list")
        texts = []
        for choice in sorted(answer["choices"], key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0):
            text = (choice.get("message") or {}).get("content") if self.chat and isinstance(choice, dict) else (
                choice.get("text") if isinstance(choice, dict) else None)
            if not isinstance(text, str):
                raise ServerError(f"{where}: a choice has no text")
            texts.append(text)
        if not texts or (len(texts) < asked and not (len(texts) == 1 and asked > 1)):
            raise ServerError(f"{where}: asked for {asked} continuation(s), got {len(texts)}")
        return texts

    def _generate_one(self, r: GenerationRequest, sample_id: str) -> list[str]:
        path = "/chat/completions" if self.chat else "/completions"
        where = f"{_public_url(self.base_url)}{path}"
        seed = row_seed(r.seed, sample_id) % (2**31) if r.do_sample else r.seed
        n = r.num_samples
        if n > 1 and self._ignores_n:
            texts = [self._texts(self._ask(path, r, 1, seed + i), 1, where)[0]
                     for i in range(n)]
        else:
            texts = self._texts(self._ask(path, r, n, seed), n, where)
            if len(texts) == 1 and n > 1:  # the server ignores n: one request per continuation
                if not self._ignores_n:
                    self._ignores_n = True
                    self._log(f"note: {where} ignores n; sending {n} requests with seeds seed+i instead")
                texts += [self._texts(self._ask(path, r, 1, seed + i), 1, where)[0]
                          for i in range(1, n)]
        return [cut_at_stop(t, r.stop) for t in texts[:n]]

    def _map(self, fn: Callable[[Any, str], Any], items: Sequence[Any], ids: Sequence[str]) -> list[Any]:
        """``fn`` over the items, ``concurrency`` at a time, in order; the first error cancels
        what has not started and is raised once the running requests return."""
        if self.spec.concurrency <= 1 or len(items) <= 1:
            return [fn(item, i) for item, i in zip(items, ids)]
        pool = ThreadPoolExecutor(max_workers=self.spec.concurrency)
        try:
            futures = [pool.submit(fn, item, i) for item, i in zip(items, ids)]
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def generate(self, requests: Sequence[GenerationRequest], ids: Sequence[str]) -> list[list[str]]:
        return self._map(self._generate_one, requests, ids)

    # ---------------------------------------------------------------- log-likelihood
    def _echo_logprobs(self, prompt: str) -> tuple[list[str], list[float | None], list[int], list[Any], str]:
        """The echoed prompt's tokens, log-probs, character offsets and top alternatives, and
        the answer's text (the prompt plus the one generated token)."""
        body = {"model": self.model_id, "prompt": prompt, "max_tokens": 1, "echo": True, "logprobs": 1,
                "temperature": 0.0}
        answer = self._call("POST", "/completions", body)
        where = f"{_public_url(self.base_url)}/completions"
        try:
            choice = answer["choices"][0]
            lp = choice["logprobs"]
            tokens, values, offsets = lp["tokens"], lp["token_logprobs"], lp["text_offset"]
            tops = lp.get("top_logprobs") or [None] * len(tokens)
        except (KeyError, IndexError, TypeError):
            raise ServerError(f"{where}: the answer carries no echoed prompt log-probabilities "
                              "(logprobs.tokens/token_logprobs/text_offset)") from None
        if not (isinstance(tokens, list) and len(tokens) == len(values) == len(offsets)):
            raise ServerError(f"{where}: logprobs lists of different lengths")
        text = choice.get("text") if isinstance(choice.get("text"), str) else ""
        return tokens, values, offsets, tops, text

    def _probe_echo(self) -> None:
        """Once, before any scoring request: does this server return prompt log-probs?"""
        if self._echo_ok:
            return
        where = f"{_public_url(self.base_url)}"
        if self.chat:
            raise ServerError(f"openai-chat:{self.model_id}: chat completions give no prompt log-probabilities; "
                              "use --model openai:<name> (completions) for log-likelihood tasks")
        probe = "The answer is"
        try:
            tokens, values, offsets, _, text = self._echo_logprobs(probe)
        except ServerError as exc:
            raise ServerError(f"{where} does not offer prompt log-probabilities (echo + logprobs), which "
                              f"log-likelihood tasks need: {exc}") from None
        covered = [o for o in offsets if isinstance(o, int) and o < len(probe)]
        numbers = [v for v, o in zip(values, offsets) if isinstance(o, int) and 0 < o < len(probe)]
        if len(covered) < 2 or not numbers or not all(isinstance(v, (int, float)) for v in numbers):
            raise ServerError(f"{where} does not echo the prompt's log-probabilities (echo + logprobs), which "
                              "log-likelihood tasks need; use a generative setting or the hf/vllm backend")
        if misaligned_echo(text, offsets, len(probe)):
            raise ServerError(f"{where} echoes prompt log-probabilities that are not aligned with the prompt's "
                              "tokens (a token was generated, but no log-probability was echoed for it): "
                              "llama-cpp-python's server does this for models whose GGUF adds no BOS token, "
                              "giving each prompt token the log-probability from the position before it; "
                              "refusing to score log-likelihood tasks with it (use a generative setting, "
                              "the hf backend, or a server that echoes them right, e.g. vLLM)")
        self._echo_ok = True

    def _score_pair(self, pair: tuple[str, str], sample_id: str) -> Loglikelihood:
        """Sum of the log-probs of the continuation's tokens; the one generated token
        (offset at or past the prompt's end) is left out. See :func:`continuation_token`
        for which echoed tokens those are."""
        context, continuation = pair
        prompt = context + continuation
        tokens, values, offsets, tops, _ = self._echo_logprobs(prompt)
        where = f"{_public_url(self.base_url)}/completions"
        total, count, greedy = 0.0, 0, True
        for k, (token, value, offset) in enumerate(zip(tokens, values, offsets)):
            if not continuation_token(token, offset, len(context), len(prompt)):
                continue
            if value is None:
                raise ServerError(f"{where}: no log-probability for continuation token {k} of {sample_id!r} "
                                  "(the continuation would start the text: give a non-empty context)")
            total += float(value)
            count += 1
            top = tops[k] if k < len(tops) else None
            if isinstance(top, dict) and top:
                greedy = greedy and float(value) >= max(float(v) for v in top.values()) - 1e-6
            else:
                greedy = False
        if continuation and count == 0:
            raise ServerError(f"{where}: no tokens of the continuation were echoed for {sample_id!r}")
        return Loglikelihood(total, count, greedy)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], ids: Sequence[str]) -> list[list[Loglikelihood]]:
        self._probe_echo()
        pairs = [(r.context, c) for r in requests for c in r.continuations]
        owners = [i for r, i in zip(requests, ids) for _ in r.continuations]
        flat = self._map(self._score_pair, pairs, owners)
        out, k = [], 0
        for r in requests:
            out.append(flat[k : k + len(r.continuations)])
            k += len(r.continuations)
        return out
