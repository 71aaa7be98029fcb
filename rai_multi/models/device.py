"""Where a transformers model runs, and in which dtype it is loaded.

Why: under ``torchrun``/``accelerate launch`` every process of a node sees all the node's
GPUs; a bare ``model.to("cuda")`` puts them all on ``cuda:0``. Each process must take the
GPU its launcher assigned, ``cuda:<LOCAL_RANK>``. And a bf16/fp16 checkpoint loaded as
float32 and cast afterwards needs twice (fp16: twice) its size in host memory for nothing:
on a GPU the weights are loaded in the target dtype directly.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

from rai_multi.errors import ModelLoadError

_DEVICE = re.compile(r"^(cpu|cuda|cuda:\d+|auto)$")


def check_device_name(name: str) -> str:
    if not isinstance(name, str) or not _DEVICE.match(name):
        raise ModelLoadError(f"unknown device {name!r}; use cpu, cuda, cuda:<index> or auto")
    return name


def choose_device(requested: str | None = None, env: Mapping[str, str] | None = None,
                  cuda_count: int | None = None) -> str:
    """``cpu`` or ``cuda:<index>``. Unset/``auto``: ``cuda:<LOCAL_RANK>`` when GPUs are
    visible, else ``cpu``; ``cuda`` alone also means the local rank's GPU. A local rank
    without its own GPU is an error (sharing one silently would run out of memory later)."""
    env = os.environ if env is None else env
    if cuda_count is None:
        import torch

        cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    requested = check_device_name(requested or "auto")
    if requested == "cpu":
        return "cpu"
    if requested == "auto" and cuda_count == 0:
        return "cpu"
    if cuda_count == 0:
        raise ModelLoadError(f"device {requested} was asked for but no CUDA GPU is visible")
    if requested.startswith("cuda:"):
        index = int(requested.split(":", 1)[1])
    else:
        raw = env.get("LOCAL_RANK", "0")
        try:
            index = int(raw)
        except ValueError:
            raise ModelLoadError(f"LOCAL_RANK must be a whole number; got {raw!r}") from None
    if not 0 <= index < cuda_count:
        raise ModelLoadError(f"cuda:{index} is not visible ({cuda_count} GPU(s)); one GPU per local rank is needed")
    return f"cuda:{index}"


TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def load_dtype(device: str, dtype: str, checkpoint_dtype: Any = None) -> str:
    """The dtype ``from_pretrained`` loads the weights in (a torch dtype name).

    On a GPU, the target dtype itself (``auto``: the checkpoint's own bf16/fp16, else bf16
    where supported), so no float32 copy is made. On a CPU, float32: the CPU paths cast
    afterwards (int8 quantises float32 weights; bf16 casts are the same either way)."""
    if not device.startswith("cuda"):
        return "float32"
    if dtype == "int8":
        raise ModelLoadError("--dtype int8 is dynamic quantisation for CPU; use bf16 on a GPU")
    if dtype in TORCH_DTYPES:
        return TORCH_DTYPES[dtype]
    text = str(checkpoint_dtype or "").replace("torch.", "")
    if text in ("bfloat16", "float16"):
        return text
    return "bfloat16"
