"""Per-request helpers shared by every backend that need neither torch nor transformers.

Why a module of their own: the served-model client (openai_backend) uses them, and importing
them from models/decoding.py pulled in torch and transformers (about 1.8 CPU seconds per
process) for a client that only speaks HTTP."""

from __future__ import annotations

import zlib
from typing import Sequence


def row_seed(seed: int, sample_id: str) -> int:
    """Seed base for one request's samples: the run seed and the sample id, nothing that
    depends on which other requests share its batch."""
    return (seed * 1_000_003 + zlib.crc32(sample_id.encode("utf-8"))) % (2**62)


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """Text up to the earliest stop string (the stop string itself removed)."""
    cut = len(text)
    for s in stops:
        pos = text.find(s)
        if pos != -1:
            cut = min(cut, pos)
    return text[:cut]
