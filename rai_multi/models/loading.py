"""Turn a ``--model`` value into a ModelAdapter: local directory, GGUF file, or hub id.

GGUF files are dequantised by transformers (slow: about a minute for a 270M model), so the
conversion is done once into a cache folder as safetensors and reused; the cache key is the
GGUF file's hash, which is also the model fingerprint.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from rai_multi.errors import ModelLoadError
from rai_multi.models.cpu_attention import FINGERPRINT as CPU_DECODE_ATTENTION
from rai_multi.models.cpu_attention import use_cpu_decode_attention
from rai_multi.models import packed_linears
from rai_multi.models.decoding import plain_kv_cache
from rai_multi.models.window_masks import FINGERPRINT as WINDOW_MASKS
from rai_multi.models.device import choose_device, load_dtype
from rai_multi.models.hf import HFAdapter
from rai_multi.store import file_sha256

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
DTYPES = ("auto", "fp32", "bf16", "fp16", "int8")


def model_cache_dir() -> Path:
    env = os.environ.get("RAI_MULTI_MODEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rai-multi" / "models"


def directory_fingerprint(path: Path) -> str:
    """Hash of a local model's config and weight files (content, not names or dates)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.name == "config.json" or p.suffix in WEIGHT_SUFFIXES)
    for p in files:
        digest.update(p.name.encode())
        digest.update(file_sha256(p).encode())
    return "sha256:" + digest.hexdigest()[:32]


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "vocab.txt", "merges.txt", "chat_template.jinja", "chat_template.json")


def tokenizer_fingerprint(path: Path) -> str | None:
    """Hash of a local model's tokenizer files, chat template included (a template edited in
    tokenizer_config.json or chat_template.jinja changes it); None when there are none."""
    files = sorted(p for p in path.iterdir() if p.name in TOKENIZER_FILES or p.suffix == ".model")
    if not files:
        return None
    digest = hashlib.sha256()
    for p in files:
        digest.update(p.name.encode())
        digest.update(file_sha256(p).encode())
    return "sha256:" + digest.hexdigest()[:32]


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or spec.endswith(".gguf") or os.sep == "\\"


def convert_gguf(gguf: Path) -> Path:
    """Dequantise a GGUF file once into ``<model cache>/gguf-<hash>/`` (safetensors)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = model_cache_dir() / f"gguf-{file_sha256(gguf)[:16]}"
    if (target / "config.json").is_file():
        return target
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    except Exception as exc:  # transformers raises many types for a bad file
        raise ModelLoadError(f"cannot read GGUF file {gguf}: {exc}") from None
    tmp.mkdir(parents=True)
    # The weights are dequantised to float32 on load; drop the GGUF quantizer marker so
    # transformers saves them as an ordinary checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "source.txt").write_text(f"{gguf}\n{file_sha256(gguf)}\n", encoding="utf-8")
    if target.exists():  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, target)
    return target


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX), where bf16
    matmuls run at about twice the fp32 rate; elsewhere bf16 is emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def resolve_dtype(dtype: str) -> str:
    """``auto`` is the fastest dtype the hardware runs natively: bf16 on a GPU that supports
    it and on a CPU with bf16 instructions, else fp32. bf16 changes greedy outputs against
    fp32, long generations most (benchmarks/DTYPE_DRIFT.md); ``fp32`` reproduces fp32 runs."""
    import torch

    if dtype != "auto":
        return dtype
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def _apply_dtype(model: Any, dtype: str, device: str = "cpu") -> Any:
    """Place the model on ``device`` (models/device.py: ``cuda:<LOCAL_RANK>`` under a
    launcher) and cast it to ``dtype`` (already resolved, see resolve_dtype); a model
    loaded in its dtype on a GPU is not cast again."""
    import torch

    if device != "cpu":
        model = model.to(device)
    if dtype == "fp32":
        return model.float()
    if dtype == "bf16":
        return model.to(torch.bfloat16)
    if dtype == "fp16":
        return model.to(torch.float16)
    if dtype == "int8":
        if next(model.parameters()).is_cuda:
            raise ModelLoadError("--dtype int8 is dynamic quantisation for CPU; use bf16 on a GPU")
        return torch.ao.quantization.quantize_dynamic(model.float(), {torch.nn.Linear}, dtype=torch.qint8)
    raise ModelLoadError(f"unknown --dtype {dtype!r}; choose one of {', '.join(DTYPES)}")


def _load_pretrained(source: str, revision: str | None, device: str = "cpu", dtype: str = "auto") -> tuple[Any, Any]:
    """Model and tokenizer; weights come in float32 on a CPU and in the target dtype on a
    GPU (models/device.load_dtype)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # length warnings are handled by our own truncation
    hf_logging.disable_progress_bar()

    config = AutoConfig.from_pretrained(source, revision=revision)
    cls = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
    checkpoint_dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    # transformers' own report of missing weights is a log warning, silenced above: read
    # the loading info instead, so a model with randomly initialised layers is never run
    model, info = cls.from_pretrained(source, revision=revision, dtype=load_dtype(device, dtype, checkpoint_dtype),
                                      output_loading_info=True)
    check_loading_info(source, info)
    return model, tokenizer


def _weights_error() -> type[Exception]:
    """The exception safetensors raises for a truncated or corrupt file."""
    try:
        from safetensors import SafetensorError
    except ImportError:  # pragma: no cover - safetensors comes with transformers
        return OSError
    return SafetensorError


def check_loading_info(source: str, info: dict[str, Any], shown: int = 8) -> None:
    """Raise ModelLoadError naming the weights a checkpoint lacks (left randomly
    initialised), has in excess (ignored), or has in the wrong shape."""
    problems = []
    for key, what in (("missing_keys", "missing (would be randomly initialised)"),
                      ("unexpected_keys", "unexpected (not used by the model)"),
                      ("mismatched_keys", "of the wrong shape")):
        names = sorted(str(k if isinstance(k, str) else k[0]) for k in info.get(key) or ())
        if names:
            more = f" and {len(names) - shown} more" if len(names) > shown else ""
            problems.append(f"{len(names)} weight(s) {what}: {', '.join(names[:shown])}{more}")
    if problems:
        raise ModelLoadError(f"checkpoint {source} does not match its model class: {'; '.join(problems)}")


def load_model(
    spec: str,
    *,
    batch_size: int | None = None,
    dtype: str = "auto",
    chat_template: bool = False,
    revision: str | None = None,
    name: str | None = None,
    device: str | None = None,
) -> HFAdapter:
    """Load ``spec`` (local dir, ``.gguf`` file or hub id) as an HFAdapter; ``batch_size`` None
    is auto (models/auto_batch.py); ``device`` None is ``cuda:<LOCAL_RANK>`` or the CPU."""
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown --dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    target = choose_device(device)
    path = Path(spec).expanduser()
    description: dict[str, Any] = {"source": spec}
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"model file does not exist: {path}")
        fingerprint = f"gguf:{file_sha256(path)[:32]}"
        source = str(convert_gguf(path))
        description["gguf_sha256"] = file_sha256(path)
        display = name or path.stem
    elif path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"not a model directory (no config.json): {path}")
        fingerprint = directory_fingerprint(path)
        source = str(path)
        display = name or path.name
    elif _looks_like_path(spec):
        raise ModelLoadError(f"model path does not exist: {path}")
    else:
        source = spec
        fingerprint = ""
        display = name or spec.rsplit("/", 1)[-1]
    try:
        model, tokenizer = _load_pretrained(source, revision, target, dtype)
    except ModelLoadError:
        raise
    except (OSError, ValueError, EnvironmentError, _weights_error()) as exc:  # a truncated or corrupt weight file
        hint = "" if path.exists() else " (not a local path; offline or unknown hub id? pass a local directory)"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load model {spec!r}{hint}: {first}") from None
    if not fingerprint:
        commit = getattr(model.config, "_commit_hash", None) or revision or "unknown"
        fingerprint = f"hub:{spec}@{commit}"
        description["revision"] = commit
    local = Path(source)
    tokenizer_hash = tokenizer_fingerprint(local) if local.is_dir() else None
    description["tokenizer_hash"] = tokenizer_hash or fingerprint
    if target == "cpu":
        dtype = resolve_dtype(dtype)
    else:  # loaded in its dtype already (load_dtype)
        dtype = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}[str(model.dtype).replace("torch.", "")]
    model = _apply_dtype(model, dtype, target)
    attention = ""
    if use_cpu_decode_attention(model):
        # A different kernel rounds differently: cached bf16 answers of the SDPA path are not reused.
        attention = f"|{CPU_DECODE_ATTENTION}"
        description["attention"] = CPU_DECODE_ATTENTION
    decoder_only = not getattr(model.config, "is_encoder_decoder", False)
    if decoder_only and not plain_kv_cache(model.config):
        # Sliding-window (and other non-plain) decoders: rows after a shared exemplar block were
        # padded between block and question, which shifted their windows; answers cached
        # before window_masks.py are not reused.
        attention += f"|{WINDOW_MASKS}"
        description["window_masks"] = WINDOW_MASKS
    if decoder_only and packed_linears.applies(model):
        # generation's Linear layers round differently (packed_linears.py): cached answers are not reused
        attention += f"|{packed_linears.FINGERPRINT}"
        description["linear_layers"] = packed_linears.FINGERPRINT
    return HFAdapter(
        model,
        tokenizer,
        name=display,
        fingerprint=f"{fingerprint}|{dtype}{attention}" + (f"|tok:{tokenizer_hash[7:23]}" if tokenizer_hash else ""),
        batch_size=batch_size,
        chat_template=chat_template,
        description=description,
    )
