"""Evaluation metrics (torchmetrics), named by class so reports never show bare class ids."""

from __future__ import annotations

from collections.abc import Sequence

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
