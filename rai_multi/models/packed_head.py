"""The output layer of an fp32 model on a CPU, in generation, on a weight prepacked for oneDNN.

Why: a decode step multiplies a few rows (the batch) by the output layer, and with a large
vocabulary that one product is most of the step: Gemma 3 270M's 262,144 x 640 layer is 62%
of its weights. ``F.linear`` (MKL's sgemm) handles that shape badly from 4 rows on: on the
2-core Xeon here, one thread, 1 row took 51 ms (the weight read once, at memory speed),
3 rows 64 ms, but 4 rows 114 ms and 8 rows 176 ms. oneDNN's linear on a weight reordered
once into its own blocked layout (``torch.ops.mkldnn._reorder_linear_weight`` and
``_linear_pointwise``, what torch's inductor uses for CPU linears) stays near the memory
bound: 52 ms for 4 rows, 65 ms for 8, 86 ms for 16 (and 51 ms for 1). The cost is one more
copy of the layer's weight in memory (671 MB for Gemma 3 270M), made on first use and again
only if the weight changes; the products are the same sums in another order, so logits
agree with ``F.linear`` to fp32 rounding (not bit for bit).

Only generation uses it (decoding.CausalDecoder, for the duration of a call), only for a
plain fp32 ``nn.Linear`` output layer on a CPU, and only where torch has oneDNN.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

FINGERPRINT = "onednn-head@1"  # in the cache keys of models whose generation uses it (models/loading.py)

# The row count the weight is reordered for (a hint: the product takes any number of rows);
# the size of a typical decode batch.
PACK_ROWS = 8


def available() -> bool:
    """Whether this torch has oneDNN's prepacked linear (CPU builds with oneDNN)."""
    ops = torch.ops.mkldnn
    return bool(torch.backends.mkldnn.is_available()) and hasattr(ops, "_linear_pointwise") and hasattr(
        ops, "_reorder_linear_weight")


def applies(model: Any) -> bool:
    """Whether generation with this model runs its output layer packed."""
    return available() and _packable(model) is not None


def _packable(model: Any) -> torch.nn.Linear | None:
    """The model's output layer when it is a plain fp32 Linear on a CPU, else None."""
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    if type(head) is not torch.nn.Linear:  # quantised or otherwise special layers keep their own forward
        return None
    weight = head.weight
    if weight.device.type != "cpu" or weight.dtype != torch.float32 or weight.dim() != 2:
        return None
    return head


def _packed_weight(head: torch.nn.Linear) -> torch.Tensor:
    """The packed weight, made once and again when the weight is replaced or written to."""
    weight = head.weight
    key = (weight.data_ptr(), weight._version, tuple(weight.shape))
    memo = head.__dict__.get("_rai_packed")
    if memo is None or memo[0] != key:
        with torch.no_grad():
            memo = (key, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), PACK_ROWS))
        head.__dict__["_rai_packed"] = memo
    return memo[1]


def _forward(head: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` through the packed weight."""
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    out = torch.ops.mkldnn._linear_pointwise(flat, _packed_weight(head), head.bias, "none", [], "")
    return out.reshape(*x.shape[:-1], out.shape[-1])


@contextmanager
def packed_output_layer(model: Any) -> Iterator[bool]:
    """Within the block the model's output layer computes through its packed weight (yields
    whether it does: not for other dtypes, devices or layer types, or without MKL)."""
    head = _packable(model) if available() else None
    if head is None or "forward" in head.__dict__:  # not packable, or its forward is already replaced
        yield head is not None and head.__dict__.get("_rai_packed_forward") is head.__dict__.get("forward")
        return
    head.forward = head.__dict__["_rai_packed_forward"] = lambda x: _forward(head, x)
    try:
        yield True
    finally:
        del head.forward
