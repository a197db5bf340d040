"""What one run leaves behind: flat metrics.json, label map, confusion matrix PNG, a printed table.

Figures are drawn on :class:`matplotlib.figure.Figure` objects, not through pyplot, so no backend
is switched (a notebook keeps its own) and nothing needs closing.

Files are written atomically (temp file + rename) so a killed run never leaves a half-written
result that a sweep report would pick up as real.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dicebert.atomic import atomic_path
from dicebert.errors import NonFiniteMetricsError
from dicebert.reporting.tables import fmt, markdown_table

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger("dicebert")


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Atomically write ``data`` as pretty JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_plain) + "\n")
    return path


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_float_dict(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {str(k): float(v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}


def build_metrics_record(
    test_metrics: Mapping[str, Any],
    best_val_macro_f1: float | None,
    class_names: Sequence[str],
    class_counts: Sequence[int],
    extra: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """The flat ``metrics.json`` record: ``test/...`` metrics, best val macro-F1, training counts."""
    record = to_float_dict(test_metrics)
    if best_val_macro_f1 is not None:
        record["val/best_macro_f1"] = float(best_val_macro_f1)
    for name, count in zip(class_names, class_counts, strict=True):
        record[f"train/count/{name}"] = float(count)
    record.update(extra or {})
    bad = [k for k, v in record.items() if not math.isfinite(v)]
    if bad:
        raise NonFiniteMetricsError(
            f"non-finite metrics {', '.join(bad)}: refusing to write them as a result; "
            "the model diverged: lower model.optimizer.lr or check the loss options"
        )
    return record


def draw_confusion(ax: Axes, matrix: np.ndarray, fontsize: float = 9, annotate: bool = True) -> None:
    """Counts with row-normalised colour (recall per true class), so the tail is readable.

    The one confusion renderer: the run's figure, TensorBoard and the sweep grid all draw with it.
    """
    matrix = np.asarray(matrix, dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if annotate:
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                color = "white" if norm[i, j] > 0.5 else "black"
                ax.text(
                    j, i, str(int(matrix[i, j])), ha="center", va="center", color=color, fontsize=fontsize
                )


def confusion_figure(
    matrix: np.ndarray, class_names: Sequence[str], title: str = "Test confusion matrix"
) -> Figure:
    """One run's confusion matrix with class names on both axes."""
    from matplotlib.figure import Figure

    n = len(class_names)
    fig = Figure(figsize=(1.1 * n + 2.5, 1.0 * n + 2))
    ax = fig.subplots()
    draw_confusion(ax, matrix)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Write a figure atomically (a sweep report never picks up half a PNG)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return path


def plot_confusion_matrix(
    matrix: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    title: str = "Test confusion matrix",
) -> Path:
    """Save :func:`confusion_figure` as a PNG."""
    return save_figure(confusion_figure(matrix, class_names, title), path)


def results_table(
    record: Mapping[str, float], class_names: Sequence[str], title: str = "Test results"
) -> str:
    """The title, the overall metrics on one line, then F1/recall/training count per class (Markdown)."""
    overall = ["macro_f1", "accuracy", "balanced_accuracy", "mcc", "ece"]
    summary = "  ".join(f"{k}={record[f'test/{k}']:.4f}" for k in overall if f"test/{k}" in record)
    rows = [
        [
            name,
            fmt(record.get(f"test/f1/{name}", math.nan), 4),
            fmt(record.get(f"test/recall/{name}", math.nan), 4),
            fmt(record.get(f"train/count/{name}", math.nan), 0),
        ]
        for name in class_names
    ]
    return "\n".join([title, summary, markdown_table(["class", "F1", "recall", "train n"], rows)])
