#!/usr/bin/env bash
# Install rai-multi and its test dependencies into the current Python, CPU-only.
# torch is pinned first to the local CPU wheel so that no CUDA packages are pulled in.
# Idempotent: a second run only checks that everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -m pip install -q --disable-pip-version-check "torch==2.13.0"
"$PY" -m pip install -q --disable-pip-version-check -e ".[test]"
# llama.cpp's OpenAI-compatible server for the served-model tests: llama-cpp-python builds
# llama.cpp from source (no prebuilt wheel on PyPI). Measured: over 65 minutes on 2 shared cores
# under a load of ~11, far less on an idle machine; skipped when already installed. The multimodal library is not needed.
if ! "$PY" -c "import llama_cpp, uvicorn, fastapi" >/dev/null 2>&1; then
  CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    timeout 2400 "$PY" -m pip install -q --disable-pip-version-check "llama-cpp-python[server]==0.3.36" \
    || echo "warning: llama-cpp-python[server] did not build; tests/test_served_llamacpp.py will skip, saying so" >&2
fi
