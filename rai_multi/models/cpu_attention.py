"""Decode-step attention for bf16/fp16 models on a CPU, and shared exemplar blocks at any dtype.

Why: in a decode step the query is one token and the keys are the whole context, and
PyTorch's CPU flash-attention kernel handles that shape slowly in bf16: for a batch of 16
rows over ~1.9k cached tokens (SmolLM2 shape, grouped heads) it took 4.3 ms a layer where
three plain ops (scores matmul, softmax, values matmul) take 2.4 ms, and at 600 tokens
2.0 ms against 0.7 ms. In fp32 the two are level, so in fp32 every call goes to
transformers' SDPA unchanged (outputs bit-identical to ``model.generate``,
tests/test_decoding.py) except attention over a shared exemplar block: fp32 models are
switched over too, because attending the block in place instead of copying it into every
row took 8-shot MGSM on SmolLM2-135M from 96.8 to 75.5 CPU s (benchmarks/RESULTS_GENERATE.md).

Rows that share a few-shot exemplar block (keys carrying ``shared_prefix``) go to
shared_prefix.py; T5's prefill gets its position bias plus mask built once per forward, not
once per layer; a masked prefill with grouped key/value heads goes to SDPA with
``enable_gqa`` (no repeat_kv copy); everything else (other prefills, models or inputs this
does not cover) goes to transformers' own SDPA function unchanged. The function is
registered with transformers' attention interface under :data:`IMPLEMENTATION` (its
documented extension point) and only models that :func:`use_cpu_decode_attention` switches
over use it. :data:`FINGERPRINT` names it in cache keys, with a revision that changes when
its rounding does (answers cached by an earlier revision are not reused).
"""

from __future__ import annotations

from typing import Any

import torch

from rai_multi.models.shared_prefix import shared_prefix_attention

IMPLEMENTATION = "rai_multi_cpu_decode"
FINGERPRINT = f"{IMPLEMENTATION}@3"  # 2: shared exemplar blocks attended in place; 3: decode rows read from their first attended column (shared_prefix.row_chunks)
_LOW_PRECISION = (torch.bfloat16, torch.float16)


def _low_precision_cpu(query: torch.Tensor, dropout: float, kwargs: dict[str, Any]) -> bool:
    """bf16/fp16 on a CPU, inference, nothing beyond an additive or boolean mask."""
    return (query.device.type == "cpu" and query.dtype in _LOW_PRECISION and not dropout
            and kwargs.get("softcap") is None and kwargs.get("s_aux") is None and kwargs.get("sinks") is None)


def _covered(query: torch.Tensor, key: torch.Tensor, dropout: float, kwargs: dict[str, Any]) -> bool:
    """A decode step (one query token) that :func:`decode_attention` computes."""
    return query.shape[2] == 1 and key.shape[-1] == query.shape[-1] and _low_precision_cpu(query, dropout, kwargs)


def decode_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float,
    bias: torch.Tensor | None = None,
    length: int | None = None,
) -> torch.Tensor:
    """softmax(q k^T * scaling + bias, masked) v for one query token.

    Shapes: query [B, H, 1, D], key/value [B, KVH, C, D] with H a multiple of KVH (grouped
    heads share keys without copying them), of which the first ``length`` positions
    (default all C) are the context and the rest are finite filler that gets zero weight;
    mask [B or 1, 1, 1, length] boolean (True = attend) or additive, bias
    [B or 1, H, 1, length] additive. Returns [B, H, 1, D]. The softmax runs in float32
    inside (PyTorch upcasts reduced-precision softmax on CPU)."""
    batch, heads, _, dim = query.shape
    kv_heads, capacity = key.shape[1], key.shape[2]
    length = capacity if length is None else length
    groups = heads // kv_heads
    q = (query * scaling).reshape(batch, kv_heads, groups, dim)
    scores = torch.matmul(q, key.transpose(-1, -2))  # [B, KVH, G, C]
    context = scores[..., :length]
    if bias is not None:
        context += bias.reshape(bias.shape[0], kv_heads, groups, -1)
    if mask is not None:
        mask = mask.reshape(mask.shape[0], 1, 1, -1)
        if mask.dtype == torch.bool:
            context.masked_fill_(~mask, float("-inf"))
        else:
            context += mask
    if length < capacity:
        scores[..., length:] = float("-inf")
    weights = torch.softmax(scores, dim=-1)
    return torch.matmul(weights, value).reshape(batch, heads, 1, dim)


def cpu_decode_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention-interface function: decode steps here, the rest to SDPA."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    segments = getattr(key, "shared_prefix", None)
    if segments is not None:
        # rows that share an exemplar block (shared_prefix.py); the decoder only builds such
        # caches for models whose attention has nothing beyond a mask (see CausalDecoder)
        if dropout or kwargs.get("softcap") is not None or kwargs.get("s_aux") is not None or kwargs.get(
                "sinks") is not None or kwargs.get("position_bias") is not None:
            raise RuntimeError("shared-prefix attention covers plain masked attention only")
        scale = query.shape[-1] ** -0.5 if scaling is None else scaling
        out = shared_prefix_attention(query, key, value, attention_mask, scale, segments)
        return out.transpose(1, 2).contiguous(), None
    bias = kwargs.get("position_bias")
    groups = getattr(module, "num_key_value_groups", 1) or 1
    if query.shape[2] > 1 and groups > 1 and attention_mask is not None and bias is None and _low_precision_cpu(
            query, dropout, kwargs):
        # A masked prefill with grouped heads: transformers copies every key/value head
        # group-fold first (repeat_kv), which for prompts after a long shared prefix cost as
        # much as the attention itself; SDPA broadcasts the groups without the copy.
        out = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, scale=scaling, enable_gqa=True)
        return out.transpose(1, 2).contiguous(), None
    if query.shape[2] > 1 and bias is not None and groups == 1 and _low_precision_cpu(query, dropout, kwargs):
        # T5's prefill (the encoder above all): every layer gets the same position bias and
        # mask, and transformers adds them into one contiguous tensor in every layer (for a
        # 1.8k-token prompt 40 MB a layer, ~20% of the encoder's time); built once here
        causal = attention_mask is None and (is_causal if is_causal is not None else getattr(module, "is_causal", False))
        combined = _bias_plus_mask(bias, attention_mask, causal, query, key)
        rest = {k: v for k, v in kwargs.items() if k != "position_bias"}
        return sdpa_attention_forward(module, query, key, value, combined, dropout=dropout, scaling=scaling,
                                      is_causal=False, **rest)
    if not _covered(query, key, dropout, kwargs) or (bias is not None and groups > 1):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    if attention_mask is not None and attention_mask.shape[-2] != 1:
        attention_mask = attention_mask[..., -1:, :]
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    length = key.shape[2]
    full_key, full_value = getattr(key, "full_buffer", None), getattr(value, "full_buffer", None)
    if full_key is not None and full_value is not None and full_key.shape[:2] == key.shape[:2]:
        key, value = full_key, full_value  # a PreallocatedLayer's contiguous buffers
    out = decode_attention(query, key, value, attention_mask, scale, bias, length)
    return out.transpose(1, 2).contiguous(), None


def _bias_plus_mask(bias: torch.Tensor, mask: torch.Tensor | None, causal: bool, query: torch.Tensor,
                    key: torch.Tensor) -> torch.Tensor:
    """transformers' own bias-plus-mask tensor (same values, so the same outputs), kept on the
    bias tensor itself: the model hands every layer of one forward the same bias and mask
    objects, and the memo goes when the forward drops the bias."""
    from transformers.integrations.sdpa_attention import create_position_bias_mask

    memo = getattr(bias, "_rai_bias_plus_mask", None)
    if memo is not None and memo[0] is mask and memo[1] == causal and memo[2].shape[-2:] == (query.shape[2], key.shape[2]):
        return memo[2]
    combined = create_position_bias_mask(bias, mask, causal, query, key)
    bias._rai_bias_plus_mask = (mask, causal, combined)
    return combined


def _register() -> None:
    """Make :data:`IMPLEMENTATION` known to transformers (attention and mask builders; its
    masks are SDPA's). Idempotent."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if IMPLEMENTATION not in ALL_ATTENTION_FUNCTIONS:
        ALL_ATTENTION_FUNCTIONS.register(IMPLEMENTATION, cpu_decode_attention_forward)
    if IMPLEMENTATION not in ALL_MASK_ATTENTION_FUNCTIONS:
        ALL_MASK_ATTENTION_FUNCTIONS.register(IMPLEMENTATION, sdpa_mask)


def use_cpu_decode_attention(model: Any) -> bool:
    """Switch a CPU model in bf16/fp16/fp32 that runs transformers' SDPA attention over to
    :func:`cpu_decode_attention_forward`; returns whether it did. Models on a GPU, int8
    models, or ones with another attention implementation are left alone."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    try:
        param = next(model.parameters())
    except StopIteration:
        return False
    if param.device.type != "cpu" or param.dtype not in _LOW_PRECISION + (torch.float32,):
        return False
    if not hasattr(model, "set_attn_implementation"):
        return False
    _register()
    model.set_attn_implementation(IMPLEMENTATION)
    return config._attn_implementation == IMPLEMENTATION
