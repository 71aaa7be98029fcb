"""Our own decode loop over a transformers model (greedy and sampled), used instead of
``model.generate`` because evaluation batches differ from chat batches:

- stop strings and token limits belong to each row, so prompts of different languages
  (each with its own stop strings) share one batch instead of splitting it in four;
- a row that is finished (stop string, end of sequence, its token limit) leaves the batch
  at once, so a chain of thought that ends early stops costing a decode step per token;
- prompts are prefilled in sub-batches that fit a token budget (long prompts keep their
  attention matrices in cache on a CPU) and then decoded together, up to ``batch_size``
  rows: a CPU decode step streams every weight once, so 16 rows cost little more than 4;
- the key/value cache of decoder-only models is allocated once for prompt plus new
  tokens, so a step writes one column instead of re-concatenating the whole history
  (what transformers' DynamicCache does, an O(length) copy per step and layer);
- a few-shot exemplar block shared by several prompts is prefilled once; for models on our
  CPU attention its keys and values are then attended in place by all its rows
  (shared_prefix.py) instead of being copied into each row and read once per row a step;
- models with sliding-window layers (Gemma 3) keep every key in the same preallocated
  caches, and the window is applied by masks built from token positions
  (window_masks.py), so their sub-batches merge and share exemplar blocks in place too;
- sampled continuations of one prompt share one prefill (the cache is repeated, not
  recomputed), and every row draws from its own generator seeded by the request seed,
  the sample id and the sample index, so samples do not depend on batching or sharding.

Greedy outputs equal ``model.generate`` run one prompt at a time (tests/test_decoding.py).
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, EncoderDecoderCache

from rai_multi.models.cpu_attention import IMPLEMENTATION as CPU_ATTENTION
from rai_multi.models.kv_cache import PreallocatedLayer
from rai_multi.models.packed_linears import packed_linears
from rai_multi.models.text_ops import cut_at_stop, row_seed  # noqa: F401 (re-exported)
from rai_multi.models.shared_prefix import SharedPrefixLayer, SharedSegment, additive_mask, shared_prefix_layers
from rai_multi.models.window_masks import (WindowLayout, build_masks, full_history_cache, key_positions, takes_masks,
                                           window_layout)


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen; greedy unless ``do_sample``."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0


@dataclass(frozen=True)
class DecodeRow:
    """One prompt to continue: its token ids (the part after a shared prefix, when there
    is one), its own token limit and stop strings, and the seed base of its samples."""

    ids: tuple[int, ...]
    max_new_tokens: int
    stop: tuple[str, ...]
    seed: int


@dataclass(frozen=True)
class PrefillUnit:
    """Rows prefilled after the same shared prefix (token ids and its computed cache; empty
    and None when there is none)."""

    prefix: tuple[int, ...]
    cache: Any
    rows: tuple[DecodeRow, ...]


# ---------------------------------------------------------------------- key/value cache
def plain_kv_cache(config: Any) -> bool:
    """Whether every layer of this decoder-only model keeps a plain, growing key/value cache
    (no sliding window, no recurrent state): only then can caches of several sub-batches
    be merged and preallocated. Asked of transformers itself, not guessed from names."""
    try:
        probe = DynamicCache(config=config)
    except Exception:  # an architecture transformers builds its caches for differently
        return False
    layers = getattr(probe, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def shares_prefix_in_attention(model: Any) -> bool:
    """Whether rows can attend to a shared exemplar block in place (shared_prefix.py): the
    model runs our CPU attention implementation and its attention is plain (no logit
    soft-capping or sink logits, which that code does not apply)."""
    config = model.config
    return (getattr(config, "_attn_implementation", None) == CPU_ATTENTION
            and not getattr(config, "attn_logit_softcapping", None) and not getattr(config, "use_sinks", False))


def _cache_kwarg(model: Any) -> str:
    """transformers 5 renamed ``past_key_values`` to ``cache`` in forward()."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


# ---------------------------------------------------------------------- token choice
def _choose(logits: torch.Tensor, sampling: Sampling, generators: Sequence[torch.Generator]) -> list[int]:
    """Next token per row: argmax, or a draw after temperature, top-k and top-p (in that
    order, as transformers applies them)."""
    if not sampling.do_sample:
        # the same index either way (bf16 -> fp32 is exact); argmax over bf16 is 2x slower on a CPU
        return logits.float().argmax(-1).tolist()
    scores = logits.float() / max(sampling.temperature, 1e-6)
    if sampling.top_k and sampling.top_k < scores.shape[-1]:
        kth = torch.topk(scores, sampling.top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=False, dim=-1)
        cumulative = sorted_scores.softmax(-1).cumsum(-1)
        drop = cumulative <= (1 - sampling.top_p)
        drop[:, -1] = False  # always keep the most likely token
        scores = scores.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    probs = scores.softmax(-1)
    return [int(torch.multinomial(probs[i], 1, generator=g).item()) for i, g in enumerate(generators)]


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    ids = eos if isinstance(eos, (list, tuple)) else [eos]
    return {int(i) for i in ids if i is not None}


def decode_loop(
    first_logits: torch.Tensor,
    step: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    rows: Sequence[DecodeRow],
    sampling: Sampling,
    generators: Sequence[torch.Generator],
    tokenizer: Any,
    eos_ids: set[int],
) -> list[str]:
    """Run decode steps until every row is finished; returns each row's text with its stop
    string cut off. ``step(tokens, keep)`` feeds one token per still-active row and returns
    their next logits; ``keep`` (or None) names the rows, by position among the active
    ones, that stay, so the step can drop the rest from its cache first."""
    new: list[list[int]] = [[] for _ in rows]
    active = list(range(len(rows)))
    logits = first_logits
    while True:
        tokens = _choose(logits, sampling, [generators[i] for i in active])
        keep: list[int] = []
        for pos, (i, tok) in enumerate(zip(active, tokens)):
            if tok in eos_ids:
                continue
            new[i].append(tok)
            row = rows[i]
            if len(new[i]) >= row.max_new_tokens:
                continue
            if row.stop and any(s in tokenizer.decode(new[i], skip_special_tokens=True) for s in row.stop):
                continue
            keep.append(pos)
        if not keep:
            break
        feed = torch.tensor([[tokens[p]] for p in keep], device=logits.device)
        logits = step(feed, None if len(keep) == len(active) else torch.tensor(keep, device=logits.device))
        active = [active[p] for p in keep]
    return [cut_at_stop(tokenizer.decode(ids, skip_special_tokens=True), row.stop) for ids, row in zip(new, rows)]


def _left_padded(tensors: Sequence[torch.Tensor], counts: Sequence[int], width: int, capacity: int,
                 rep: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """One ``[rows, heads, capacity, dim]`` buffer holding each ``[n, heads, w, dim]`` tensor
    (rows repeated by ``rep`` to ``counts``) right-aligned at ``width``; the columns left of
    each and from ``width`` on are zeros (finite: never NaN under a zero attention weight).
    One write per tensor: these buffers are the largest tensors of a decode batch."""
    ref = tensors[0]
    buf = ref.new_empty((sum(counts), ref.shape[1], capacity, ref.shape[-1]))
    row = 0
    for t, n in zip(tensors, counts):
        gap = width - t.shape[2]
        if gap:
            buf[row : row + n, :, :gap] = 0
        buf[row : row + n, :, gap:width] = rep(t)
        row += n
    buf[:, :, width:] = 0  # room for the new tokens
    return buf


# ---------------------------------------------------------------------- causal models
# On a CPU every padded position costs as much as a real one (the matmuls are compute-bound),
# so a sub-batch ends where the next prompt is this much shorter than its longest; on a GPU
# fuller batches are worth their padding.
PAD_WASTE_CPU = 0.25


def _budget_split(lengths: Sequence[int], token_budget: int, max_waste: float = 1.0, prefix: int = 0) -> list[range]:
    """Consecutive sub-batches (inputs sorted longest first) of at most about
    ``token_budget`` padded tokens each, none holding an input more than ``max_waste``
    shorter than its longest (so at most that fraction of any row is padding). Inputs that
    follow a shared prefix of ``prefix`` tokens are judged with it: every row attends to
    it, and each extra sub-batch copies its cache."""
    parts, start = [], 0
    while start < len(lengths):
        longest = max(1, lengths[start])
        end = min(len(lengths), start + max(1, token_budget // longest))
        stop = start + 1
        while stop < end and lengths[stop] + prefix >= (longest + prefix) * (1.0 - max_waste):
            stop += 1
        parts.append(range(start, stop))
        start = stop
    return parts


class _Decoder:
    """What both decoders need to know about the model and tokenizer."""

    def __init__(self, model: Any, tokenizer: Any, token_budget: int):
        self.model = model
        self.tokenizer = tokenizer
        self.token_budget = token_budget
        self.pad_id = tokenizer.pad_token_id
        self.cache_kw = _cache_kwarg(model)
        self.eos_ids = _eos_ids(model, tokenizer)
        self.max_waste = 1.0 if torch.cuda.is_available() else PAD_WASTE_CPU


class CausalDecoder(_Decoder):
    """Prefill and decode for a decoder-only model, optionally after a shared prefix whose
    cache was computed once."""

    def __init__(self, model: Any, tokenizer: Any, token_budget: int):
        super().__init__(model, tokenizer, token_budget)
        self.plain = plain_kv_cache(model.config)
        # sliding-window layers (Gemma 3): whole-history caches, windows held by the masks
        layout = None if self.plain else window_layout(model.config)
        self.window: WindowLayout | None = layout if layout and takes_masks(model, layout, self.cache_kw) else None
        self.mergeable = self.plain or self.window is not None
        self.shared = self.mergeable and shares_prefix_in_attention(model)

    def _empty_cache(self) -> Any:
        """A cache for a prefill: transformers' own, or for a sliding-window model one that
        keeps every key (the masks apply the window)."""
        return full_history_cache(self.window) if self.window else DynamicCache(config=self.model.config)

    @torch.inference_mode()
    def prefix_cache(self, prefix: Sequence[int]) -> Any:
        ids = torch.tensor([list(prefix)], device=self.model.device)
        cache = self._empty_cache()
        extra = {}
        if self.window is not None:
            positions = torch.arange(len(prefix), device=ids.device)[None]
            extra = {"position_ids": positions, "attention_mask": build_masks(self.window, positions, positions)}
        self.model(input_ids=ids, use_cache=True, logits_to_keep=1, **extra, **{self.cache_kw: cache})
        return cache

    def _prefill(self, rows: Sequence[DecodeRow], prefix_len: int, prefix_cache: Any):
        """One forward over ``rows`` (padded between the prefix and each row's own tokens,
        i.e. on the left when there is no prefix): last-position logits, the cache, the
        attention mask and each row's last position."""
        width = max(len(r.ids) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), prefix_len + width), dtype=torch.long)
        mask[:, :prefix_len] = 1
        for i, r in enumerate(rows):
            ids[i, width - len(r.ids) :] = torch.tensor(r.ids, dtype=torch.long)
            mask[i, prefix_len + width - len(r.ids) :] = 1
        device = self.model.device
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, prefix_len:]
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(rows))
        else:
            cache = self._empty_cache()
        attend = mask if self.window is None else build_masks(self.window, key_positions(mask, positions[:, -1]),
                                                              positions)
        out = self.model(input_ids=ids, attention_mask=attend, position_ids=positions, use_cache=True,
                         logits_to_keep=1, **{self.cache_kw: cache})
        return out.logits[:, -1], cache, mask, positions[:, -1]

    def _prefill_shared(self, rows: Sequence[DecodeRow], prefix_len: int, prefix_cache: Any):
        """As _prefill, but the rows attend to the prefix cache in place (shared_prefix.py)
        instead of each holding a copy: the cache holds the rows' own tokens only, and the
        mask (4-D, additive) and the returned 2-D mask cover those tokens only."""
        width = max(len(r.ids) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        keep = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, width - len(r.ids) :] = torch.tensor(r.ids, dtype=torch.long)
            keep[i, width - len(r.ids) :] = True
        # the same positions as _prefill: the prefix holds 0..P-1, padding repeats P-1
        positions = prefix_len - 1 + keep.long().cumsum(-1)
        causal = torch.ones((width, width), dtype=torch.bool).tril()
        dtype = prefix_cache.layers[0].keys.dtype
        if self.window is None:
            mask = additive_mask(keep[:, None, None, :] & causal, dtype)
        else:  # the same visibility by position, and the window
            mask = build_masks(self.window, key_positions(keep, positions[:, -1]), positions, dtype)
        device = self.model.device
        cache = Cache(layers=shared_prefix_layers(prefix_cache, len(rows), width))
        out = self.model(input_ids=ids.to(device), attention_mask=mask, position_ids=positions.to(device),
                         use_cache=True, logits_to_keep=1, **{self.cache_kw: cache})
        return out.logits[:, -1], cache, keep.long().to(device), positions[:, -1].to(device)

    @staticmethod
    def _merge(parts: list[tuple], capacity_new: int, repeats: int, shared: bool = False, positions: bool = False):
        """One preallocated cache from sub-batch caches of different widths (and different
        shared prefixes): each is written left-padded (masked, zeroed columns) into one
        buffer per layer sized for the new tokens too, its rows repeated ``repeats`` times
        for sampled continuations. Positions travel with the rows, so padding on the left
        changes nothing they compute.

        ``shared``: the parts hold only the rows' own tokens (_prefill_shared, or no prefix);
        each part's shared segment is kept once and named for its rows, and the mask is
        additive, 4-D, and spans the whole buffer (positions not yet written are masked).
        ``positions`` (sliding-window models): instead of a mask, the position of each
        buffer column's token, -1 for padding and columns not yet written (window_masks.py)."""
        width = max(p[2].shape[1] for p in parts)
        capacity = width + capacity_new
        rep = (lambda t: t.repeat_interleave(repeats, 0)) if repeats > 1 else (lambda t: t)
        counts = [p[2].shape[0] * repeats for p in parts]
        layers = []
        for li in range(len(parts[0][1].layers)):
            keys, values = (_left_padded([getattr(p[1].layers[li], which) for p in parts], counts, width, capacity, rep)
                            for which in ("keys", "values"))
            if not shared:
                layers.append(PreallocatedLayer(keys, values, width))
                continue
            segments, row = [], 0
            for (_, cache, _, _), n in zip(parts, counts):
                for seg in getattr(cache.layers[li], "segments", ()):
                    segments.append(SharedSegment(seg.keys, seg.values, row + seg.start * repeats,
                                                  row + seg.stop * repeats))
                row += n
            layers.append(SharedPrefixLayer(keys, values, width, tuple(segments)))
        mask = rep(torch.cat([torch.cat([m.new_zeros(m.shape[0], width - m.shape[1]), m], 1) for _, _, m, _ in parts]))
        last = rep(torch.cat([p[3] for p in parts]))
        if positions:
            keys = torch.full((mask.shape[0], capacity), -1, dtype=torch.long, device=mask.device)
            keys[:, :width] = key_positions(mask, last)
            return rep(torch.cat([p[0] for p in parts])), Cache(layers=layers), keys, last
        if shared:
            keep = torch.zeros((mask.shape[0], capacity), dtype=torch.bool, device=mask.device)
            keep[:, :width] = mask.bool()
            mask = additive_mask(keep, layers[0].keys.dtype)[:, None, None, :]
        return rep(torch.cat([p[0] for p in parts])), Cache(layers=layers), mask, last

    @torch.inference_mode()
    def generate(self, units: Sequence[PrefillUnit], sampling: Sampling, num_samples: int) -> list[list[str]]:
        """``num_samples`` continuations per row, rows in the order the units list them
        (each unit's rows sorted longest first). Every unit is prefilled in token-budget
        sub-batches after its own shared prefix; with a plain cache all sub-batches are
        then decoded as one batch, else each sub-batch on its own. A CPU model's Linear
        layers run on packed weights meanwhile (packed_linears.py)."""
        with packed_linears(self.model):
            return self._generate(units, sampling, num_samples)

    def _generate(self, units: Sequence[PrefillUnit], sampling: Sampling, num_samples: int) -> list[list[str]]:
        parts, rows, subs = [], [], []
        for unit in units:
            lengths = [len(r.ids) for r in unit.rows]
            # Caches left to transformers (not mergeable) are indexed by column, not position:
            # padding between a prefix and a row's own tokens would shift a sliding window or
            # run through a recurrent state, so there a prefix's sub-batches hold equal lengths.
            waste = self.max_waste if self.mergeable or not unit.prefix else 0.0
            for part in _budget_split(lengths, self.token_budget, waste, len(unit.prefix)):
                sub = [unit.rows[i] for i in part]
                prefill = self._prefill_shared if self.shared and unit.prefix else self._prefill
                parts.append(prefill(sub, len(unit.prefix), unit.cache))
                rows.extend(sub)
                subs.append(sub)
        if not self.mergeable:  # recurrent, chunked or other caches: decode each sub-batch alone
            out: list[list[str]] = []
            for part, sub in zip(parts, subs):
                out.extend(self._decode([part], sub, sampling, num_samples, merge=False))
            return out
        return self._decode(parts, rows, sampling, num_samples, merge=True)

    def _decode(self, parts, rows, sampling: Sampling, k: int, merge: bool) -> list[list[str]]:
        max_new = max(r.max_new_tokens for r in rows)
        shared = self.shared and any(getattr(p[1].layers[0], "segments", ()) for p in parts)
        if merge:
            logits, cache, mask, last = self._merge(parts, max_new, k, shared, positions=self.window is not None)
        else:
            logits, cache, mask, last = parts[0]
            if k > 1:
                cache.batch_repeat_interleave(k)
                logits, mask, last = (t.repeat_interleave(k, 0) for t in (logits, mask, last))
        expanded = [r for r in rows for _ in range(k)]
        generators = _generators(rows, k, sampling, logits.device)
        state = {"mask": mask, "pos": last}

        def step(tokens: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
            if keep is not None:
                cache.batch_select_indices(keep)
                state["mask"], state["pos"] = state["mask"][keep], state["pos"][keep]
            state["pos"] = state["pos"] + 1
            if self.window is not None:
                state["mask"], attend = _window_step(self.window, state["mask"], state["pos"], cache, shared)
            else:
                state["mask"] = _open_column(state["mask"], cache) if shared else torch.cat(
                    [state["mask"], state["mask"].new_ones(state["mask"].shape[0], 1)], 1)
                attend = state["mask"]
            out = self.model(input_ids=tokens, attention_mask=attend, position_ids=state["pos"][:, None],
                             use_cache=True, **{self.cache_kw: cache})
            return out.logits[:, -1]

        texts = decode_loop(logits, step, expanded, sampling, generators, self.tokenizer, self.eos_ids)
        return [texts[i * k : (i + 1) * k] for i in range(len(rows))]


def _window_step(layout: WindowLayout, keys: torch.Tensor, pos: torch.Tensor, cache: Any,
                 shared: bool) -> tuple[torch.Tensor, Any]:
    """A decode step of a sliding-window model: label the column the new token is about to
    be written to with its position (``keys``: per-column positions, as _merge builds them;
    past the planned length they double as the cache does), and build the step's masks:
    over the whole buffer, additive, for shared rows (as shared_prefix.py reads it), over
    the written columns otherwise (what the attention's key views hold)."""
    filled = cache.layers[0].get_seq_length()
    if filled >= keys.shape[1]:
        keys = torch.cat([keys, torch.full_like(keys, -1)], 1)
    keys[:, filled] = pos
    dtype = cache.layers[0].keys.dtype if shared else None
    return keys, build_masks(layout, keys if shared else keys[:, : filled + 1], pos[:, None], dtype)


def _open_column(mask: torch.Tensor, cache: Any) -> torch.Tensor:
    """Unmask, in a shared-prefix decode mask spanning the whole buffer (4-D, additive), the
    column the step's new token is about to be written to; past the planned length the mask
    doubles as the cache does."""
    filled = cache.layers[0].get_seq_length()
    if filled >= mask.shape[-1]:
        mask = torch.cat([mask, torch.full_like(mask, torch.finfo(mask.dtype).min)], -1)
    mask[..., filled] = 0
    return mask


# ---------------------------------------------------------------------- encoder-decoder models
ENCODER_BUDGET_CPU = 1024


class Seq2SeqDecoder(_Decoder):
    """Encoder in token-budget sub-batches, then one decode over all rows (encoder states
    padded to the longest, padding masked): the encoder runs once per prompt, whatever
    the number of sampled continuations."""

    def __init__(self, model: Any, tokenizer: Any, token_budget: int):
        super().__init__(model, tokenizer, token_budget)
        self.start_id = model.config.decoder_start_token_id
        # Encoder sub-batches: on a CPU a prompt of a few hundred tokens already fills the
        # matmuls, and padding costs a bias-plus-mask tensor per layer, so long prompts run
        # alone (measured: benchmarks/RESULTS.md); a GPU batches them.
        self.encoder_budget = token_budget if torch.cuda.is_available() else min(token_budget, ENCODER_BUDGET_CPU)

    @torch.inference_mode()
    def generate(self, rows: Sequence[DecodeRow], sampling: Sampling, num_samples: int) -> list[list[str]]:
        from transformers.modeling_outputs import BaseModelOutput

        device = self.model.device
        encoder = self.model.get_encoder()
        width = max(len(r.ids) for r in rows)
        states, masks = [], []
        for part in _budget_split([len(r.ids) for r in rows], self.encoder_budget, self.max_waste):
            sub = [rows[i] for i in part]
            w = max(len(r.ids) for r in sub)
            ids = torch.full((len(sub), w), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(sub), width), dtype=torch.long)
            for i, r in enumerate(sub):
                ids[i, : len(r.ids)] = torch.tensor(r.ids, dtype=torch.long)
                mask[i, : len(r.ids)] = 1
            # no padding, no mask: T5's attention then adds its position bias as is instead of
            # materialising bias-plus-mask for every layer (a batch x heads x L x L tensor)
            padded = any(len(r.ids) < w for r in sub)
            hidden = encoder(input_ids=ids.to(device),
                             attention_mask=mask[:, :w].to(device) if padded else None).last_hidden_state
            states.append(torch.cat([hidden, hidden.new_zeros(hidden.shape[0], width - w, hidden.shape[-1])], 1))
            masks.append(mask.to(device))
        k = num_samples
        state = {"hidden": torch.cat(states).repeat_interleave(k, 0), "mask": torch.cat(masks).repeat_interleave(k, 0),
                 "cache": EncoderDecoderCache(DynamicCache(), DynamicCache())}

        def step(tokens: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
            if keep is not None:
                state["cache"].batch_select_indices(keep)
                state["hidden"], state["mask"] = state["hidden"][keep], state["mask"][keep]
            out = self.model(encoder_outputs=BaseModelOutput(last_hidden_state=state["hidden"]),
                             attention_mask=state["mask"], decoder_input_ids=tokens, use_cache=True,
                             **{self.cache_kw: state["cache"]})
            return out.logits[:, -1]

        start = torch.full((len(rows) * k, 1), self.start_id, dtype=torch.long, device=device)
        first = step(start, None)
        expanded = [r for r in rows for _ in range(k)]
        generators = _generators(rows, k, sampling, device)
        texts = decode_loop(first, step, expanded, sampling, generators, self.tokenizer, self.eos_ids)
        return [texts[i * k : (i + 1) * k] for i in range(len(rows))]


def _generators(rows: Sequence[DecodeRow], k: int, sampling: Sampling, device: Any) -> list[Any]:
    """One generator per (row, sample index) when sampling; greedy rows need none."""
    if not sampling.do_sample:
        return [None] * (len(rows) * k)
    out = []
    for r in rows:
        for j in range(k):
            gen = torch.Generator(device=device)
            gen.manual_seed((r.seed + j) % (2**63))
            out.append(gen)
    return out
