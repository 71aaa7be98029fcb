"""Attention masks from token positions, for decoders with sliding-window layers (Gemma 3).

Why: transformers keeps a sliding-window layer's cache cropped to the window and builds
its masks from cache *indices*. Our decoder (decoding.py) merges prompts of different
lengths into one decode batch and pads each row between a shared exemplar block and the
row's own tokens, so index distances stop being position distances, and one buffer of
merged rows cannot be cropped per row. So here every layer keeps the whole history in a
preallocated buffer, as plain layers do, each buffer column is labelled with the position
of the token it holds (-1: padding, or not written yet), and the masks are functions of
positions only. A key is visible to a query when it is real, not after the query, and, in
a sliding layer, fewer than ``window`` positions before it: transformers' own rule
(``masking_utils.sliding_window_overlay``: kv > q - window, on top of the causal rule), so
the answers do not depend on how the rows were padded or merged.

A sliding layer's mask also carries, as ``window_start``, the first position each query
may see: rows that attend to a shared exemplar block in place (shared_prefix.py) hold the
block outside their buffers, where the mask does not reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

FULL, SLIDING = "full_attention", "sliding_attention"
FINGERPRINT = "window-masks@1"  # in the cache keys of non-plain decoders (models/loading.py)


@dataclass(frozen=True)
class WindowLayout:
    """How a sliding-window decoder takes its masks: ``window`` (keys at most window - 1
    positions back), ``layer_types``, the model's own per-layer names, when it takes a
    dict of one mask per layer type (None when every layer slides and it takes one tensor),
    and ``layers``, the number of cache layers it fills."""

    window: int
    layer_types: tuple[str, ...] | None
    layers: int


def window_layout(config: Any) -> WindowLayout | None:
    """The layout of a causal decoder whose layers are plain or sliding-window attention,
    all sliding ones with the same window, or None for anything else (recurrent or chunked
    layers, shared key/value layers, bidirectional attention). Asked of transformers: the
    cache it builds for this config says which layers slide."""
    if getattr(config, "use_bidirectional_attention", False) or not getattr(config, "is_causal", True):
        return None
    try:
        layers = DynamicCache(config=config).layers
    except Exception:  # an architecture transformers builds its caches for differently
        return None
    if not layers or any(type(layer) not in (DynamicLayer, DynamicSlidingWindowLayer) for layer in layers):
        return None
    windows = {layer.sliding_window for layer in layers if type(layer) is DynamicSlidingWindowLayer}
    if len(windows) != 1:
        return None  # no sliding layer (a plain cache), or windows of several sizes
    window = int(windows.pop())
    types = getattr(config, "layer_types", None)
    if types is None:
        if all(type(layer) is DynamicSlidingWindowLayer for layer in layers):
            return WindowLayout(window, None, len(layers))
        return None
    types = tuple(types)[: len(layers)]
    sliding = tuple(type(layer) is DynamicSlidingWindowLayer for layer in layers)
    if len(types) != len(layers) or any((t == SLIDING) != s or t not in (FULL, SLIDING) for t, s in zip(types, sliding)):
        return None
    if window != getattr(config, "sliding_window", None):
        return None
    return WindowLayout(window, types, len(layers))


def full_history_cache(layout: WindowLayout) -> Cache:
    """An empty cache that keeps every key of every layer (sliding ones too): the masks,
    not cropping, hold each sliding layer to its window."""
    return Cache(layers=[DynamicLayer() for _ in range(layout.layers)])


def key_positions(mask: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Position of each column's token from a 2-D 0/1 mask whose ones in each row are that
    row's consecutive positions ending at ``last`` (how the decoder lays out every row:
    the shared block or padding first, then the row's tokens); -1 where the mask is 0."""
    mask = mask.long()
    positions = last[:, None] - mask.sum(-1, keepdim=True) + mask.cumsum(-1)
    return torch.where(mask.bool(), positions, torch.full_like(positions, -1))


def build_masks(layout: WindowLayout, keys: torch.Tensor, queries: torch.Tensor,
                additive: torch.dtype | None = None) -> Any:
    """Masks ``[rows, 1, queries, keys]`` for keys at positions ``keys`` ``[rows, S]`` (-1:
    none) and queries at ``queries`` ``[rows, L]``: boolean (True = attend), or additive in
    dtype ``additive`` (0 or its most negative finite value: a query that sees nothing keeps
    a finite log-sum-exp, which shared_prefix.py needs). A dict by layer type, or one tensor
    when every layer slides."""
    k, q = keys[:, None, None, :], queries[:, None, :, None]
    full = (k >= 0) & (k <= q)
    sliding = full & (k > q - layout.window)
    if additive is not None:
        low = torch.finfo(additive).min
        full = torch.zeros(full.shape, dtype=additive, device=full.device).masked_fill_(~full, low)
        sliding = torch.zeros(sliding.shape, dtype=additive, device=sliding.device).masked_fill_(~sliding, low)
    sliding.window_start = queries - layout.window + 1
    if layout.layer_types is None:
        return sliding
    return {FULL: full, SLIDING: sliding}


def takes_masks(model: Any, layout: WindowLayout, cache_kw: str) -> bool:
    """Whether the model accepts our masks: one forward of two tokens with them (once per
    model, remembered on it; ``cache_kw`` names forward()'s cache argument). A model that
    does not take a dict of masks by layer type fails here, and its decoder keeps
    transformers' own sliding caches, instead of failing in the middle of an evaluation."""
    known = getattr(model, "_rai_window_masks_ok", None)
    if known is not None:
        return known
    ids = torch.full((1, 2), int(getattr(model.config, "bos_token_id", None) or 0), dtype=torch.long,
                     device=model.device)
    positions = torch.arange(2, device=model.device)[None]
    try:
        with torch.inference_mode():
            model(input_ids=ids, position_ids=positions, attention_mask=build_masks(layout, positions, positions),
                  use_cache=True, logits_to_keep=1, **{cache_kw: full_history_cache(layout)})
        ok = True
    except Exception:
        ok = False
    model._rai_window_masks_ok = ok
    return ok

