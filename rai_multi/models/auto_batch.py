"""``--batch-size auto``: how many rows a decode batch carries.

Why: a decode step reads every weight of the decoder once, however many rows it carries,
and each row's own keys and values (its context) once more. More rows make each token
cheaper while the weights dominate what a step reads; once the rows' keys and values
outweigh the weights, a step costs about the same per row whatever the batch, and longer
batches only add padding and stragglers. So the rows of a batch are sized to keep its
key/value bytes at about ``KV_TO_WEIGHT_RATIO`` times the weight bytes, within bounds.
Measured on a 2-core CPU with 64 prompts per workload (benchmarks/RESULTS.md): short
zero-shot prompts ran 1.4-1.5x faster at 64 rows than at 16, 1-2k-token encoder-decoder
prompts 1.2-1.3x slower at 64 than at 16.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

KV_TO_WEIGHT_RATIO = 2.0
ROWS_CPU = (16, 64)
ROWS_GPU = (16, 256)  # not measured here (no GPU was lent); the same rule, more rows allowed
SCORING_PAIRS = 16  # log-likelihood batches under auto: (context, continuation) pairs per forward


@dataclass(frozen=True)
class DecodeBytes:
    """What one decode step reads: the decoder's weights once, and per row and context
    token its keys and values (for encoder-decoder models, the cross-attention ones)."""

    weights: int
    kv_per_token: int


def decode_bytes(model: Any) -> DecodeBytes:
    """Estimate from the model's parameters and config. Input embeddings are gathered, not
    streamed, so they count only when the output layer shares them; an encoder runs once per
    prompt, not per step, so it does not count."""
    config = model.config
    seq2seq = bool(getattr(config, "is_encoder_decoder", False))
    output = model.get_output_embeddings()
    streamed = output.weight if output is not None else None  # read whole every step
    skip: set[int] = set()
    embeddings = model.get_input_embeddings()
    if embeddings is not None and embeddings.weight is not streamed:
        skip.add(id(embeddings.weight))
    if seq2seq and hasattr(model, "get_encoder"):
        skip.update(id(p) for p in model.get_encoder().parameters() if p is not streamed)
    weights = sum(p.numel() * p.element_size() for p in model.parameters() if id(p) not in skip)
    element = next(model.parameters()).element_size()
    if seq2seq:
        layers = getattr(config, "num_decoder_layers", None) or config.num_layers
        inner = getattr(config, "num_heads", 1) * getattr(config, "d_kv", config.d_model // max(1, config.num_heads))
        return DecodeBytes(weights, layers * 2 * inner * element)
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", 1)
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", 1)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", 0)
    head_dim = getattr(config, "head_dim", None) or hidden // max(1, heads)
    return DecodeBytes(weights, layers * 2 * kv_heads * head_dim * element)


def auto_decode_rows(own_tokens: int, cost: DecodeBytes, gpu: bool | None = None,
                     free_bytes: int | None = None) -> int:
    """Rows for a decode batch whose longest row holds ``own_tokens`` tokens of its own (a
    shared exemplar block is read once for all rows and does not count). On a GPU the rows
    are also capped by its free memory (``free_bytes``, default torch.cuda.mem_get_info)."""
    gpu = torch.cuda.is_available() if gpu is None else gpu
    low, high = ROWS_GPU if gpu else ROWS_CPU
    per_row = max(1, own_tokens) * max(1, cost.kv_per_token)
    if gpu:
        free = free_bytes if free_bytes is not None else int(torch.cuda.mem_get_info()[0])
        high = max(1, min(high, memory_rows(free, per_row)))
        low = min(low, high)
    return max(low, min(high, int(KV_TO_WEIGHT_RATIO * cost.weights // per_row)))


GPU_MEMORY_FRACTION = 0.5  # of the free memory, for keys/values; the rest for activations and logits
GROWTH = 2  # a row's keys/values grow while it decodes: room for as many new tokens as prompt tokens


def memory_rows(free_bytes: int, prompt_kv_bytes: int) -> int:
    """Rows whose keys and values fit in the free GPU memory (a heuristic, not measured on a
    GPU here: an out-of-memory error still halves the batch, see OomBackoff)."""
    return int(GPU_MEMORY_FRACTION * free_bytes // max(1, GROWTH * prompt_kv_bytes))


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's out-of-memory error (CUDA, or the device-generic one)."""
    kinds = tuple(k for k in (getattr(torch.cuda, "OutOfMemoryError", None), getattr(torch, "OutOfMemoryError", None))
                  if k is not None)
    return isinstance(exc, kinds)


class OomBackoff:
    """Caps the prompts per decode batch after an out-of-memory error: the batch that failed
    is retried with half as many, and later batches keep that cap (the memory picture does
    not improve during a run). Failing at one prompt is a user-facing error."""

    def __init__(self) -> None:
        self.cap: int | None = None

    def rows(self, wanted: int) -> int:
        return max(1, min(wanted, self.cap)) if self.cap else max(1, wanted)

    def failed(self, rows: int) -> None:
        from rai_multi.errors import RaiMultiError

        if rows <= 1:
            raise RaiMultiError("out of GPU memory with one prompt per batch: use a smaller model, a shorter "
                                "prompt/--max-new-tokens, or more GPU memory (e.g. vllm: with tensor parallelism)")
        self.cap = rows // 2
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
