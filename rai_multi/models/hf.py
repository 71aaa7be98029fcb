"""transformers backend: batched generation and log-likelihood for seq2seq and causal LMs.

Why it is shaped this way:
- requests are sorted by token length and batched, so padding is small;
- causal models pad on the left so every row's new tokens start at the same column;
- stop strings are checked on the newly generated text only (a stop string inside the
  prompt never ends generation early, and CoT does not run to the token limit);
- log-likelihood scores continuation tokens only; for seq2seq the encoder runs once per
  context and its states are shared by all of that context's continuations.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from rai_multi.records import GenerationRequest, Loglikelihood, LoglikelihoodRequest

_LARGE = 1_000_000
PREFIX_MIN_TOKENS = 32


@dataclass(frozen=True)
class _GenKey:
    """Requests that can share one generate() call."""

    max_new_tokens: int
    stop: tuple[str, ...]
    num_samples: int
    do_sample: bool
    temperature: float
    top_k: int
    top_p: float


class _StopOnStrings:
    """Stopping criterion: a row is done once its new text contains any stop string."""

    def __init__(self, tokenizer: Any, stops: tuple[str, ...], start: int):
        self.tokenizer = tokenizer
        self.stops = stops
        self.start = start

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if not self.stops:
            return done
        new = input_ids[:, self.start :]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        for i, text in enumerate(texts):
            if any(s in text for s in self.stops):
                done[i] = True
        return done


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """Text up to the earliest stop string (the stop string itself removed)."""
    cut = len(text)
    for s in stops:
        pos = text.find(s)
        if pos != -1:
            cut = min(cut, pos)
    return text[:cut]


class HFAdapter:
    """ModelAdapter over a loaded transformers model and tokenizer."""

    cacheable = True

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        fingerprint: str,
        batch_size: int = 16,
        chat_template: bool = False,
        description: dict[str, Any] | None = None,
        prefix_reuse: bool = True,
        token_budget: int | None = None,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.fingerprint = fingerprint
        self.batch_size = batch_size
        self.chat_template = chat_template
        self.prefix_reuse = prefix_reuse
        # Padded prompt tokens per generation batch: 4k on CPU (measured: batches of
        # 2k-token prompts run slower than batch size 1 there), 64k on a GPU.
        self.token_budget = token_budget or (65536 if torch.cuda.is_available() else 4096)
        self.is_seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
        self._description = description or {}
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        if chat_template and not getattr(tokenizer, "chat_template", None):
            from rai_multi.errors import ModelLoadError

            raise ModelLoadError(f"{name}: --chat-template was asked for but the tokenizer has no chat template")

    # ---------------------------------------------------------------- description
    def description(self) -> dict[str, Any]:
        return {
            "backend": "transformers",
            "architecture": type(self.model).__name__,
            "seq2seq": self.is_seq2seq,
            "dtype": str(next(self.model.parameters()).dtype).replace("torch.", ""),
            "chat_template": self.chat_template,
            **self._description,
        }

    @property
    def max_context(self) -> int | None:
        if self.is_seq2seq:
            if getattr(self.model.config, "relative_attention_num_buckets", None):
                # T5-style relative positions have no hard limit; Flan-T5 was finetuned
                # with 2048 input tokens, so that is where inputs are cut.
                return 2048
            limit = getattr(self.tokenizer, "model_max_length", None)
            return int(limit) if limit and limit < _LARGE else 512
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(self.model.config, attr, None)
            if value:
                return int(value)
        return None

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # ---------------------------------------------------------------- prompts
    def _render(self, prompt: str) -> str:
        if not self.chat_template:
            return prompt
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )

    def _encode_prompts(self, prompts: Sequence[str], max_new_tokens: int) -> list[list[int]]:
        """Token ids per prompt, left-truncated to fit the context window with the new tokens."""
        rendered = [self._render(p) for p in prompts]
        ids = self.tokenizer(list(rendered), add_special_tokens=not self.chat_template)["input_ids"]
        limit = self.max_context
        if limit is not None:
            room = limit if self.is_seq2seq else max(1, limit - max_new_tokens)
            ids = [x[-room:] if len(x) > room else x for x in ids]
        return ids

    def _pad(self, rows: Sequence[Sequence[int]], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            if left:
                ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
                mask[i, width - len(r) :] = 1
            else:
                ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
                mask[i, : len(r)] = 1
        return ids.to(self.model.device), mask.to(self.model.device)

    # ---------------------------------------------------------------- generation
    def generate(self, requests: Sequence[GenerationRequest], ids: Sequence[str]) -> list[list[str]]:
        results: list[list[str] | None] = [None] * len(requests)
        groups: dict[_GenKey, list[int]] = {}
        for i, r in enumerate(requests):
            key = _GenKey(r.max_new_tokens, r.stop, r.num_samples, r.do_sample, r.temperature, r.top_k, r.top_p)
            groups.setdefault(key, []).append(i)
        for key, indices in groups.items():
            encoded = self._encode_prompts([requests[i].prompt for i in indices], key.max_new_tokens)
            if self._prefix_reuse_applies(key):
                done = self._generate_shared_prefixes(requests, indices, encoded, key, results)
                keep = [j for j in range(len(indices)) if indices[j] not in done]
                indices = [indices[j] for j in keep]
                encoded = [encoded[j] for j in keep]
            order = sorted(range(len(indices)), key=lambda j: -len(encoded[j]))
            for batch in self._budget_batches(order, [len(e) for e in encoded]):
                rows = [encoded[j] for j in batch]
                batch_ids = [ids[indices[j]] for j in batch]
                seed = requests[indices[batch[0]]].seed + zlib.crc32("|".join(batch_ids).encode())
                texts = self._generate_batch(rows, key, seed)
                for j, outs in zip(batch, texts):
                    results[indices[j]] = outs
        return [r if r is not None else [] for r in results]

    def _budget_batches(self, order: Sequence[int], lengths: Sequence[int]) -> list[list[int]]:
        """Batches of at most ``batch_size`` requests and about ``token_budget`` padded
        tokens, over ``order`` (longest first): long prompts go in small batches, whose
        attention matrices stay in cache on a CPU, short ones in full batches."""
        batches, start = [], 0
        while start < len(order):
            longest = max(1, lengths[order[start]])
            size = max(1, min(self.batch_size, self.token_budget // longest))
            batches.append(list(order[start : start + size]))
            start += size
        return batches

    # ---------------------------------------------------------------- few-shot prefix reuse
    def _prefix_reuse_applies(self, key: _GenKey) -> bool:
        """Few-shot prompts share their exemplar block; for decoder-only models with a plain
        (non-sliding) KV cache and greedy single answers, that block is encoded once."""
        if self.is_seq2seq or not self.prefix_reuse or key.do_sample or key.num_samples != 1:
            return False
        config = self.model.config
        return not getattr(config, "sliding_window", None) and not getattr(config, "layer_types", None)

    def _generate_shared_prefixes(self, requests, indices, encoded, key: _GenKey, results) -> set[int]:
        """Generate the requests whose prompts share an exemplar block (everything up to the
        last blank line) of at least PREFIX_MIN_TOKENS tokens; returns the indices done."""
        by_prefix: dict[str, list[int]] = {}
        for j, i in enumerate(indices):
            head, sep, _ = requests[i].prompt.rpartition("\n\n")
            if sep:
                by_prefix.setdefault(head + sep, []).append(j)
        done: set[int] = set()
        for prefix_text, members in by_prefix.items():
            if len(members) < 2:
                continue
            prefix = self.tokenizer(prefix_text, add_special_tokens=True)["input_ids"]
            if len(prefix) < PREFIX_MIN_TOKENS or not all(encoded[j][: len(prefix)] == prefix and len(encoded[j]) > len(prefix)
                                                          for j in members):
                continue  # tokenisation does not split at the boundary (or truncated): simple path
            cache = self._prefix_cache(prefix)
            members.sort(key=lambda j: -len(encoded[j]))
            for batch in self._budget_batches(members, [len(e) - len(prefix) for e in encoded]):
                texts = self._generate_prefixed(cache, prefix, [encoded[j][len(prefix):] for j in batch], key)
                for j, outs in zip(batch, texts):
                    results[indices[j]] = outs
                    done.add(indices[j])
        return done

    @torch.inference_mode()
    def _prefix_cache(self, prefix: list[int]):
        ids = torch.tensor([prefix], device=self.model.device)
        return self.model(input_ids=ids, use_cache=True).past_key_values

    @torch.inference_mode()
    def _generate_prefixed(self, cache, prefix: list[int], suffixes: list[list[int]], key: _GenKey) -> list[list[str]]:
        import copy

        width = max(len(s) for s in suffixes)
        rows = [prefix + [self.tokenizer.pad_token_id] * (width - len(s)) + s for s in suffixes]
        input_ids = torch.tensor(rows, device=self.model.device)
        mask = torch.ones_like(input_ids)
        for i, s in enumerate(suffixes):
            mask[i, len(prefix) : len(prefix) + width - len(s)] = 0  # padding sits between prefix and suffix
        past = copy.deepcopy(cache)
        past.batch_repeat_interleave(len(rows))
        start = input_ids.shape[1]
        kwargs: dict[str, Any] = dict(input_ids=input_ids, attention_mask=mask, past_key_values=past,
                                      max_new_tokens=key.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                                      do_sample=False, temperature=None, top_k=None, top_p=None)
        if key.stop:
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList([_StopOnStrings(self.tokenizer, key.stop, start)])
        out = self.model.generate(**kwargs)
        texts = self.tokenizer.batch_decode(out[:, start:], skip_special_tokens=True)
        return [[cut_at_stop(t, key.stop)] for t in texts]

    @torch.inference_mode()
    def _generate_batch(self, rows: Sequence[Sequence[int]], key: _GenKey, seed: int) -> list[list[str]]:
        input_ids, mask = self._pad(rows, left=not self.is_seq2seq)
        start = 1 if self.is_seq2seq else input_ids.shape[1]  # seq2seq outputs begin with the start token
        kwargs: dict[str, Any] = dict(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=key.max_new_tokens,
            num_return_sequences=key.num_samples,
            pad_token_id=self.tokenizer.pad_token_id,
            do_sample=key.do_sample,
        )
        if key.do_sample:
            kwargs.update(temperature=key.temperature, top_k=key.top_k or None, top_p=key.top_p)
            torch.manual_seed(seed % (2**31))
        else:
            kwargs.update(temperature=None, top_k=None, top_p=None)
        if key.stop:
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList([_StopOnStrings(self.tokenizer, key.stop, start)])
        out = self.model.generate(**kwargs)
        texts = self.tokenizer.batch_decode(out[:, start:], skip_special_tokens=True)
        texts = [cut_at_stop(t, key.stop) for t in texts]
        k = key.num_samples
        return [texts[i * k : (i + 1) * k] for i in range(len(rows))]

    # ---------------------------------------------------------------- log-likelihood
    def _context_ids(self, context: str) -> list[int]:
        ids = self.tokenizer(self._render(context) if context else context, add_special_tokens=True)["input_ids"]
        if not ids and not self.is_seq2seq:
            # An empty context still needs one token to condition the first continuation token.
            first = self.tokenizer.bos_token_id
            ids = [first if first is not None else self.tokenizer.eos_token_id]
        return list(ids)

    def _continuation_ids(self, continuation: str) -> list[int]:
        return list(self.tokenizer(continuation, add_special_tokens=False)["input_ids"])

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], ids: Sequence[str]) -> list[list[Loglikelihood]]:
        results: list[list[Loglikelihood]] = [[] for _ in requests]
        prepared = [
            (self._context_ids(r.context), [self._continuation_ids(c) for c in r.continuations]) for r in requests
        ]
        order = sorted(range(len(requests)), key=lambda i: -(len(prepared[i][0]) + max((len(c) for c in prepared[i][1]), default=0)))
        batch: list[int] = []
        pairs = 0
        for i in order:
            n = len(prepared[i][1])
            if batch and pairs + n > self.batch_size:
                self._score_requests([prepared[j] for j in batch], [results[j] for j in batch])
                batch, pairs = [], 0
            batch.append(i)
            pairs += n
        if batch:
            self._score_requests([prepared[j] for j in batch], [results[j] for j in batch])
        return results

    @torch.inference_mode()
    def _score_requests(
        self, prepared: Sequence[tuple[list[int], list[list[int]]]], sinks: Sequence[list[Loglikelihood]]
    ) -> None:
        if self.is_seq2seq:
            self._score_seq2seq(prepared, sinks)
        else:
            self._score_causal(prepared, sinks)

    @staticmethod
    def _gather(logits: torch.Tensor, targets: list[int], positions: range) -> Loglikelihood:
        if not targets:
            return Loglikelihood(0.0, 0, True)
        rows = logits[positions.start : positions.stop].float().log_softmax(-1)
        tgt = torch.tensor(targets, device=rows.device)
        logprob = rows.gather(1, tgt[:, None]).sum().item()
        greedy = bool((rows.argmax(-1) == tgt).all().item())
        return Loglikelihood(float(logprob), len(targets), greedy)

    def _score_causal(self, prepared, sinks) -> None:
        """Rows are left-padded so every continuation ends in the last column; only the
        logits of the last (longest continuation + 1) positions are computed, which for
        large vocabularies (Gemma: 262k) is most of the cost of a forward pass."""
        limit = self.max_context or _LARGE
        rows, conts = [], []
        for ctx, cont_list in prepared:
            for cont in cont_list:
                rows.append((ctx + cont)[-limit:])
                conts.append(cont)
        input_ids, mask = self._pad(rows, left=True)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        keep = max(len(c) for c in conts) + 1
        logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids,
                            logits_to_keep=keep).logits
        width = logits.shape[1]  # == keep: column j is sequence position (W - keep + j)
        k = 0
        for (ctx, cont_list), sink in zip(prepared, sinks):
            for _ in cont_list:
                cont = conts[k]
                # the logit predicting continuation token t sits one column before it
                sink.append(self._gather(logits[k], cont, range(width - len(cont) - 1, width - 1)))
                k += 1

    def _score_seq2seq(self, prepared, sinks) -> None:
        limit = self.max_context or _LARGE
        contexts = [ctx[-limit:] if len(ctx) > limit else ctx for ctx, _ in prepared]
        enc_ids, enc_mask = self._pad(contexts, left=False)
        encoder_states = self.model.get_encoder()(input_ids=enc_ids, attention_mask=enc_mask).last_hidden_state
        owner, targets = [], []
        for i, (_, conts) in enumerate(prepared):
            for cont in conts:
                owner.append(i)
                targets.append(cont)
        start_id = self.model.config.decoder_start_token_id
        dec_rows = [[start_id] + t[:-1] if t else [start_id] for t in targets]
        dec_ids, dec_mask = self._pad(dec_rows, left=False)
        index = torch.tensor(owner, device=encoder_states.device)
        from transformers.modeling_outputs import BaseModelOutput

        logits = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=encoder_states[index]),
            attention_mask=enc_mask[index],
            decoder_input_ids=dec_ids,
            decoder_attention_mask=dec_mask,
        ).logits
        k = 0
        for (_, conts), sink in zip(prepared, sinks):
            for _ in conts:
                sink.append(self._gather(logits[k], targets[k], range(0, len(targets[k]))))
                k += 1
