"""CPU benchmark: the project against the transformers Trainer, bf16, fixed cost, memory, sweep throughput.

    python scripts/benchmark.py --out benchmark.json          # all sections, < 10 min on 2 cores
    python scripts/benchmark.py --sections trainer,startup     # a subset
    python scripts/benchmark.py --default-run                  # also time a full default run (1.5-4 min)
    python scripts/benchmark.py --tiny                         # smoke test: tiny model, about a minute

The logic lives in benchmarks/ (a top-level folder, not part of the installed package: run from
a checkout); docs/benchmark.md explains each section. The Trainer section needs `accelerate`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # what train.py runs with
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ lives beside scripts/

from benchmarks.cpu import main

if __name__ == "__main__":
    raise SystemExit(main())
