"""Issue 6's GPU benchmark: bert-base at length 128, largest batch, samples/s and MFU, eager vs compile.

    PYTHONPATH=src python3 scripts/gpu_benchmark.py --out gpu_benchmark.json
    PYTHONPATH=src python3 scripts/gpu_benchmark.py --device cpu --tiny --max-batch 8   # logic check

Needs only torch and transformers (no Hydra, no network): the bert-base weights are random.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # runs without installing

from dicebert.benchmark.gpu import main

if __name__ == "__main__":
    raise SystemExit(main())
