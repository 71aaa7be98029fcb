#!/usr/bin/env bash
# Install llama-cpp-python[server] (the real OpenAI-compatible server that
# tests/test_served_llamacpp.py starts on loopback), pinned by pyproject's serve-test extra.
#
# It builds llama.cpp from source (CPU only): 476 CPU seconds, 8.6 minutes at one job on
# the 2-core development machine; $CMAKE_BUILD_PARALLEL_LEVEL jobs (default 2).
#
# Why the AMX flags: on x86-64 the build is -march=native, and on a CPU with AMX (this
# project's Xeon machines) ggml then compiles its AMX matmul kernels, which segfault on the
# first decode here (ggml_backend_amx_mul_mat; llama.cpp issue #20824, open upstream; seen
# with both demo GGUF files). -mno-amx-* keeps every other native instruction set (AVX-512,
# VNNI, BF16) and leaves the AMX kernels out.
#
# Idempotent: when the server module already imports and the installed build has no AMX
# kernels, nothing is built or downloaded; an installed build with them is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
check='import llama_cpp, llama_cpp.server, uvicorn, fastapi, sse_starlette, starlette_context, pydantic_settings
import sys
info = llama_cpp.llama_print_system_info().decode()
sys.exit(3 if "AMX_INT8 = 1" in info else 0)'
status=0
"$PY" -c "$check" 2>/dev/null || status=$?
if [ "$status" = 0 ]; then
  echo "llama-cpp-python[server] already installed: $("$PY" -c 'import llama_cpp; print(llama_cpp.__version__)')"
  exit 0
fi
PIN="$("$PY" - <<'PYEOF'
import re, pathlib
text = pathlib.Path("pyproject.toml").read_text()
print(re.search(r'serve-test\s*=\s*\["([^"]+)"\]', text).group(1))
PYEOF
)"
reinstall=()
if [ "$status" = 3 ]; then
  echo "the installed llama-cpp-python has AMX kernels (they segfault here): rebuilding without them"
  reinstall=(--force-reinstall --no-deps --no-cache-dir)
fi
if [ "$(uname -m)" = x86_64 ]; then
  NOAMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  export CMAKE_ARGS="${CMAKE_ARGS:-} -DCMAKE_C_FLAGS=\"$NOAMX\" -DCMAKE_CXX_FLAGS=\"$NOAMX\""
fi
echo "building $PIN (llama.cpp from source; ${CMAKE_BUILD_PARALLEL_LEVEL:-2} jobs)"
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
  "$PY" -m pip install -q --disable-pip-version-check --no-cache-dir "${reinstall[@]}" "$PIN"
if [ "${#reinstall[@]}" -gt 0 ]; then  # --no-deps above: the server extras are still needed
  "$PY" -m pip install -q --disable-pip-version-check "$PIN"
fi
"$PY" -c "$check"
