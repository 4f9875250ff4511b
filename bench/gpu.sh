#!/usr/bin/env bash
# Training speed of ResNeXt-50 at 576x192 with mixed precision on a CUDA GPU,
# for a machine that has PyTorch 2.11 but no Rust toolchain.
#
# Build here with scripts/setup.sh, copy the binary next to this script
# (bench/bin/flukeid), carry both to the GPU machine and run:
#     bash bench/gpu.sh [STEPS]
# It prints images/s, the loader's share of waiting, and peak GPU memory.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${FLUKEID_BIN:-$here/bin/flukeid}"
steps="${1:-300}"
out="${OUT:-$(mktemp -d)}"

torch_lib="$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$torch_lib:${LD_LIBRARY_PATH:-}"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv

mem_log="$out/gpu_memory.txt"
( while true; do
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits >> "$mem_log"
    sleep 0.5
  done ) &
sampler=$!
trap 'kill $sampler 2>/dev/null || true' EXIT

"$bin" synth --out "$out/data" --individuals 300 --seed 1
"$bin" bench-train --data "$out/data" --backbone resnext50 --device cuda \
    --batch-size 16 --warmup 10 --steps "$steps" | tee "$out/bench.md"
"$bin" bench-train --data "$out/data" --backbone resnext50 --device cuda \
    --batch-size 16 --warmup 10 --steps 50 --no-mixed-precision | tee -a "$out/bench.md"

kill $sampler 2>/dev/null || true
echo "peak GPU memory (MiB): $(sort -n "$mem_log" | tail -1)"
