"""Issue 6's CPU benchmark: the project against the write-up's loop, side by side, in one run.

    python scripts/benchmark.py --out benchmark.json          # all items, < 5 min on 2 cores
    python scripts/benchmark.py --sections overhead,loss       # a subset
    python scripts/benchmark.py --tiny                         # smoke test: tiny model, seconds

The logic lives in dicebert.benchmark; docs/benchmark.md explains each item.
"""

from __future__ import annotations

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # what train.py runs with

from dicebert.benchmark.runner import main

if __name__ == "__main__":
    raise SystemExit(main())
