"""Per-class results on the dashboards, not only scalars: W&B tables/plots, TensorBoard figures.

Lightning logs the scalar metrics. What a reader of an imbalanced-data dashboard needs beyond
them (which class fails, what it is confused with, how many training examples it had) is logged
here once per run, after the run's files are written. The files on disk are the record: a
dashboard that cannot take these (offline quota, a logger without media) only gets a warning.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dicebert.reporting.run_outputs import confusion_figure, results_table

log = logging.getLogger(__name__)


def per_class_rows(record: Mapping[str, float], class_names: Sequence[str]) -> list[list[Any]]:
    """``[class, training count, test F1, test recall]`` per class, from the flat metrics record."""
    return [
        [
            name,
            int(record.get(f"train/count/{name}", 0)),
            float(record.get(f"test/f1/{name}", float("nan"))),
            float(record.get(f"test/recall/{name}", float("nan"))),
        ]
        for name in class_names
    ]


PER_CLASS_COLUMNS: list[str | int] = ["class", "train_count", "test_f1", "test_recall"]


def per_class_figure(record: Mapping[str, float], class_names: Sequence[str]) -> Any:
    """Bars of test F1 and recall per class, with the training count under each class name."""
    from matplotlib.figure import Figure

    rows = per_class_rows(record, class_names)
    x = np.arange(len(rows))
    fig = Figure(figsize=(1.0 * len(rows) + 2.5, 3.6))
    ax = fig.subplots()
    ax.bar(x - 0.2, [r[2] for r in rows], width=0.4, label="F1")
    ax.bar(x + 0.2, [r[3] for r in rows], width=0.4, label="recall")
    ax.set_xticks(x, [f"{r[0]}\n(n={r[1]})" for r in rows], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test")
    ax.set_title("Per-class test F1 and recall (n = training examples)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _confusion_pairs(matrix: np.ndarray) -> tuple[list[int], list[int]]:
    """Counts → (true, predicted) id lists: what ``wandb.plot.confusion_matrix`` takes."""
    y_true, y_pred = [], []
    for i, row in enumerate(np.asarray(matrix, dtype=int)):
        for j, count in enumerate(row):
            y_true += [i] * int(count)
            y_pred += [j] * int(count)
    return y_true, y_pred


def _log_wandb(
    logger: Any, record: Mapping[str, float], class_names: Sequence[str], matrix: np.ndarray, output_dir: Path
) -> None:
    import wandb

    run = logger.experiment
    table = wandb.Table(columns=PER_CLASS_COLUMNS, data=per_class_rows(record, class_names))
    y_true, y_pred = _confusion_pairs(matrix)
    payload: dict[str, Any] = {
        "test/per_class": table,
        "test/f1_per_class": wandb.plot.bar(table, "class", "test_f1", title="test F1 per class"),
        "test/recall_per_class": wandb.plot.bar(table, "class", "test_recall", title="test recall per class"),
        "train/class_counts": wandb.plot.bar(table, "class", "train_count", title="training examples"),
        "test/confusion_matrix": wandb.plot.confusion_matrix(
            y_true=y_true, preds=y_pred, class_names=list(class_names), title="test confusion matrix"
        ),
    }
    png = output_dir / "confusion_matrix.png"
    if png.is_file():
        payload["test/confusion_matrix_image"] = wandb.Image(str(png))
    run.log(payload)
    for key in ("test/macro_f1", "test/balanced_accuracy", "test/mcc", "test/ece", "val/best_macro_f1"):
        if key in record:
            run.summary[key] = record[key]


def _log_tensorboard(
    writer: Any, record: Mapping[str, float], class_names: Sequence[str], matrix: np.ndarray, output_dir: Path
) -> None:
    # Figure objects, not pyplot: nothing to close (close=False), no backend switched.
    writer.add_figure("test/per_class", per_class_figure(record, class_names), close=False)
    writer.add_figure("test/confusion_matrix", confusion_figure(matrix, class_names), close=False)
    table = results_table(record, class_names)
    writer.add_text("test/results", "    " + table.replace("\n", "\n    "))  # Markdown code block
    writer.flush()


def log_run_outputs(
    loggers: Iterable[Any],
    record: Mapping[str, float],
    class_names: Sequence[str],
    confusion: np.ndarray,
    output_dir: str | os.PathLike[str],
) -> None:
    """Log per-class F1/recall, class counts and the confusion matrix to every logger that shows them.

    W&B: a table, bar charts and its interactive confusion matrix, then the run is closed so that
    the next job of an in-process sweep starts its own run. TensorBoard: figures and a text table.
    CSV: nothing more; ``metrics.json`` and ``confusion_matrix.json`` beside it are the files.
    """
    from lightning.pytorch.loggers import WandbLogger

    output_dir = Path(output_dir)
    names = [str(n) for n in class_names]
    for logger in loggers:
        try:
            if isinstance(logger, WandbLogger):
                _log_wandb(logger, record, names, confusion, output_dir)
            elif hasattr(getattr(logger, "experiment", None), "add_figure"):
                _log_tensorboard(logger.experiment, record, names, confusion, output_dir)
        except Exception as err:  # the run's files are written; a dashboard is extra
            log.warning("could not log the per-class results to %s: %s", type(logger).__name__, err)
    finish_wandb(exit_code=0)


def finish_wandb(exit_code: int = 0) -> None:
    """Close the current W&B run, if any: Lightning never does, and the next logger would reuse it."""
    wandb = sys.modules.get("wandb")  # not imported: no W&B logger ran, nothing to close
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=exit_code)
