"""A CPU model's Linear layers, in generation, on weights prepacked for oneDNN.

Why: a decode step multiplies a few rows (the batch) by every weight of the model, and on a
CPU that step waits on memory: each weight should be read once, at memory speed. The plain
products do not get there at decode shapes. On the 2-core Xeon with AMX here, one thread:

- fp32, ``F.linear`` (MKL's sgemm) from 4 rows on: Gemma 3 270M's 262,144 x 640 output layer
  took 51 ms for 1 row (the weight read once) but 114 ms for 4 rows and 176 ms for 8;
- bf16, ``F.linear`` at any row count: that layer took 40-45 ms for 1-16 rows where its
  bf16 weight reads in 20 ms; SmolLM2's body layers took 1.4-2x their packed time.

oneDNN's linear on a weight reordered once into its own blocked layout
(``torch.ops.mkldnn._reorder_linear_weight`` and ``_linear_pointwise``, what torch's inductor
uses for CPU linears) stays near the memory bound: fp32 52 ms for 4 rows, 65 ms for 8; bf16
25-29 ms for 1-16 rows. From a few hundred rows on (a prefill) the two are level or the plain
product is faster, so products of more than :data:`MAX_ROWS` rows keep ``F.linear``.

The cost is one more copy of each packed weight in memory, made on first use and again only
if the weight changes, so models whose Linear weights exceed :data:`MAX_PACKED_BYTES` are
left alone (the decision depends on the model and dtype only, not on the machine's free
memory, so it is the same wherever the model runs). The products are the same sums in another
order: outputs agree with ``F.linear`` to rounding, not bit for bit, which is why
:data:`FINGERPRINT` is part of the cache key of every model it applies to (models/loading.py).

Only generation uses it (decoding.CausalDecoder, for the duration of a call), only for plain
fp32/bf16 ``nn.Linear`` layers on a CPU, and only where torch has oneDNN.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

FINGERPRINT = "onednn-linears@1"  # in the cache keys of models whose generation uses it (models/loading.py)

# The row count weights are reordered for (a hint: the product takes any number of rows);
# the size of a typical decode batch.
PACK_ROWS = 8

# Products of more rows than this (prefill) use F.linear: measured here at the demo models'
# shapes, the packed product was 1.1-2x faster up to 64 rows; at 128-256 rows fp32 was level
# (0.9-1.2x) and bf16 mixed (1.1-1.7x), and at 2,048 rows the plain one was faster for some
# shapes (0.7x), so decode steps, not prefills, are what it is for.
MAX_ROWS = 64

# The fewest rows an fp32 product runs packed for: at 1-2 rows MKL's sgemm reads the weight
# once at memory speed and the packed product was slower (a whole Gemma 3 270M decode step,
# one row: 94 ms plain, 109 ms packed); from 4 rows on the packed one was faster (8 rows:
# 267 ms plain, 141 ms packed). bf16 products were faster packed at every row count
# (8 rows: 97 ms plain, 69 ms packed).
MIN_ROWS = {torch.float32: 3, torch.bfloat16: 1}

# Models whose packable weights take more bytes than this are not packed: a second copy of
# a few GB is not worth a faster decode on a machine that may not have the memory.
MAX_PACKED_BYTES = 2 * 1024**3

_DTYPES = (torch.float32, torch.bfloat16)


def available() -> bool:
    """Whether this torch has oneDNN's prepacked linear (CPU builds with oneDNN)."""
    ops = torch.ops.mkldnn
    return bool(torch.backends.mkldnn.is_available()) and hasattr(ops, "_linear_pointwise") and hasattr(
        ops, "_reorder_linear_weight")


def _is_packable(layer: torch.nn.Module) -> bool:
    """A plain Linear (subclasses such as quantised layers keep their own forward) with a 2-D
    fp32 or bf16 weight on a CPU."""
    if type(layer) is not torch.nn.Linear:
        return False
    weight = layer.weight
    return weight.device.type == "cpu" and weight.dtype in _DTYPES and weight.dim() == 2


def packable_layers(model: Any) -> list[torch.nn.Linear]:
    """The model's packable Linear layers (each once, even if registered twice)."""
    modules = getattr(model, "modules", None)
    if not callable(modules):
        return []
    seen: dict[int, torch.nn.Linear] = {}
    for layer in modules():
        if _is_packable(layer):
            seen.setdefault(id(layer), layer)
    return list(seen.values())


def _weight_bytes(layers: list[torch.nn.Linear]) -> int:
    return sum(layer.weight.numel() * layer.weight.element_size() for layer in layers)


def _layers_to_pack(model: Any) -> list[torch.nn.Linear]:
    """The layers generation packs: none where torch lacks oneDNN or the model is too big."""
    if not available():
        return []
    layers = packable_layers(model)
    return layers if _weight_bytes(layers) <= MAX_PACKED_BYTES else []


def applies(model: Any) -> bool:
    """Whether generation with this model runs its Linear layers packed."""
    return bool(_layers_to_pack(model))


def _packed_weight(layer: torch.nn.Linear) -> torch.Tensor:
    """The packed weight, made once and again when the weight is replaced or written to."""
    weight = layer.weight
    key = (weight.data_ptr(), weight._version, tuple(weight.shape), weight.dtype)
    memo = layer.__dict__.get("_rai_packed")
    if memo is None or memo[0] != key:
        with torch.no_grad():
            memo = (key, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), PACK_ROWS))
        layer.__dict__["_rai_packed"] = memo
    return memo[1]


def _forward(layer: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through the packed weight for decode-sized row counts."""
    rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
    if not MIN_ROWS[layer.weight.dtype] <= rows <= MAX_ROWS or x.dtype != layer.weight.dtype:
        return torch.nn.functional.linear(x, layer.weight, layer.bias)
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    out = torch.ops.mkldnn._linear_pointwise(flat, _packed_weight(layer), layer.bias, "none", [], "")
    return out.reshape(*x.shape[:-1], out.shape[-1])


@contextmanager
def packed_linears(model: Any) -> Iterator[bool]:
    """Within the block the model's packable Linear layers compute through their packed
    weights (yields whether they do: not for models it does not apply to)."""
    layers = _layers_to_pack(model)
    if not layers:
        yield False
        return
    switched = []
    for layer in layers:
        if "forward" in layer.__dict__:  # already switched by an enclosing block, or replaced by someone else
            continue
        layer.forward = layer.__dict__["_rai_packed_forward"] = (lambda x, layer=layer: _forward(layer, x))
        switched.append(layer)
    try:
        yield True
    finally:
        for layer in switched:
            del layer.forward
