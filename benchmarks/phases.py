"""Where a generation run's time goes, split into prefill and decode, with what each phase
must at least cost on this machine: prefill is bound by matmul throughput (FLOPs / peak),
a decode step by memory (the weights once, plus the keys and values each row attends to,
padding not counted, / read bandwidth). Used by bench_eval.py to say why a run reaches the fraction of the FLOP
floor it does.

A forward hook on the model (and on the encoder of an encoder-decoder model) classifies
each call: one new token per row is a decode step, anything else (encoder, prompt or
shared-prefix prefill) is prefill.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from rai_multi.models.auto_batch import decode_bytes


def read_bandwidth(gigabytes: float = 1.0, repeats: int = 5) -> float:
    """Best GB/s of reading a float32 tensor far larger than the caches: the faster of a sum
    and a one-row matrix-vector product over it (what a decode step does to a weight).
    Not a bf16 sum: at one thread that is bound by the bf16-to-fp32 conversion, not by
    memory (measured here: 9.0 GB/s against 15.4 for the fp32 sum and 17.3 for the product),
    and a low bandwidth would overstate every decode step's fraction of its roofline."""
    x = torch.ones(int(gigabytes * 1e9 / 4) // 8192 * 8192, dtype=torch.float32)
    matrix = x.view(-1, 8192)
    vector = torch.ones(1, matrix.shape[0])
    best = float("inf")
    for op in (x.sum, lambda: vector @ matrix):
        op()
        for _ in range(repeats):
            t = time.perf_counter()
            op()
            best = min(best, time.perf_counter() - t)
    return x.numel() * 4 / best / 1e9


def attention_flops(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args: Any,
                    attn_mask: torch.Tensor | None = None, is_causal: bool = False, out_val: Any = None,
                    **kwargs: Any) -> int:
    """FLOPs of PyTorch's CPU flash attention, which FlopCounterMode does not count at all:
    2 x (key dim + value dim) per head for every (query, key) pair the query attends to.
    Pairs come from the mask (boolean, or additive with masked entries near the dtype's
    minimum) or the causal triangle, so padding and the masked half of causal attention
    are not counted: the work the prompts need, not what the kernel happens to compute."""
    if args:  # positional (dropout_p, is_causal) as the op's schema orders them
        is_causal = bool(args[1]) if len(args) > 1 else is_causal
    batch, heads, q_len, dim = query.shape
    k_len, v_dim = key.shape[-2], value.shape[-1]
    if attn_mask is not None:
        allowed = attn_mask if attn_mask.dtype == torch.bool else attn_mask > torch.finfo(attn_mask.dtype).min / 2
        allowed = allowed.expand(batch, allowed.shape[1], q_len, k_len)
        pairs = int(allowed.sum()) * (heads // allowed.shape[1])
    elif is_causal:  # query i (of q_len, aligned to the end of the keys) sees k_len - q_len + i + 1 keys
        pairs = batch * heads * sum(min(k_len, k_len - q_len + i + 1) for i in range(q_len))
    else:
        pairs = batch * heads * q_len * k_len
    return 2 * pairs * (dim + v_dim)


attention_flops._get_raw = True  # FlopCounterMode passes the tensors themselves (the mask is needed)
COUNTED_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: attention_flops}


def _cache_bytes(cache: Any) -> int:
    """Bytes of keys and values a decode step attends to: each layer's filled part per row,
    and a shared exemplar block (shared_prefix.py) once for all its rows."""
    if cache is None:
        return 0
    total = 0
    encoder_decoder = hasattr(cache, "cross_attention_cache")
    for part in (cache.self_attention_cache, cache.cross_attention_cache) if encoder_decoder else (cache,):
        for layer in getattr(part, "layers", []):
            keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
            if keys is None or keys.numel() == 0:
                continue
            total += (keys.numel() + values.numel()) * keys.element_size()
            for seg in getattr(layer, "segments", ()):
                total += (seg.keys.numel() + seg.values.numel()) * seg.keys.element_size()
    return total


def _attended(mask: Any) -> int | None:
    """(row, key position) pairs a decode step's mask lets its rows attend: a boolean mask,
    an additive one (attended where above half the dtype's minimum) or a 0/1 integer one."""
    if not isinstance(mask, torch.Tensor):
        return None
    if mask.dtype == torch.bool:
        return int(mask.sum())
    if mask.is_floating_point():
        return int((mask > torch.finfo(mask.dtype).min / 2).sum())
    return int((mask != 0).sum())


def _attended_bytes(model: Any, cache: Any, mask: Any) -> int | None:
    """Bytes of keys and values a decode step must read: in every layer, each row's attended
    positions of its own keys and values (the mask for that layer's type), plus each shared
    exemplar block once, from the first position a row of it can see (a sliding window may
    start inside the block). Padding and unwritten buffer columns are not counted: the
    roofline is what the step needs, not what a kernel happens to read. None where the
    cache or mask is of a form this does not know (the caller then counts the buffers)."""
    layers = getattr(cache, "layers", None)
    if not layers or hasattr(cache, "cross_attention_cache") or mask is None:
        return None
    types = getattr(model.config, "layer_types", None) or ["full_attention"] * len(layers)
    total = 0
    for layer, kind in zip(layers, types):
        keys = getattr(layer, "keys", None)
        if keys is None or keys.numel() == 0:
            continue
        layer_mask = mask.get(kind) if isinstance(mask, dict) else mask
        pairs = _attended(layer_mask)
        if pairs is None:
            return None
        per_position = 2 * keys.shape[1] * keys.shape[-1] * keys.element_size()  # keys and values, all kv heads
        total += pairs * per_position
        starts = getattr(layer_mask, "window_start", None)
        for seg in getattr(layer, "segments", ()):
            length = seg.keys.shape[2]
            first = 0 if starts is None else max(0, int(starts[seg.start : seg.stop].min()))
            total += max(0, length - first) * per_position
    return total


def phase_of(kwargs: dict) -> str:
    """A decoder forward's phase from its inputs: one new token per row is a decode step,
    anything else (a prompt or shared-prefix prefill) is prefill."""
    ids = kwargs.get("decoder_input_ids") if "decoder_input_ids" in kwargs else kwargs.get("input_ids")
    return "decode" if ids is not None and ids.shape[1] == 1 else "prefill"


class PhaseMeter:
    """Hooks that add up, per phase, seconds (and FLOPs from an active FlopCounterMode) and,
    for decode steps, the bytes each step must read."""

    def __init__(self, model: Any, flop_counter: Any = None):
        self.model, self.counter = model, flop_counter
        self.seconds = {"prefill": 0.0, "decode": 0.0}  # wall
        self.cpu_seconds = {"prefill": 0.0, "decode": 0.0}  # this process's user+sys: what a shared machine gave it
        self.flops = {"prefill": 0.0, "decode": 0.0}
        self.attention_flops = {"prefill": 0.0, "decode": 0.0}  # the flash kernel's part of flops
        self.decode_steps = 0
        self.decode_read_bytes = 0
        self.prefill_calls = 0
        self.prefill_read_bytes = 0  # the weights once per prefill forward (its keys and values are written, not read)
        self._weights = decode_bytes(model).weights
        self.weight_bytes = self._weights
        self._open: list[tuple[str, float, float]] = []
        self._handles = []
        modules = [model] + ([model.get_encoder()] if getattr(model.config, "is_encoder_decoder", False) else [])
        for module in modules:
            self._handles.append(module.register_forward_pre_hook(self._before, with_kwargs=True))
            self._handles.append(module.register_forward_hook(self._after, with_kwargs=True))

    def _phase(self, module: Any, kwargs: dict) -> str:
        return phase_of(kwargs) if module is self.model else "prefill"  # else: the encoder

    def _counted(self) -> tuple[float, float]:
        """The counter's FLOPs so far: all, and the flash-attention kernel's."""
        if self.counter is None:
            return 0.0, 0.0
        flash = sum(v for op, v in self.counter.get_flop_counts().get("Global", {}).items()
                    if "flash_attention" in str(op))
        return self.counter.get_total_flops(), flash

    def _before(self, module: Any, args: tuple, kwargs: dict) -> None:
        phase = self._phase(module, kwargs)
        if phase == "decode":
            self.decode_steps += 1
            cache = kwargs.get("cache", kwargs.get("past_key_values"))
            needed = _attended_bytes(self.model, cache, kwargs.get("attention_mask"))
            self.decode_read_bytes += self._weights + (_cache_bytes(cache) if needed is None else needed)
        elif not self._open:  # a top-level prefill forward (an encoder inside a model call is counted there)
            self.prefill_calls += 1
            self.prefill_read_bytes += self._weights
        self._open.append((phase, time.perf_counter(), time.process_time(), self._counted()))

    def _after(self, module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        phase, started, cpu_started, flops = self._open.pop()
        if self._open:  # a call inside another one (the encoder inside a model call): counted there
            return
        self.seconds[phase] += time.perf_counter() - started
        self.cpu_seconds[phase] += time.process_time() - cpu_started
        if self.counter is not None:
            total, flash = self._counted()
            self.flops[phase] += total - flops[0]
            self.attention_flops[phase] += flash - flops[1]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
