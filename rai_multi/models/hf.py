"""transformers backend: batched generation and log-likelihood for seq2seq and causal LMs.

Why it is shaped this way:
- requests are sorted by token length and batched, so padding is small; generation runs
  in our own decode loop (models/decoding.py: per-row stop strings checked on the new
  text only, finished rows dropped, token-budget prefill, preallocated cache);
- few-shot prompts of decoder-only models that share their exemplar block prefill it once;
- log-likelihood scores continuation tokens only. For decoder-only models each request's
  context and its options' common token prefix are encoded once and only the options' own
  tokens run after the cached keys and values (shared_scoring.py); ``shared_scoring=False``
  keeps the plain path (context + option per option), for comparison. For seq2seq the
  encoder runs once per context and its states are shared by all of that context's
  continuations.
"""

from __future__ import annotations

import hashlib
import json

from typing import Any, Sequence

import torch

from rai_multi.models.auto_batch import (ROWS_GPU, SCORING_PAIRS, DecodeBytes, OomBackoff, auto_decode_rows,
                                         decode_bytes, is_out_of_memory)
from rai_multi.models.decoding import (CausalDecoder, DecodeRow, PrefillUnit, Sampling, Seq2SeqDecoder, cut_at_stop,
                                      row_seed)
from rai_multi.models.shared_scoring import SharedContextScorer, common_prefix_length
from rai_multi.records import GenerationRequest, Loglikelihood, LoglikelihoodRequest

__all__ = ["HFAdapter", "cut_at_stop"]

_LARGE = 1_000_000
PREFIX_MIN_TOKENS = 32


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
        batch_size: int | None = None,
        chat_template: bool = False,
        description: dict[str, Any] | None = None,
        prefix_reuse: bool = True,
        token_budget: int | None = None,
        shared_scoring: bool = True,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.fingerprint = fingerprint
        self.batch_size = batch_size  # None: auto (models/auto_batch.py)
        self._decode_bytes: DecodeBytes | None = None
        self._backoff = OomBackoff()  # rows cap after a GPU out-of-memory error
        self.chat_template = chat_template
        self.prefix_reuse = prefix_reuse
        self.shared_scoring = shared_scoring
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
        if chat_template:
            # The template's text decides every prompt the model sees: it is part of the
            # fingerprint, so the cache never hands a templated run the plain run's answers.
            template = tokenizer.chat_template
            digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
            self._description["chat_template_hash"] = digest
            self.fingerprint = f"{fingerprint}|chat:{digest[:16]}"

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

    def _encode_prompt(self, prompt: str, max_new_tokens: int) -> list[int]:
        """Token ids of a prompt, left-truncated to fit the context window with the new tokens."""
        ids = self.tokenizer(self._render(prompt), add_special_tokens=not self.chat_template)["input_ids"]
        limit = self.max_context
        if limit is not None:
            room = limit if self.is_seq2seq else max(1, limit - max_new_tokens)
            ids = ids[-room:] if len(ids) > room else ids
        return list(ids)

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
        """Requests with the same sampling settings share decode batches whatever their stop
        strings and token limits (those are per row); few-shot prompts of a decoder-only
        model that share their exemplar block are prefilled after one shared prefix."""
        results: list[list[str] | None] = [None] * len(requests)
        groups: dict[tuple[Sampling, int], list[int]] = {}
        for i, r in enumerate(requests):
            sampling = Sampling(r.do_sample, r.temperature, r.top_k, r.top_p) if r.do_sample else Sampling()
            groups.setdefault((sampling, r.num_samples), []).append(i)
        for (sampling, k), indices in groups.items():
            encoded = {i: self._encode_prompt(requests[i].prompt, requests[i].max_new_tokens) for i in indices}
            prefix_of: dict[int, tuple[int, ...]] = {}
            caches: dict[tuple[int, ...], Any] = {(): None}
            for prefix, members in self._prefix_groups(requests, indices, encoded):
                prefix_of.update({i: prefix for i in members})
                if prefix:
                    caches[prefix] = self._prefix_cache(prefix)
            order = sorted(indices, key=lambda i: -len(encoded[i]))
            start = 0
            while start < len(order):
                per_batch = self._backoff.rows(self._rows_per_batch(order[start:], encoded, prefix_of, k))
                chosen = order[start : start + per_batch]
                by_prefix: dict[tuple[int, ...], list[int]] = {}
                for i in chosen:
                    by_prefix.setdefault(prefix_of[i], []).append(i)
                units = [PrefillUnit(prefix, caches[prefix], tuple(
                    DecodeRow(tuple(encoded[i][len(prefix):]), requests[i].max_new_tokens, requests[i].stop,
                              row_seed(requests[i].seed, ids[i])) for i in members))
                    for prefix, members in by_prefix.items()]
                try:
                    outs = self._decode(units, sampling, k)
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    self._backoff.failed(per_batch)  # halves the cap, or raises at one prompt
                    continue
                start += per_batch
                for i, o in zip([i for members in by_prefix.values() for i in members], outs):
                    results[i] = o
        return [r if r is not None else [] for r in results]

    def _rows_per_batch(self, remaining: list[int], encoded: dict[int, list[int]],
                        prefix_of: dict[int, tuple[int, ...]], k: int) -> int:
        """Prompts in the next decode batch (each brings ``k`` rows): --batch-size, or under
        auto as many as auto_decode_rows allows for the most own tokens among the candidates."""
        if self.batch_size:
            return max(1, self.batch_size // k)
        window = remaining[: ROWS_GPU[1]]
        own = max(len(encoded[i]) - len(prefix_of[i]) for i in window)
        if self._decode_bytes is None:
            self._decode_bytes = decode_bytes(self.model)
        return max(1, auto_decode_rows(own, self._decode_bytes) // k)

    def _decode(self, units: list[PrefillUnit], sampling: Sampling, k: int) -> list[list[str]]:
        """Continuations of every unit's rows, in unit order."""
        if self.is_seq2seq:
            rows = [r for unit in units for r in unit.rows]
            return Seq2SeqDecoder(self.model, self.tokenizer, self.token_budget).generate(rows, sampling, k)
        return CausalDecoder(self.model, self.tokenizer, self.token_budget).generate(units, sampling, k)

    # ---------------------------------------------------------------- few-shot prefix reuse
    def _prefix_groups(self, requests: Sequence[GenerationRequest], indices: list[int],
                       encoded: dict[int, list[int]]) -> list[tuple[tuple[int, ...], list[int]]]:
        """Split ``indices`` into (shared prefix token ids, members). Few-shot prompts share
        their exemplar block (everything up to the last blank line); for a decoder-only
        model, prompts with the same block share the longest token prefix their encodings
        have in common, computed once, when at least two prompts share it and it is at least
        PREFIX_MIN_TOKENS tokens. The prefix is taken from the prompts' own token ids, not
        from encoding the block alone: byte-level BPE tokenizers (SmolLM2's, Gemma's) encode
        a block ending in a blank line differently on its own ("\n\n" as one token) than
        followed by the next question ("\n", "\n" + "Question"), and a prefix that is not
        the prompts' own first tokens would never match. Every member keeps at least one
        token of its own. The rest go in one group with an empty prefix."""
        if self.is_seq2seq or not self.prefix_reuse:
            return [((), list(indices))]
        by_text: dict[str, list[int]] = {}
        for i in indices:
            head, sep, _ = requests[i].prompt.rpartition("\n\n")
            if sep:
                by_text.setdefault(head + sep, []).append(i)
        groups: list[tuple[tuple[int, ...], list[int]]] = []
        shared: set[int] = set()
        for members in by_text.values():
            if len(members) < 2:
                continue
            length = min(common_prefix_length([encoded[i] for i in members]),
                         min(len(encoded[i]) for i in members) - 1)
            if length >= PREFIX_MIN_TOKENS:
                groups.append((tuple(encoded[members[0]][:length]), members))
                shared.update(members)
        rest = [i for i in indices if i not in shared]
        return ([((), rest)] if rest else []) + groups

    def _prefix_cache(self, prefix: tuple[int, ...]) -> Any:
        """Key/value cache of the shared exemplar block, computed once per block."""
        return CausalDecoder(self.model, self.tokenizer, self.token_budget).prefix_cache(prefix)

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
        prepared = [
            (self._context_ids(r.context), [self._continuation_ids(c) for c in r.continuations]) for r in requests
        ]
        if self.is_seq2seq or not self.shared_scoring:
            return self._loglikelihood_plain(prepared)
        # Requests longer than the context window keep the plain path (it cuts context + option
        # from the left, option by option); the rest share their context and common prefix.
        limit = self.max_context or _LARGE
        fits = [i for i, (ctx, conts) in enumerate(prepared) if len(ctx) + max((len(c) for c in conts), default=0) <= limit]
        results: list[list[Loglikelihood]] = [[] for _ in requests]
        scorer = SharedContextScorer(self.model, self.tokenizer.pad_token_id, self.token_budget,
                                     max_rows=self.batch_size)
        for i, out in zip(fits, scorer.score([prepared[i] for i in fits])):
            results[i] = out
        rest = sorted(set(range(len(requests))) - set(fits))
        for i, out in zip(rest, self._loglikelihood_plain([prepared[i] for i in rest])):
            results[i] = out
        return results

    def _loglikelihood_plain(self, prepared: Sequence[tuple[list[int], list[list[int]]]]) -> list[list[Loglikelihood]]:
        """Every (context, option) pair as its own row, in batches of SCORING_PAIRS pairs."""
        results: list[list[Loglikelihood]] = [[] for _ in prepared]
        order = sorted(range(len(prepared)), key=lambda i: -(len(prepared[i][0]) + max((len(c) for c in prepared[i][1]), default=0)))
        batch: list[int] = []
        pairs = 0
        limit = self.batch_size or SCORING_PAIRS
        for i in order:
            n = len(prepared[i][1])
            if batch and pairs + n > limit:
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
