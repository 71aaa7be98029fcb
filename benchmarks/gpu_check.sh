#!/usr/bin/env bash
# GPU check, for a machine with at least one CUDA GPU (not run on the CPU-only dev machines).
# 1. hf vs vllm greedy parity on one model (count of equal outputs on N prompts) and the
#    throughput of each (prompts/s, generated tokens/s);
# 2. rank placement: `rai-multi eval` under `torchrun --nproc_per_node 2`, each rank saying
#    which device its model is on (wants cuda:0 and cuda:1 with 2 GPUs; with one GPU the
#    second rank must fail with "cuda:1 is not visible", which is checked instead), and
#    its dtype (bf16, loaded as such);
# 3. with RAI_MULTI_DATA and 2 GPUs, one data-parallel MGSM eval under torchrun.
# Usage: bash benchmarks/gpu_check.sh [model dir or hub id] (default: a tiny Llama written here)
# Writes benchmarks/out/gpu_check/*.json and prints one summary line per check.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false
OUT=benchmarks/out/gpu_check
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv | tee "$OUT/gpus.csv"
python -c "import vllm" 2>/dev/null || pip install -q vllm || echo "warning: vllm not installable; vllm checks skipped" >&2

MODEL="${1:-}"
if [ -z "$MODEL" ]; then
  MODEL="$OUT/tiny-llama"
  python -c "from rai_multi.models.tiny import build_tiny_model; build_tiny_model('$MODEL', 'smollm2-135m')"
fi

# ---- 1. parity and throughput, hf vs vllm
python - "$MODEL" "$OUT" <<'PY'
import json, sys, time
from pathlib import Path
from rai_multi.models.spec import load_backend, parse_model
from rai_multi.records import GenerationRequest
model, out = sys.argv[1], Path(sys.argv[2])
prompts = [f"Question {i}: what is {i} plus {i + 3}? Answer:" for i in range(256)]
reqs = [GenerationRequest(p, max_new_tokens=32) for p in prompts]
ids = [str(i) for i in range(len(reqs))]
result = {"model": model, "n": len(reqs)}
outs = {}
for backend in ("hf", "vllm"):
    try:
        adapter = load_backend(parse_model(("vllm:" if backend == "vllm" else "") + model, dtype="bf16"))
    except Exception as exc:  # vllm missing or unsupported: say so, keep the hf figures
        result[backend] = {"error": str(exc).splitlines()[0]}
        continue
    adapter.generate(reqs[:8], ids[:8])  # warm-up (kernels, graphs)
    t = time.perf_counter()
    outs[backend] = adapter.generate(reqs, ids)
    took = time.perf_counter() - t
    result[backend] = {"seconds": round(took, 3), "prompts_per_s": round(len(reqs) / took, 2),
                       "description": {k: str(v) for k, v in adapter.description().items()}}
    del adapter
if len(outs) == 2:
    equal = sum(a == b for a, b in zip(outs["hf"], outs["vllm"]))
    result["greedy_equal"] = equal
    result["first_differences"] = [(p, a, b) for p, a, b in zip(prompts, outs["hf"], outs["vllm"]) if a != b][:5]
(out / "parity.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
print("parity:", {k: v for k, v in result.items() if k != "first_differences"})
PY

# ---- 2. rank placement under torchrun with 2 processes
NGPU=$(python -c "import torch; print(torch.cuda.device_count())")
cat > "$OUT/placement.py" <<'PY'
import json, os, sys
from rai_multi.models.spec import load_backend, parse_model
try:
    a = load_backend(parse_model(sys.argv[1], dtype="bf16"))
    info = {"device": str(a.model.device), "dtype": str(a.model.dtype)}
except Exception as exc:
    info = {"error": str(exc).splitlines()[0]}
info.update(local_rank=os.environ.get("LOCAL_RANK"), world=os.environ.get("WORLD_SIZE"))
open(f"{sys.argv[2]}/rank{os.environ['LOCAL_RANK']}.json", "w").write(json.dumps(info))
PY
torchrun --nproc_per_node 2 "$OUT/placement.py" "$MODEL" "$OUT" || true
python - "$OUT" "$NGPU" <<'PY'
import json, sys
out, ngpu = sys.argv[1], int(sys.argv[2])
ranks = [json.load(open(f"{out}/rank{r}.json")) for r in (0, 1)]
want = ["cuda:0", "cuda:1"] if ngpu >= 2 else ["cuda:0", "error"]
got = [r.get("device") or ("error" if "not visible" in r.get("error", "") else r.get("error")) for r in ranks]
print("placement:", "OK" if got == want else "WRONG", got, ranks)
PY

# ---- 3. one data-parallel eval under torchrun (metrics written once, by rank 0)
if [ -n "${RAI_MULTI_DATA:-}" ] && [ "$NGPU" -ge 2 ]; then
  torchrun --nproc_per_node 2 -m rai_multi.cli.main eval mgsm --model "$MODEL" --langs en --limit 16 \
    --setting direct --shots 0 --out "$OUT/runs" --dtype bf16 | tail -3
fi
echo "gpu check done: $OUT"
