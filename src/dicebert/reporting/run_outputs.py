"""What one run leaves behind: flat metrics.json, label map, confusion matrix PNG, a printed table.

Files are written atomically (temp file + rename) so a killed run never leaves a half-written
result that a sweep report would pick up as real.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dicebert.atomic import atomic_path


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
        raise FloatingPointError(f"non-finite metrics {bad}: refusing to write them as a result")
    return record


def plot_confusion_matrix(
    matrix: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    title: str = "Test confusion matrix",
) -> Path:
    """Counts with row-normalised colour (recall per true class), so the tail is readable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.1 * n + 2.5, 1.0 * n + 2))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(int(matrix[i, j])),
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=9,
            )
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def results_table(
    record: Mapping[str, float], class_names: Sequence[str], title: str = "Test results"
) -> str:
    """A plain-text table: overall metrics, then F1/recall/training count per class."""
    lines = [title]
    overall = ["macro_f1", "accuracy", "balanced_accuracy", "mcc", "ece"]
    lines.append("  ".join(f"{k}={record[f'test/{k}']:.4f}" for k in overall if f"test/{k}" in record))
    width = max(len("class"), *(len(c) for c in class_names))
    lines.append(f"{'class':<{width}}  {'F1':>6}  {'recall':>6}  {'train n':>7}")
    for name in class_names:
        f1 = record.get(f"test/f1/{name}", float("nan"))
        recall = record.get(f"test/recall/{name}", float("nan"))
        count = record.get(f"train/count/{name}", float("nan"))
        lines.append(f"{name:<{width}}  {f1:6.4f}  {recall:6.4f}  {count:7.0f}")
    return "\n".join(lines)
