"""A key/value cache layer allocated once for prompt plus new tokens.

Why: transformers' DynamicLayer concatenates the whole history with each new token (an
O(length) copy per step and layer); a buffer sized for the whole generation writes one
column per step instead.
"""

from __future__ import annotations

from typing import Any

import torch

from transformers.cache_utils import DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """One layer's keys and values in a buffer sized for the whole generation; ``keys`` and
    ``values`` are views of the filled part, so everything transformers reads from a
    DynamicLayer (lengths, mask sizes) stays as it expects.

    Positions past the filled part always hold finite values (zeros until written), and
    each view carries its whole buffer as ``full_buffer``: the CPU decode attention
    (cpu_attention.py) multiplies the contiguous buffers, which is several times faster
    than multiplying the strided views, and gives the unfilled positions zero weight."""

    def __init__(self, key_buffer: torch.Tensor, value_buffer: torch.Tensor, length: int):
        """Take ownership of buffers whose first ``length`` positions are filled and whose
        other positions are finite (zeros)."""
        super().__init__()
        self._k, self._v, self._len = key_buffer, value_buffer, length
        self.device, self.dtype = key_buffer.device, key_buffer.dtype
        self.is_initialized = True
        self._refresh()

    @classmethod
    def filled(cls, keys: torch.Tensor, values: torch.Tensor, capacity: int) -> "PreallocatedLayer":
        """A layer holding copies of ``keys``/``values`` with room for ``capacity`` positions."""
        batch, heads, length, _ = keys.shape
        k = keys.new_empty((batch, heads, max(capacity, length), keys.shape[-1]))
        v = values.new_empty((batch, heads, max(capacity, length), values.shape[-1]))
        k[:, :, :length], v[:, :, :length] = keys, values
        k[:, :, length:], v[:, :, length:] = 0, 0
        return cls(k, v, length)

    def _refresh(self) -> None:
        self.keys = self._k[:, :, : self._len]
        self.values = self._v[:, :, : self._len]
        self.keys.full_buffer, self.values.full_buffer = self._k, self._v

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        raise RuntimeError("a PreallocatedLayer is built filled")

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        n = key_states.shape[-2]
        if self._len + n > self._k.shape[-2]:  # more tokens than planned: grow by doubling
            grow = max(n, self._k.shape[-2])
            self._k = torch.cat([self._k, self._k.new_zeros(*self._k.shape[:2], grow, self._k.shape[-1])], dim=-2)
            self._v = torch.cat([self._v, self._v.new_zeros(*self._v.shape[:2], grow, self._v.shape[-1])], dim=-2)
        self._k[:, :, self._len : self._len + n] = key_states
        self._v[:, :, self._len : self._len + n] = value_states
        self._len += n
        self._refresh()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._k, self._v = self._k[indices], self._v[indices]
        self._refresh()

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._k = self._k.repeat_interleave(repeats, dim=0)
        self._v = self._v.repeat_interleave(repeats, dim=0)
        self._refresh()

    def crop(self, tokens_to_remove: int) -> None:
        """Drop the last ``-tokens_to_remove`` positions (the parent's contract); overridden
        because the parent's slicing of ``keys`` would leave the buffer length behind."""
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative number of positions to remove")
        self._len = max(0, self._len + tokens_to_remove)
        self._refresh()
