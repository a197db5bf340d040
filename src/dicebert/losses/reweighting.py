"""Losses that re-weight samples by their class's training frequency (weighted CE, class-balanced).

Convention shared with ``focal`` and ``ldam``: by default the loss is the plain batch mean of
``w_{y_i}·ℓ_i`` (``weight_norm=batch_mean``); ``weight_norm=weight_sum`` is PyTorch's
``Σ w ℓ / Σ w``, the DRW reference's (:func:`~dicebert.losses.base.weighted_mean`).
``drw_start`` defers the weights (DRW, Cao et al. 2019): the
loss is unweighted until that epoch or fraction of training.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from torch import Tensor
from torch.nn import functional as F

from dicebert.errors import ConfigError
from dicebert.losses import register
from dicebert.losses.base import (
    ClassificationLoss,
    check_weight_norm,
    class_weights,
    one_hot,
    weighted_mean,
)
from dicebert.losses.focal import focal_per_sample

log = logging.getLogger("dicebert")


@register("weighted_ce")
class WeightedCELoss(ClassificationLoss):
    """``mean_i w_{y_i} · CE_i`` with ``w`` from the training counts (``inverse`` | ``sqrt`` |
    ``effective_number``), normalised to sum to C."""

    needs_class_counts = True
    weight: Tensor  # buffer [C]

    def __init__(
        self,
        class_counts: Sequence[int] | None = None,
        weighting: str = "inverse",
        beta: float = 0.999,
        drw_start: int | float | None = None,
        weight_norm: str = "batch_mean",
    ) -> None:
        super().__init__(class_counts)
        self.init_drw(drw_start)
        self.weight_norm = check_weight_norm(weight_norm)
        self.weighting = weighting
        self.register_buffer("weight", class_weights(self.counts, weighting, beta), persistent=False)

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        targets = targets.long()
        ce = F.cross_entropy(logits, targets, reduction="none")
        if not self.weights_active:
            return ce.mean()
        return weighted_mean(ce, self.weight.to(ce)[targets], self.weight_norm)


CB_BASES = ("ce", "focal", "sigmoid")
#: class_balanced warns when its weights are this close (max relative difference) to 1/n_c.
NEAR_INVERSE = 0.2


@register("class_balanced")
class ClassBalancedLoss(ClassificationLoss):
    """Cui et al. 2019: ``mean_i (1−β)/(1−β^{n_{y_i}}) · ℓ_i`` (weights normalised to sum to C).

    ``base``: ``ce`` (softmax CE), ``focal`` (the project's softmax focal, ``gamma``) or
    ``sigmoid`` (one-vs-rest BCE summed over classes, the paper's sigmoid variant). The paper's
    focal variant is sigmoid-based; softmax is used here so that ``focal`` means one thing project-wide.
    """

    needs_class_counts = True
    weight: Tensor  # buffer [C]

    def __init__(
        self,
        class_counts: Sequence[int] | None = None,
        base: str = "focal",
        beta: float = 0.999,
        gamma: float = 2.0,
        drw_start: int | float | None = None,
        weight_norm: str = "batch_mean",
    ) -> None:
        super().__init__(class_counts)
        self.init_drw(drw_start)
        self.weight_norm = check_weight_norm(weight_norm)
        if base not in CB_BASES:
            raise ConfigError(f"unknown class_balanced base {base!r}; choose one of {', '.join(CB_BASES)}")
        if gamma < 0:
            raise ConfigError(f"focal gamma must be >= 0; got {gamma}")
        self.base = base
        self.gamma = gamma
        self.register_buffer("weight", class_weights(self.counts, "effective_number", beta), persistent=False)
        inverse = class_weights(self.counts, "inverse")
        deviation = float(((self.weight - inverse).abs() / inverse).max())
        if deviation < NEAR_INVERSE:
            log.warning(
                "class_balanced: at these class counts beta=%s gives weights within %.0f%% of inverse "
                "frequency, so it is nearly weighted_ce (inverse) on the %s base; lower loss.beta "
                "for a different weighting",
                beta,
                100 * deviation,
                base,
            )

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        targets = targets.long()
        if self.base == "ce":
            loss = F.cross_entropy(logits, targets, reduction="none")
        elif self.base == "focal":
            loss = focal_per_sample(logits, targets, self.gamma)
        else:
            y = one_hot(targets, logits.shape[1], logits.dtype)
            loss = F.binary_cross_entropy_with_logits(logits, y, reduction="none").sum(dim=1)
        if not self.weights_active:
            return loss.mean()
        return weighted_mean(loss, self.weight.to(loss)[targets], self.weight_norm)
