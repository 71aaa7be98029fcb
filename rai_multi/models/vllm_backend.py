"""Optional vLLM backend for GPU servers (not needed, nor installed, for tests).

Use it from Python where vLLM is installed::

    from rai_multi.models.vllm_backend import VLLMAdapter
    from rai_multi.runner import RunOptions, evaluate
    evaluate(task, VLLMAdapter("google/gemma-3-270m"), RunOptions(out_dir=Path("runs"), name="gemma"))

Generation maps each GenerationRequest to vLLM SamplingParams (greedy, or seeded
sampling with n samples; stop strings); log-likelihood scores continuations from vLLM's
prompt log-probabilities. Answers are cached and scored exactly as with the transformers
backend, so runs from both compare in one report. Decoder-only models only (vLLM's
support for encoder-decoder models varies by version).
"""

from __future__ import annotations

from typing import Any, Sequence

from rai_multi.errors import ModelLoadError
from rai_multi.records import GenerationRequest, Loglikelihood, LoglikelihoodRequest


class VLLMAdapter:
    cacheable = True

    def __init__(self, model: str, name: str | None = None, revision: str | None = None, **engine_args: Any):
        try:
            from vllm import LLM
        except ImportError:
            raise ModelLoadError("the vLLM backend needs vllm (pip install vllm, on a GPU machine)") from None
        self._llm = LLM(model=model, revision=revision, **engine_args)
        self._tokenizer = self._llm.get_tokenizer()
        self.name = name or model.rstrip("/").rsplit("/", 1)[-1]
        self.fingerprint = f"vllm:{model}@{revision or 'main'}"

    def description(self) -> dict:
        return {"backend": "vllm", "source": self.fingerprint}

    def generate(self, requests: Sequence[GenerationRequest], ids: Sequence[str]) -> list[list[str]]:
        from vllm import SamplingParams

        params = [
            SamplingParams(n=r.num_samples, temperature=r.temperature if r.do_sample else 0.0,
                           top_k=r.top_k if r.do_sample and r.top_k else -1, top_p=r.top_p if r.do_sample else 1.0,
                           seed=r.seed if r.do_sample else None, max_tokens=r.max_new_tokens, stop=list(r.stop) or None)
            for r in requests
        ]
        outputs = self._llm.generate([r.prompt for r in requests], params, use_tqdm=False)
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
