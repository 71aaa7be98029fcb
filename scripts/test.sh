#!/usr/bin/env bash
# The test command (README): install, then run the whole suite against the real benchmark
# files in $RAI_MULTI_DATA (default: ../shared/data beside the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
if [ -z "${RAI_MULTI_DATA:-}" ] && [ -d ../shared/data ]; then
  RAI_MULTI_DATA="$(cd ../shared/data && pwd)"
  export RAI_MULTI_DATA
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "${PYTHON:-python3}" -m pytest -q "$@"
