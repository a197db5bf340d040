"""GPU benchmark: bert-base-sized model at length 128, largest batch, samples/s and MFU, eager vs compile.

    python scripts/gpu_benchmark.py --out gpu_benchmark.json
    python scripts/gpu_benchmark.py --device cpu --tiny --max-batch 8     # logic check without a GPU

Builds the product's ClassifierModule from conf/ (random weights: nothing is downloaded); the
logic lives in benchmarks/gpu.py (run from a checkout, with the project installed).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ lives beside scripts/

from benchmarks.gpu import main

if __name__ == "__main__":
    raise SystemExit(main())
