#!/usr/bin/env bash
# Install rai-multi and its test dependencies into the current Python, CPU-only.
# torch is pinned first to the local CPU wheel so that no CUDA packages are pulled in.
# Idempotent: a second run only checks that everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -m pip install -q --disable-pip-version-check "torch==2.13.0"
"$PY" -m pip install -q --disable-pip-version-check -e ".[test]"
