"""One model spec for the CLI and for suites, and the one function that turns it into a model.

Why one spec: ``--model`` on the command line and a suite's ``[[model]]`` row must mean the
same model, so both parse into this frozen dataclass and both load through
:func:`load_backend`. The backend is chosen by a prefix of the source:

- a local directory, ``.gguf`` file, hub id or ``demo:<name>``: ``hf`` (transformers);
- ``vllm:<path or hub id>``: vLLM's offline engine (GPU machines);
- ``openai:<served model name>``: an OpenAI-compatible ``/v1/completions`` endpoint;
- ``openai-chat:<served model name>``: its ``/v1/chat/completions`` endpoint;
- replay (``score`` commands) reads a predictions file and is built there.

The API key is never a field: only the *name* of the environment variable that holds it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from rai_multi.errors import ConfigError, ModelLoadError
from rai_multi.records import canonical_json, sha256_text

BACKENDS = ("hf", "vllm", "openai", "openai-chat", "replay")
PREFIXES = {"vllm:": "vllm", "openai:": "openai", "openai-chat:": "openai-chat"}
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_CONCURRENCY = 4


@dataclass(frozen=True)
class ModelSpec:
    """Where a model is and how it is used. Fields that a backend does not use keep their
    defaults (``check`` says so when they were set anyway)."""

    source: str  # hf: path/hub id/demo:<name>; vllm: path or hub id; openai*: served model name
    backend: str = "hf"
    revision: str | None = None  # hub revision; for a served model, what the user says its weights are
    dtype: str = "auto"
    chat_template: bool = False
    device: str | None = None  # hf: cpu, cuda, cuda:N; None: cuda:<LOCAL_RANK> when a GPU is there
    batch_size: int | None = None  # None: auto
    base_url: str | None = None  # openai*: else $OPENAI_BASE_URL
    api_key_env: str | None = None  # openai*: name of the variable holding the key (default OPENAI_API_KEY)
    concurrency: int = DEFAULT_CONCURRENCY  # openai*: requests in flight
    tensor_parallel_size: int = 1  # vllm
    max_model_len: int | None = None  # vllm; openai*: the served window, when known

    def check(self) -> "ModelSpec":
        """Reject values that cannot work, before anything loads or connects."""
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown model backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if not self.source:
            raise ConfigError("the model source is empty (e.g. --model openai:<served model name>)")
        for name in ("concurrency", "tensor_parallel_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number; got {value!r}")
        if self.max_model_len is not None and (isinstance(self.max_model_len, bool) or self.max_model_len < 1):
            raise ConfigError(f"max_model_len must be a positive whole number; got {self.max_model_len!r}")
        if self.backend.startswith("openai"):
            if self.dtype != "auto":
                raise ConfigError(f"dtype is the server's business for {self.backend}: models; drop {self.dtype!r}")
            if self.backend == "openai-chat" and self.chat_template:
                raise ConfigError("openai-chat: models are always templated by the server; drop chat_template")
        elif self.base_url is not None or self.api_key_env is not None:
            raise ConfigError(f"base_url/api_key_env apply to openai: and openai-chat: models, not {self.backend}")
        if self.api_key_env is not None and not self.api_key_env.replace("_", "").isalnum():
            raise ConfigError(f"api_key_env must be an environment variable name; got {self.api_key_env!r}")
        if self.device is not None:
            from rai_multi.models.device import check_device_name

            check_device_name(self.device)
        return self

    @property
    def is_served(self) -> bool:
        return self.backend in ("openai", "openai-chat")

    def canonical(self) -> dict[str, Any]:
        """What decides the answers (the fingerprint hashes it): never the key, nor how
        many requests are in flight, nor the batch size."""
        out: dict[str, Any] = {"backend": self.backend, "source": self.source, "revision": self.revision,
                               "chat_template": self.chat_template}
        if self.is_served:
            out["host"] = base_url_host(self.base_url or "")
        else:
            out["dtype"] = self.dtype
        if self.backend == "vllm":
            out["max_model_len"] = self.max_model_len
        return out

    def canonical_hash(self) -> str:
        return sha256_text(canonical_json(self.canonical()))[:16]


def base_url_host(url: str) -> str:
    """The host a base URL names (lower case, no port, user info or path): the part of a
    served model's identity that survives a server restart on another port."""
    return (urlsplit(url).hostname or "").lower()


def parse_model(value: str, **fields: Any) -> ModelSpec:
    """``--model`` text (and a suite row's ``source``) plus the other fields -> a checked spec."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("--model is empty: give a path, hub id, demo:<name>, vllm:<...> or openai:<served name>")
    value = value.strip()
    backend, source = "hf", value
    for prefix, name in sorted(PREFIXES.items(), key=lambda kv: -len(kv[0])):
        if value.startswith(prefix):
            backend, source = name, value[len(prefix):]
            break
    known = {f.name for f in dataclasses.fields(ModelSpec)} - {"source", "backend"}
    unknown = set(fields) - known
    if unknown:
        raise ConfigError(f"unknown model field(s): {', '.join(sorted(unknown))}")
    given = {k: v for k, v in fields.items() if v is not None}
    return ModelSpec(source=source, backend=backend, **given).check()


def load_backend(spec: ModelSpec, name: str | None = None) -> Any:
    """The ModelAdapter for ``spec``: the one place that maps backends to adapter classes."""
    spec.check()
    if spec.backend == "hf":
        from rai_multi.demo_models import resolve_demo_model
        from rai_multi.models.loading import load_model

        return load_model(resolve_demo_model(spec.source), batch_size=spec.batch_size, dtype=spec.dtype,
                          chat_template=spec.chat_template, revision=spec.revision, name=name, device=spec.device)
    if spec.backend == "vllm":
        from rai_multi.models.vllm_backend import VLLMAdapter

        engine: dict[str, Any] = {"tensor_parallel_size": spec.tensor_parallel_size}
        if spec.max_model_len is not None:
            engine["max_model_len"] = spec.max_model_len
        if spec.dtype != "auto":
            engine["dtype"] = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}.get(spec.dtype, spec.dtype)
        return VLLMAdapter(spec.source, name=name, revision=spec.revision, chat_template=spec.chat_template, **engine)
    if spec.is_served:
        from rai_multi.models.openai_backend import OpenAIAdapter

        return OpenAIAdapter(spec, name=name)
    raise ModelLoadError("replay models are built by the score commands from --predictions, not loaded")
