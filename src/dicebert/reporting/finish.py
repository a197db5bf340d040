"""Finish a run, fine-tuned or baseline, through one path: the record, its files, the dashboards.

:func:`finish_run` asks every diagnostic (a callback with a ``metrics_record(run)`` method, listed
in ``conf/callbacks/``) for its keys, builds the flat ``metrics.json`` record around the test
metrics, and writes the confusion matrix, ``metrics.json`` (last: its presence means the run
finished), the results table and the per-class dashboards. A run without diagnostics
(``callbacks=minimal``) gets the core record: test metrics, best val macro-F1, training counts,
the prior the model was trained on when a sampler changed it, and timings.

Above :mod:`dicebert.reporting.run_outputs` (files and figures) and
:mod:`dicebert.reporting.dashboards` (loggers), which do not import each other's callers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from lightning.pytorch.utilities import rank_zero_only

from dicebert.reporting.dashboards import log_run_outputs
from dicebert.reporting.run_outputs import (
    build_metrics_record,
    plot_confusion_matrix,
    results_table,
    write_json,
)

log = logging.getLogger("dicebert")


@dataclass
class FinishedRun:
    """A tested run, as its diagnostics see it when they add their keys to ``metrics.json``."""

    output_dir: Path
    #: The set-up DataModule: class names and counts, the splits' loaders.
    datamodule: Any
    #: Test confusion matrix, rows true classes.
    confusion: np.ndarray
    #: The class distribution the model was trained on, when a sampler made it differ from the counts.
    prior_counts: Sequence[float] | None = None
    #: The Lightning Trainer and the tested LightningModule; None for a baseline (no Lightning fit).
    trainer: Any = None
    module: Any = None
    #: ``{"val"|"test": (logits [N, C], labels [N])}`` when the run has them without a forward pass.
    logits: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def class_names(self) -> list[str]:
        return [str(n) for n in self.datamodule.class_names]

    @property
    def class_counts(self) -> list[int]:
        return list(self.datamodule.class_counts)

    @property
    def prior(self) -> list[float]:
        """What post-hoc adjustment divides out: the sampled prior, else the training counts."""
        return [float(c) for c in (self.prior_counts or self.class_counts)]

    @property
    def single_process(self) -> bool:
        """Whether this process sees every test example (not one DDP rank's shard)."""
        return self.trainer is None or self.trainer.world_size == 1


@runtime_checkable
class Diagnostic(Protocol):
    """A callback that adds its own keys to ``metrics.json`` when the run finishes."""

    def metrics_record(self, run: FinishedRun) -> Mapping[str, float]: ...


def is_rank_zero() -> bool:
    """The process that writes a run's files (the only one outside DDP)."""
    return getattr(rank_zero_only, "rank", 0) == 0


def write_run_header(output_dir: str | os.PathLike[str], datamodule: Any) -> None:
    """``label_map.json`` and ``data_summary.json``, before training: a checkpoint's labels are on disk."""
    if is_rank_zero():
        write_json(Path(output_dir) / "label_map.json", dict(enumerate(map(str, datamodule.class_names))))
        write_json(Path(output_dir) / "data_summary.json", datamodule.summary)


def finish_run(
    run: FinishedRun,
    test_metrics: Mapping[str, Any],
    best_val_macro_f1: float | None,
    callbacks: Iterable[Any],
    loggers: Sequence[Any],
    started: float,
    fit_seconds: float,
    title: str = "Test results",
) -> dict[str, float]:
    """Collect the diagnostics' keys, build the record, write the run's files; return the record."""
    extra: dict[str, float] = {}
    for callback in callbacks:
        if isinstance(callback, Diagnostic):
            extra.update(callback.metrics_record(run))
    names = run.class_names
    if run.prior_counts is not None:
        prior = zip(names, run.prior_counts, strict=True)
        extra.update({f"train/prior_count/{c}": float(n) for c, n in prior})
    extra.update({"time/fit_seconds": fit_seconds, "time/total_seconds": time.perf_counter() - started})
    record = build_metrics_record(test_metrics, best_val_macro_f1, names, run.class_counts, extra=extra)
    if is_rank_zero():
        if run.trainer is None:  # no Lightning loop logged the scalars: the loggers get the record
            for logger in loggers:
                logger.log_metrics(record)
                logger.save()
        write_test_outputs(run.output_dir, record, names, run.confusion, loggers, title)
    return record


def write_test_outputs(
    output_dir: str | os.PathLike[str],
    record: Mapping[str, float],
    class_names: Sequence[str],
    confusion: np.ndarray,
    loggers: Sequence[Any] = (),
    title: str = "Test results",
) -> None:
    """The files of a finished run, ``metrics.json`` last: its presence means the run finished."""
    output_dir = Path(output_dir)
    names = [str(n) for n in class_names]
    plot_confusion_matrix(confusion, names, output_dir / "confusion_matrix.png")
    write_json(output_dir / "confusion_matrix.json", {"class_names": names, "matrix": confusion.tolist()})
    write_json(output_dir / "metrics.json", record)
    log.info("\n%s\nrun folder: %s", results_table(record, names, title=title), output_dir)
    log_run_outputs(loggers, record, names, confusion, output_dir)
