"""Attention over a few-shot exemplar block that many rows share, without copying it per row.

Why: an 8-shot MGSM prompt is ~1.8k tokens of exemplars followed by ~100 tokens of
question, and every prompt of a language has the same exemplars. Copying the exemplars'
keys and values into every row (what a plain batched cache does) makes each decode step
read them once per row: for 16 rows of SmolLM2 at ~1.9k tokens that is ~700 MB a step,
and on a CPU reading memory, not arithmetic, is what a decode step waits for. Here each
row keeps only its own tokens (the *suffix*), and the shared block (a *segment*) is kept
once and attended by all of its rows in one matrix product, its queries stacked.

The two parts are exact pieces of one softmax: attention over [segment; suffix] equals the
two partial attentions merged by their log-sum-exp (the softmax denominators), so nothing
is approximated; tests/test_shared_prefix.py checks it against the definition in float64.

Used only for CPU models that run :mod:`cpu_attention`'s implementation (the decoder sets
it up; see ``CausalDecoder``); masks in this mode are additive, 4-D, and cover the suffix
only (they are built by the decoder and passed to the model as they are).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

import torch

from rai_multi.models.kv_cache import PreallocatedLayer


@dataclass(frozen=True)
class SharedSegment:
    """Keys and values ``[1, kv_heads, length, dim]`` of a block that rows ``start:stop`` of
    the batch all attend to in full, before their own tokens."""

    keys: torch.Tensor
    values: torch.Tensor
    start: int
    stop: int


def select_rows(segments: tuple[SharedSegment, ...], keep: list[int]) -> tuple[SharedSegment, ...]:
    """The segments after the batch keeps only rows ``keep`` (ascending): rows of a segment
    stay contiguous, so each range shrinks to the kept rows it held; empty ones go."""
    out = []
    for seg in segments:
        start, stop = bisect_left(keep, seg.start), bisect_left(keep, seg.stop)  # kept rows before each end
        if stop > start:
            out.append(SharedSegment(seg.keys, seg.values, start, stop))
    return tuple(out)


class SharedPrefixLayer(PreallocatedLayer):
    """A preallocated suffix cache (see PreallocatedLayer) whose rows also attend to shared
    segments; the key/value views it hands to attention carry them as ``shared_prefix``."""

    def __init__(self, key_buffer: torch.Tensor, value_buffer: torch.Tensor, length: int,
                 segments: tuple[SharedSegment, ...]):
        self.segments = segments
        super().__init__(key_buffer, value_buffer, length)

    @classmethod
    def empty(cls, like: torch.Tensor, rows: int, capacity: int,
              segments: tuple[SharedSegment, ...]) -> "SharedPrefixLayer":
        """Room for ``capacity`` suffix positions of ``rows`` rows, shaped like ``like``
        (a ``[*, kv_heads, *, dim]`` key tensor)."""
        shape = (rows, like.shape[1], capacity, like.shape[-1])
        return cls(like.new_zeros(shape), like.new_zeros(shape), 0, segments)

    def _refresh(self) -> None:
        super()._refresh()
        self.keys.shared_prefix = self.values.shared_prefix = self.segments

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.segments = select_rows(self.segments, indices.tolist())
        super().batch_select_indices(indices)

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise RuntimeError("shared-prefix rows are repeated when the decode batch is built")


# ---------------------------------------------------------------------- attention
def additive_mask(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 where ``keep`` is true, the dtype's most negative finite value elsewhere (finite, so
    a row with nothing to attend gets a finite, negligible log-sum-exp instead of NaN)."""
    return torch.zeros(keep.shape, dtype=dtype).masked_fill_(~keep, torch.finfo(dtype).min)


def _flash(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
           scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch's CPU flash attention, which also returns the log-sum-exp we merge with."""
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        query, key, value, 0.0, False, attn_mask=mask, scale=scale)


def _segment_part(query: torch.Tensor, seg: SharedSegment, scale: float,
                  window_start: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Attention of ``query`` ``[r, heads, L, dim]`` over one segment. The r rows' queries of
    each key/value head are stacked into one ``[r * groups * L]`` query block, so the segment
    is read once for all of them (one matrix product, not r matrix-vector ones).

    ``window_start`` ``[r, L]`` (a sliding-window layer; window_masks.py): the first segment
    position each query may see (segment positions are 0..length-1). Columns no query sees
    are not read; the rest are masked per query; None when no query sees any of it."""
    rows, heads, length, dim = query.shape
    kv_heads = seg.keys.shape[1]
    groups = heads // kv_heads
    keys, values, mask = seg.keys, seg.values, None
    if window_start is not None:
        first = max(0, int(window_start.min()))
        if first >= keys.shape[2]:
            return None
        keys, values = keys[:, :, first:], values[:, :, first:]
        if int(window_start.max()) > first:
            columns = torch.arange(first, first + keys.shape[2], device=keys.device)
            seen = (columns >= window_start[:, None, :, None]).expand(rows, groups, length, columns.shape[0])
            mask = additive_mask(seen.reshape(1, 1, rows * groups * length, -1), query.dtype)
    q = query.reshape(rows, kv_heads, groups, length, dim).permute(1, 0, 2, 3, 4)
    out, lse = _flash(q.reshape(1, kv_heads, rows * groups * length, dim), keys, values, mask, scale)
    out = out.reshape(kv_heads, rows, groups, length, dim).permute(1, 0, 2, 3, 4).reshape(rows, heads, length, dim)
    lse = lse.reshape(kv_heads, rows, groups, length).permute(1, 0, 2, 3).reshape(rows, heads, length)
    return out, lse


def _suffix_part(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor,
                 scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of each row over its own suffix positions, masked (additive, ``[n, 1, L, S]``).

    A decode step (L = 1) multiplies the contiguous buffers directly (the mask then spans the
    whole buffer, unwritten positions masked); a prefill goes to the flash kernel with the
    grouped heads expanded (suffixes are short)."""
    rows, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    if length == 1:
        parts = [_decode_suffix(query[r0:r1], key[r0:r1], value[r0:r1], mask[r0:r1], scale, first)
                 for r0, r1, first in row_chunks(mask)]
        return parts[0] if len(parts) == 1 else (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    if groups > 1:
        key = key[:, :, None].expand(rows, kv_heads, groups, *key.shape[2:]).reshape(rows, heads, *key.shape[2:])
        value = value[:, :, None].expand(rows, kv_heads, groups, *value.shape[2:]).reshape(rows, heads, *value.shape[2:])
    return _flash(query, key, value, mask, scale)


def _decode_suffix(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor, scale: float,
                   first: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One decode step's attention of rows over their own buffers from column ``first`` on
    (every column before it is masked for all of these rows)."""
    rows, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    q = (query * scale).reshape(rows, kv_heads, heads // kv_heads, dim)
    key, value, mask = key[:, :, first:], value[:, :, first:], mask[..., first:]
    scores = torch.matmul(q, key.transpose(-1, -2)).float() + mask.reshape(rows, 1, 1, -1)
    # softmax, not exp(scores - logsumexp): torch.exp takes a slow path on the masked
    # (hugely negative) entries, 30x slower here; the weight of the largest score is
    # exp(max - lse), which gives lse back
    weights = torch.softmax(scores, dim=-1)
    lse = scores.amax(-1) - torch.log(weights.amax(-1))
    out = torch.matmul(weights.to(value.dtype), value).reshape(rows, heads, 1, dim)
    return out, lse.reshape(rows, heads, 1)


# What one more chunk costs, in (row, column) pairs of keys and values read: a few matrix
# products' fixed cost, about 15 us on the 2-core Xeon here, where one pair of SmolLM2's
# bf16 keys and values (768 bytes) reads in 0.05 us.
CHUNK_OVERHEAD = 256


def row_chunks(mask: torch.Tensor) -> list[tuple[int, int, int]]:
    """Runs of rows ``(start, stop, first column)`` that a decode step attends together, each
    from the first column any of its rows attends. Why: the rows of a merged decode batch
    are left-padded to the longest suffix, and one long one (a Bengali question is ~900
    SmolLM2 tokens, an English one ~100) would make every row read ~900 columns of padding
    each step. The split minimises columns read plus :data:`CHUNK_OVERHEAD` per chunk
    (exactly, over contiguous runs). ``mask``: additive ``[n, 1, 1, S]``.

    Computed once per mask tensor and kept on it: every layer of a step gets the same mask,
    and the only change the decoder makes to a mask in place is opening the column a new
    token is written to, which lies right of every row's first attended column, so the
    chunks stay valid. (Inference tensors have no version counter to check this by.)"""
    memo = getattr(mask, "_rai_row_chunks", None)
    if memo is not None:
        return memo
    rows, width = mask.shape[0], mask.shape[-1]
    attends = mask.reshape(rows, width) > torch.finfo(mask.dtype).min / 2
    firsts = attends.to(torch.uint8).argmax(-1).tolist()  # first attended column (0 if none)
    best, cut = [0.0] * (rows + 1), [0] * (rows + 1)
    for stop in range(1, rows + 1):
        low, best[stop] = width, float("inf")
        for start in range(stop - 1, -1, -1):
            low = min(low, firsts[start])
            cost = best[start] + (stop - start) * (width - low) + CHUNK_OVERHEAD
            if cost < best[stop]:
                best[stop], cut[stop] = cost, start
    chunks, stop = [], rows
    while stop > 0:
        start = cut[stop]
        chunks.append((start, stop, min(firsts[start:stop])))
        stop = start
    chunks.reverse()
    mask._rai_row_chunks = chunks
    return chunks


def merge_partials(out_a: torch.Tensor, lse_a: torch.Tensor, out_b: torch.Tensor,
                   lse_b: torch.Tensor) -> torch.Tensor:
    """Attention over keys A and B together from the attention over each (outputs
    ``[..., L, dim]``, log-sum-exps ``[..., L]``): each output weighted by its share of the
    joint softmax denominator, exp(lse_part - lse_joint) = softmax over the two lse."""
    shares = torch.softmax(torch.stack([lse_a, lse_b]), dim=0)  # exp(lse_part - lse_joint), no slow exp path
    return (out_a.float() * shares[0, ..., None] + out_b.float() * shares[1, ..., None]).to(out_a.dtype)


def shared_prefix_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor,
                            scale: float, segments: tuple[SharedSegment, ...]) -> torch.Tensor:
    """softmax over [segment of the row, if any; the row's own suffix] for every row.

    query ``[n, heads, L, dim]``; key/value: the rows' suffix views (a SharedPrefixLayer's;
    in a decode step their whole buffers are used when ``mask`` spans them); mask additive
    ``[n, 1, L, S]`` over the suffix, carrying ``window_start`` ``[n, L]`` in a sliding-window
    layer (window_masks.build_masks), which limits the segments too. Returns
    ``[n, heads, L, dim]``."""
    full_key, full_value = getattr(key, "full_buffer", None), getattr(value, "full_buffer", None)
    if full_key is not None and mask.shape[-1] == full_key.shape[2] != key.shape[2]:
        key, value = full_key, full_value
    if mask.shape[-1] != key.shape[2]:
        raise RuntimeError(f"shared-prefix mask covers {mask.shape[-1]} positions, the suffix holds {key.shape[2]}")
    out, lse = _suffix_part(query, key, value, mask, scale)
    window_start = getattr(mask, "window_start", None)  # a sliding layer's (window_masks.build_masks)
    for seg in segments:
        part = _segment_part(query[seg.start : seg.stop], seg, scale,
                             None if window_start is None else window_start[seg.start : seg.stop])
        if part is not None:
            out[seg.start : seg.stop] = merge_partials(part[0], part[1], out[seg.start : seg.stop],
                                                       lse[seg.start : seg.stop])
    return out


def shared_prefix_layers(prefix_cache: Any, rows: int, capacity: int) -> list[SharedPrefixLayer]:
    """Empty suffix layers for ``rows`` rows that all attend to ``prefix_cache`` (a
    DynamicCache of the shared block, batch 1), one per model layer."""
    return [SharedPrefixLayer.empty(layer.keys, rows, capacity,
                                    (SharedSegment(layer.keys, layer.values, 0, rows),))
            for layer in prefix_cache.layers]
