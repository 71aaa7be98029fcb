"""Optional vLLM backend for GPU servers (not needed, nor installed, for tests).

Select it with ``--model vllm:<path or hub id>`` (CLI) or ``source = "vllm:..."`` (suites),
with ``tensor_parallel_size`` and ``max_model_len`` (models/spec.py). To scale out over many
GPUs, serve once with ``vllm serve --data-parallel-size N --tensor-parallel-size M`` and
evaluate with ``--model openai:<name> --concurrency K`` instead (README).

Generation maps each GenerationRequest to vLLM SamplingParams (greedy, or seeded
sampling with n samples; stop strings); log-likelihood scores continuations from vLLM's
prompt log-probabilities. Answers are cached and scored exactly as with the transformers
backend, so runs from both compare in one report. Decoder-only models only (vLLM's
support for encoder-decoder models varies by version).
"""

from __future__ import annotations

from typing import Any, Sequence

from pathlib import Path

from rai_multi.errors import ModelLoadError
from rai_multi.records import GenerationRequest, Loglikelihood, LoglikelihoodRequest


def vllm_fingerprint(model: str, revision: str | None, engine_args: dict[str, Any], chat_template: bool) -> str:
    """The canonical spec (source, revision, dtype, window, template) plus, for a local
    directory, the hash of its weights and tokenizer files, so edited weights miss the cache.
    Tensor parallelism is left out: it splits the same computation."""
    from rai_multi.models.loading import directory_fingerprint, tokenizer_fingerprint
    from rai_multi.records import canonical_json, sha256_text

    path = Path(model).expanduser()
    local = ""
    if path.is_dir():
        local = f"|{directory_fingerprint(path)}|tok:{(tokenizer_fingerprint(path) or 'none')[7:23]}"
    canon = {"model": model if not local else path.name, "revision": revision, "chat_template": chat_template,
             **{k: engine_args.get(k) for k in ("dtype", "max_model_len")}}
    return f"vllm:{path.name if local else model}@{revision or 'main'}|spec:{sha256_text(canonical_json(canon))[:16]}{local}"


class VLLMAdapter:
    cacheable = True

    def __init__(self, model: str, name: str | None = None, revision: str | None = None,
                 chat_template: bool = False, **engine_args: Any):
        try:
            from vllm import LLM
        except ImportError:
            raise ModelLoadError("--model vllm:... needs the vllm package (pip install 'rai-multi[vllm]', "
                                 "on a machine with a supported GPU); without it use the hf backend "
                                 "(plain --model) or a served model (--model openai:<name>)") from None
        self._llm = LLM(model=model, revision=revision, **engine_args)
        self._tokenizer = self._llm.get_tokenizer()
        self.name = name or model.rstrip("/").rsplit("/", 1)[-1]
        self.chat_template = chat_template
        self.fingerprint = vllm_fingerprint(model, revision, engine_args, chat_template)
        self._engine_args = engine_args

    def description(self) -> dict:
        return {"backend": "vllm", "source": self.fingerprint, "chat_template": self.chat_template,
                "dtype": str(self._llm.llm_engine.model_config.dtype).replace("torch.", ""), **{
                    k: v for k, v in self._engine_args.items() if k in ("tensor_parallel_size", "max_model_len")}}

    def _render(self, prompt: str) -> str:
        if not self.chat_template:
            return prompt
        return self._tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                   add_generation_prompt=True)

    def generate(self, requests: Sequence[GenerationRequest], ids: Sequence[str]) -> list[list[str]]:
        from vllm import SamplingParams

        params = [
            SamplingParams(n=r.num_samples, temperature=r.temperature if r.do_sample else 0.0,
                           top_k=r.top_k if r.do_sample and r.top_k else -1, top_p=r.top_p if r.do_sample else 1.0,
                           seed=r.seed if r.do_sample else None, max_tokens=r.max_new_tokens, stop=list(r.stop) or None)
            for r in requests
        ]
        outputs = self._llm.generate([self._render(r.prompt) for r in requests], params, use_tqdm=False)
        return [[c.text for c in out.outputs] for out in outputs]

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], ids: Sequence[str]) -> list[list[Loglikelihood]]:
        from vllm import SamplingParams

        prompts, spans = [], []
        for r in requests:
            ctx = self._tokenizer(r.context)["input_ids"] if r.context else [self._tokenizer.bos_token_id]
            for c in r.continuations:
                cont = self._tokenizer(c, add_special_tokens=False)["input_ids"]
                prompts.append({"prompt_token_ids": ctx + cont})
                spans.append((len(ctx), cont))
        outs = self._llm.generate(prompts, SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)
        flat = []
        for out, (n_ctx, cont) in zip(outs, spans):
            logprobs = out.prompt_logprobs
            total, greedy = 0.0, True
            for k, token in enumerate(cont):
                entry = logprobs[n_ctx + k]
                total += entry[token].logprob
                greedy = greedy and entry[token].rank == 1
            flat.append(Loglikelihood(total, len(cont), greedy))
        result, k = [], 0
        for r in requests:
            result.append(flat[k : k + len(r.continuations)])
            k += len(r.continuations)
        return result

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    @property
    def max_context(self) -> int | None:
        return int(self._llm.llm_engine.model_config.max_model_len)
