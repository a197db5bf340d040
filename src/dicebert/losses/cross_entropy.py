"""Cross-entropy, the baseline every other loss is compared against."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor
from torch.nn import functional as F

from dicebert.errors import ConfigError
from dicebert.losses import register
from dicebert.losses.base import ClassificationLoss


@register("ce")
class CrossEntropyLoss(ClassificationLoss):
    """Mean softmax cross-entropy, with optional label smoothing."""

    def __init__(self, class_counts: Sequence[int] | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__(class_counts)
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1); got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits, targets.long(), label_smoothing=self.label_smoothing)
