"""Finish a run: its files (confusion matrix, ``metrics.json`` last), the results table, the dashboards.

Above :mod:`dicebert.reporting.run_outputs` (files and figures) and
:mod:`dicebert.reporting.dashboards` (loggers), which do not import each other's callers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dicebert.reporting.dashboards import log_run_outputs
from dicebert.reporting.run_outputs import plot_confusion_matrix, results_table, write_json

log = logging.getLogger("dicebert")


def write_test_outputs(
    output_dir: str | os.PathLike[str],
    record: Mapping[str, float],
    class_names: Sequence[str],
    confusion: np.ndarray,
    loggers: Sequence[Any] = (),
) -> None:
    """The files of a finished run, ``metrics.json`` last: its presence means the run finished."""
    output_dir = Path(output_dir)
    names = [str(n) for n in class_names]
    plot_confusion_matrix(confusion, names, output_dir / "confusion_matrix.png")
    write_json(output_dir / "confusion_matrix.json", {"class_names": names, "matrix": confusion.tolist()})
    write_json(output_dir / "metrics.json", record)
    log.info("\n%s\nrun folder: %s", results_table(record, names), output_dir)
    log_run_outputs(loggers, record, names, confusion, output_dir)
