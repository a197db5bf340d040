"""Aggregate a sweep: ``dicebert-compare logs/<task>/multiruns/<time> [more folders]``.

Writes summary.csv (one row per run, failed and missing included), cells.csv, differences.csv,
report.md and PNG plots into the (first) sweep folder, or ``--out``. The code lives in
:mod:`dicebert.sweeps` so the notebook and the sweep callback use the same functions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dicebert.cli import report_error
from dicebert.errors import DicebertError
from dicebert.sweeps.report import compare_sweep, status_counts


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when at least one run finished, 1 when none did, 2 on a bad folder or option."""
    parser = argparse.ArgumentParser(
        prog="dicebert-compare",
        description="Aggregate a Hydra sweep (one or more multirun folders) into summary.csv, report.md "
        "and plots.",
    )
    parser.add_argument("folders", nargs="+", help="multirun folder(s): logs/<task>/multiruns/<time>")
    parser.add_argument("--out", default=None, help="where to write (default: the first folder)")
    parser.add_argument("--baseline", default=None, help="method to compare against (default: ce / none)")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="only these methods, in this order (names as report.md prints them); Holm's family is these",
    )
    args = parser.parse_args(argv)
    try:
        sweep = compare_sweep(*args.folders, out=args.out, baseline=args.baseline, methods=args.methods)
    except DicebertError as err:
        return report_error(err)
    target = Path(args.out) if args.out else sweep.folders[0]
    print(f"{status_counts(sweep)}; report: {target / 'report.md'}")
    return 0 if (sweep.runs["status"] == "ok").any() else 1


if __name__ == "__main__":
    sys.exit(main())
