"""Log-likelihood of a decoder-only model's options, with what the options share computed once.

Why: the bias suite is scored by log-likelihood, and its options share most of their tokens.
BBQ, Winogender, WinoBias and XCOPA options share their context; CrowS-Pairs sentences are
minimal pairs (empty context) that share a token prefix up to the first word that differs.
Running context + option once per option (the plain path, ``HFAdapter._score_causal``)
encodes the shared part once per option and computes the output layer over it each time
(262k entries for Gemma 3). Here every request is scored in two passes:

1. prefix pass: each request's *shared part*, its context followed by the longest common
   token prefix of its options, goes through the model once, left-padded in batches of
   about ``token_budget`` tokens, keeping its keys and values. The logits of its last
   position predict every option's first own token; the logits over the shared option
   tokens give their log-probs, which are part of every option's score;
2. suffix pass: only options with two or more own tokens need one. The batch's cache rows
   are index-selected once per option, the option's own tokens except the last (the last
   is only a target) are fed right-padded, with explicit positions continuing each row's
   prefix and an attention mask spanning prefix plus new tokens. Options of one own token
   (most answer words) need no forward pass of their own.

Requests are length-sorted (longest shared part first) so padding stays small, as in
generation (models/decoding.py). Log-likelihoods equal the plain path's to float rounding
(tests/test_shared_scoring.py compares both with a from-scratch forward of every option).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from transformers.cache_utils import DynamicCache

from rai_multi.models.decoding import _cache_kwarg
from rai_multi.records import Loglikelihood

# A forward pass costs about a fixed part (every weight is read once, whatever the rows)
# plus a part per padded position. Measured on SmolLM2-135M, fp32, one thread of this
# 2-core AMD EPYC: a forward of 3 positions took 0.23 CPU s, one of 16 x 35 = 560 positions
# 3.8 s, so the fixed part is worth about 30 positions. Batches are cut to minimise that
# cost: cutting at 25% padding (as generation's prefill does) made one forward per request
# on CrowS-Pairs, and one batch of everything padded the short rows to the longest; both
# ran slower than the plain path.
FIXED_POSITIONS = 32

# Cached prefix tokens one suffix sub-batch may hold after its cache rows are expanded per
# option (rows x prefix width): bounds the copy's memory (SmolLM2: ~46 kB a token in fp32).
CACHE_TOKENS = 16384


@dataclass(frozen=True)
class RequestPlan:
    """One request split into its shared part and each option's own tokens."""

    shared: tuple[int, ...]  # context + the options' longest common token prefix
    n_common: int  # option tokens in ``shared`` (its last ``n_common`` tokens)
    own: tuple[tuple[int, ...], ...]  # per option, its tokens after the common prefix
    lengths: tuple[int, ...]  # per option, its whole token count


def common_prefix_length(options: Sequence[Sequence[int]]) -> int:
    """Tokens at the start of every option (0 for no options)."""
    if not options:
        return 0
    first = options[0]
    n = min(len(o) for o in options)
    for i in range(n):
        if any(o[i] != first[i] for o in options[1:]):
            return i
    return n


def plan_request(context: Sequence[int], options: Sequence[Sequence[int]]) -> RequestPlan:
    """Split a request (context tokens, non-empty; option tokens) into shared part and own tokens."""
    m = common_prefix_length(options)
    common = tuple(options[0][:m]) if options else ()
    return RequestPlan(tuple(context) + common, m, tuple(tuple(o[m:]) for o in options),
                       tuple(len(o) for o in options))


def split_batches(lengths: Sequence[int], token_budget: int, fixed: int = FIXED_POSITIONS) -> list[range]:
    """Consecutive batches of inputs sorted longest first, at most ``token_budget`` padded
    tokens each (one input at least), minimising the summed cost of the forwards:
    ``fixed`` + rows x longest for each (dynamic programming over the cut points)."""
    n = len(lengths)
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):  # batch = lengths[i:j], its longest is lengths[i]
            padded = (j - i) * max(1, lengths[i])
            if padded > token_budget and i < j - 1:
                break
            cost = best[i] + fixed + padded
            if cost < best[j]:
                best[j], cut[j] = cost, i
    parts, j = [], n
    while j > 0:
        parts.append(range(cut[j], j))
        j = cut[j]
    return parts[::-1]


def _logprob_and_greedy(logits: torch.Tensor, targets: Sequence[int]) -> tuple[float, bool]:
    """Summed log-prob of ``targets`` under ``logits`` rows (one row per target) and whether
    each target is the row's argmax."""
    if not targets:
        return 0.0, True
    rows = logits.float().log_softmax(-1)
    tgt = torch.tensor(list(targets), device=rows.device)
    return float(rows.gather(1, tgt[:, None]).sum().item()), bool((rows.argmax(-1) == tgt).all().item())


class SharedContextScorer:
    """Scores option lists of a decoder-only transformers model by the two passes above."""

    def __init__(self, model: Any, pad_id: int, token_budget: int, max_rows: int | None = None):
        """``max_rows``: at most this many requests per prefix batch (--batch-size), else
        as many as the token budget holds."""
        self.model = model
        self.max_rows = max_rows
        self.pad_id = pad_id
        self.token_budget = token_budget
        self.cache_kw = _cache_kwarg(model)

    @torch.inference_mode()
    def score(self, prepared: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]]) -> list[list[Loglikelihood]]:
        """One Loglikelihood per option, per (context ids, option ids) request. Context ids
        must be non-empty (the first option token needs a position to be predicted from)."""
        plans = [plan_request(ctx, opts) for ctx, opts in prepared]
        results: list[list[Loglikelihood]] = [[] for _ in plans]
        todo = []
        for i, p in enumerate(plans):
            if any(p.lengths):
                todo.append(i)
            else:  # nothing to score: every option is empty
                results[i] = [Loglikelihood(0.0, 0, True) for _ in p.lengths]
        todo.sort(key=lambda i: -len(plans[i].shared))
        lengths = [len(plans[i].shared) for i in todo]
        for part in split_batches(lengths, self.token_budget):
            chosen = [todo[j] for j in part]
            width = lengths[part.start]
            step = max(1, CACHE_TOKENS // max(1, width))  # keep one batch's cache copy bounded
            step = min(step, self.max_rows) if self.max_rows else step
            for start in range(0, len(chosen), step):
                batch = chosen[start : start + step]
                for i, out in zip(batch, self._score_batch([plans[i] for i in batch])):
                    results[i] = out
        return results

    def _score_batch(self, plans: Sequence[RequestPlan]) -> list[list[Loglikelihood]]:
        device = self.model.device
        width = max(len(p.shared) for p in plans)
        ids = torch.full((len(plans), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(plans), width), dtype=torch.long)
        for r, p in enumerate(plans):
            ids[r, width - len(p.shared) :] = torch.tensor(p.shared, dtype=torch.long)
            mask[r, width - len(p.shared) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        keep = max(p.n_common for p in plans) + 1
        cache = DynamicCache(config=self.model.config)
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                            logits_to_keep=keep, **{self.cache_kw: cache}).logits
        # column j of ``logits`` is sequence position width - keep + j; the last predicts
        # each option's first own token, the n_common before it the common option tokens
        common: list[tuple[float, bool]] = []
        first_lp = []
        for r, p in enumerate(plans):
            common.append(_logprob_and_greedy(logits[r, keep - 1 - p.n_common : keep - 1], p.shared[len(p.shared) - p.n_common :]))
            first_lp.append(logits[r, keep - 1].float().log_softmax(-1))
        # per option: [logprob, greedy] accumulated over its own tokens
        own = [[[0.0, True] for _ in p.own] for p in plans]
        longer: list[tuple[int, int]] = []  # (request row, option) with >= 2 own tokens
        for r, p in enumerate(plans):
            for k, tokens in enumerate(p.own):
                if not tokens:
                    continue
                lp = first_lp[r]
                own[r][k] = [float(lp[tokens[0]].item()), int(lp.argmax().item()) == tokens[0]]
                if len(tokens) > 1:
                    longer.append((r, k))
        if longer:
            self._suffix_pass(plans, longer, cache, mask, own)
        out = []
        for r, p in enumerate(plans):
            c_lp, c_greedy = common[r]
            out.append([Loglikelihood(c_lp + own[r][k][0], p.lengths[k], bool(c_greedy and own[r][k][1]))
                        for k in range(len(p.own))])
        return out

    def _suffix_pass(self, plans: Sequence[RequestPlan], longer: list[tuple[int, int]], cache: Any,
                     prefix_mask: torch.Tensor, own: list[list[list[Any]]]) -> None:
        """Feed each listed option's own tokens but the last after its row's cached prefix;
        adds their targets' log-probs into ``own``."""
        device = prefix_mask.device
        longer = sorted(longer, key=lambda rk: -len(plans[rk[0]].own[rk[1]]))
        feed_lengths = [len(plans[r].own[k]) - 1 for r, k in longer]
        width_prefix = prefix_mask.shape[1]
        parts = []
        for part in split_batches(feed_lengths, self.token_budget):
            step = max(1, CACHE_TOKENS // max(1, width_prefix))
            parts.extend(range(s, min(part.stop, s + step)) for s in range(part.start, part.stop, step))
        for n, part in enumerate(parts):
            rows = [longer[j] for j in part]
            width = feed_lengths[part.start]
            ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            new_mask = torch.zeros((len(rows), width), dtype=torch.long)
            starts = torch.zeros((len(rows), 1), dtype=torch.long)
            for i, (r, k) in enumerate(rows):
                feed = plans[r].own[k][:-1]
                ids[i, : len(feed)] = torch.tensor(feed, dtype=torch.long)
                new_mask[i, : len(feed)] = 1
                starts[i, 0] = len(plans[r].shared)  # the prefix holds positions 0..len-1
            owner = torch.tensor([r for r, _ in rows], device=device)
            # the last sub-batch may take the prefix cache itself; earlier ones copy it
            sub_cache = cache if n == len(parts) - 1 else copy.deepcopy(cache)
            sub_cache.batch_select_indices(owner)
            mask = torch.cat([prefix_mask[owner], new_mask.to(device)], dim=1)
            positions = (starts + torch.arange(width)[None, :]).to(device)
            logits = self.model(input_ids=ids.to(device), attention_mask=mask, position_ids=positions,
                                use_cache=True, **{self.cache_kw: sub_cache}).logits
            for i, (r, k) in enumerate(rows):
                targets = plans[r].own[k][1:]
                lp, greedy = _logprob_and_greedy(logits[i, : len(targets)], targets)
                own[r][k][0] += lp
                own[r][k][1] = bool(own[r][k][1] and greedy)
