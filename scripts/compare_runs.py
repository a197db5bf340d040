"""Aggregate a sweep: ``python scripts/compare_runs.py logs/<task>/multiruns/<time> [more folders]``.

Writes summary.csv (one row per run, failed and missing included), cells.csv, differences.csv,
report.md and PNG plots into the (first) sweep folder, or ``--out``. The code lives in
:mod:`dicebert.reporting.compare` so the notebook and the sweep callback use the same functions.
"""

from __future__ import annotations

import sys

from dicebert.reporting.compare import main

if __name__ == "__main__":
    sys.exit(main())
