#!/usr/bin/env bash
# The GPU figures in one command, on a machine with one NVIDIA GPU (from the checkout, project installed):
#   bash scripts/gpu_results.sh docs/results/gpu_<card>
# 1. the machine (nvidia-smi) and scripts/gpu_benchmark.py: bert-base-sized samples/s and MFU, eager vs
#    torch.compile (gpu_benchmark.json);
# 2. the rho = 100 recipe grid on that GPU: 12 recipes x 10 rotated seeds (120 runs), seed-major so an
#    interrupted grid stays balanced; rerunning the script resumes it (sweep_resume=true skips finished
#    runs, resumes interrupted ones);
# 3. its report (summary.csv, report.md) and runs/hour (rho100_grid.json) in the same folder.
# GRID_DIR=<folder> puts the run folders elsewhere (default: <out>/grid; a finished MiniLM run keeps 90 MB, see docs/cluster.md).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash scripts/gpu_results.sh <output folder, e.g. docs/results/gpu_h100>}
grid=${GRID_DIR:-$out/grid}
mkdir -p "$out" "$grid"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/machine.csv"
python scripts/gpu_benchmark.py --out "$out/gpu_benchmark.json"

for seed in 0 1 2 3 4 5 6 7 8 9; do
  resume=()
  [ -f "$grid/seed$seed/multirun.yaml" ] && resume=(sweep_resume=true)
  python train.py -m experiment=recipes_rho100 trainer=gpu data.imbalance_ratio=100 seed="$seed" \
    logger=csv hydra.sweep.dir="$grid/seed$seed" "${resume[@]}"
done

python scripts/compare_runs.py "$grid"/seed* --out "$out"
python scripts/benchmark.py --sections rho100_grid --rho100-sweep "$grid"/seed* --out "$out/rho100_grid.json"
