"""Evaluation metrics (torchmetrics), named by class so reports never show bare class ids.

One F1 definition for every path (training's torchmetrics, post-hoc, cRT, health, baselines,
sweep statistics): per-class F1 = 2·tp / (2·tp + fp + fn), 0 where that is 0/0; macro-F1 is the
mean over the classes that occur in the labels or the predictions. A class that is neither in the
evaluated split nor predicted has no F1 and leaves the mean (torchmetrics' rule); a class
predicted but absent scores 0, and so does one present but never predicted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix
from torchmetrics import ClasswiseWrapper, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCalibrationError,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassMatthewsCorrCoef,
    MulticlassRecall,
)


def build_metrics(class_names: Sequence[str], prefix: str) -> MetricCollection:
    """Scalar metrics of one stage: ``<prefix>macro_f1``, ``<prefix>f1/<class>``, ...

    Balanced accuracy is macro recall. ECE is computed on softmax probabilities of the logits.
    """
    c = len(class_names)
    names = [str(n) for n in class_names]
    return MetricCollection(
        {
            "accuracy": MulticlassAccuracy(c, average="micro"),
            "macro_f1": MulticlassF1Score(c, average="macro"),
            "balanced_accuracy": MulticlassRecall(c, average="macro"),
            "mcc": MulticlassMatthewsCorrCoef(c),
            "ece": MulticlassCalibrationError(c, n_bins=15, norm="l1"),
            "f1": ClasswiseWrapper(MulticlassF1Score(c, average=None), labels=names, prefix="f1/"),
            "recall": ClasswiseWrapper(MulticlassRecall(c, average=None), labels=names, prefix="recall/"),
        },
        prefix=prefix,
        compute_groups=False,
    )


def build_confusion_matrix(num_classes: int) -> MulticlassConfusionMatrix:
    return MulticlassConfusionMatrix(num_classes)


def f1_from_counts(
    tp: np.ndarray, support: np.ndarray, predicted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class F1 (0 where undefined) and the mask of classes that count in the macro mean.

    Arrays ``[..., C]`` (any leading batch shape: the calibration simulation scores thousands of
    runs at once). Kept by hand, a few lines of numpy, because the sweep statistics and health
    checks score saved counts, not tensors.
    """
    tp, denom = np.asarray(tp, dtype=float), np.asarray(support, dtype=float) + predicted  # 2·tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return f1, denom > 0


def macro_f1_from_counts(tp: np.ndarray, support: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Macro-F1 over the last axis under the project's one definition (module docstring)."""
    f1, scored = f1_from_counts(tp, support, predicted)
    return np.divide((f1 * scored).sum(-1), scored.sum(-1), out=np.zeros(f1.shape[:-1]), where=scored.any(-1))


def macro_f1_from_confusion(confusion: np.ndarray) -> float:
    """Macro-F1 under the project's one definition (module docstring)."""
    confusion = np.asarray(confusion, dtype=float)
    return float(macro_f1_from_counts(np.diag(confusion), confusion.sum(1), confusion.sum(0)))


def macro_f1(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
    """Macro-F1 of integer predictions, the same number torchmetrics' macro F1 gives in training."""
    return macro_f1_from_confusion(confusion_matrix(labels, predictions, labels=range(num_classes)))
