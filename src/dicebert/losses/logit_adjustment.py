"""Losses that move the logits by class priors during training only: LDAM, logit adjustment,
balanced softmax. Predictions use the raw logits (argmax z), which is what makes them work."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from dicebert.losses import register
from dicebert.losses.base import ClassificationLoss, class_weights, one_hot


@register("ldam")
class LDAMLoss(ClassificationLoss):
    """Cao et al. 2019: ``CE(s·(z − Δ_y·e_y))`` with margins ``Δ_j ∝ n_j^−¼``, ``max Δ = max_margin``.

    ``scale`` s = 30 assumes normalised logits (cosine head, z ∈ [−1, 1]); on raw linear logits use
    s ≈ 1. Deferred re-weighting (DRW): from epoch ``drw_epoch`` (0-based, as Lightning's
    ``current_epoch``) on, each sample is weighted by effective-number weights (β = ``beta``),
    switched by :meth:`set_epoch`; ``drw_epoch=None`` never re-weights.
    """

    needs_class_counts = True

    def __init__(
        self,
        class_counts: Sequence[int] | None = None,
        max_margin: float = 0.5,
        scale: float = 30.0,
        drw_epoch: int | None = None,
        beta: float = 0.999,
    ) -> None:
        super().__init__(class_counts)
        if max_margin < 0 or scale <= 0:
            raise ValueError(f"need max_margin >= 0 and scale > 0; got {max_margin}, {scale}")
        margins = self.class_counts.pow(-0.25)
        self.register_buffer("margins", margins * (max_margin / margins.max()), persistent=False)
        self.register_buffer(
            "drw_weight", class_weights(self.class_counts, "effective_number", beta), persistent=False
        )
        self.scale = scale
        self.drw_epoch = drw_epoch
        self.reweight = False

    def set_epoch(self, epoch: int) -> None:
        """Switch the deferred re-weighting on from ``drw_epoch``."""
        self.reweight = self.drw_epoch is not None and epoch >= self.drw_epoch

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        targets = targets.long()
        shifted = logits - one_hot(targets, logits.shape[1], logits.dtype) * self.margins.to(logits)
        loss = F.cross_entropy(self.scale * shifted, targets, reduction="none")
        if self.reweight:
            loss = self.drw_weight.to(loss)[targets] * loss
        return loss.mean()


@register("logit_adjusted")
class LogitAdjustedLoss(ClassificationLoss):
    """Menon et al. 2021: ``CE(z + τ·log π)``, π the training class prior; predict with raw z."""

    needs_class_counts = True

    def __init__(self, class_counts: Sequence[int] | None = None, tau: float = 1.0) -> None:
        super().__init__(class_counts)
        self.register_buffer(
            "offset", tau * torch.log(self.class_counts / self.class_counts.sum()), persistent=False
        )

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits + self.offset.to(logits), targets.long())


@register("balanced_softmax")
class BalancedSoftmaxLoss(ClassificationLoss):
    """Ren et al. 2020: ``CE(z + log n_c)``; equal to ``logit_adjusted`` with τ = 1 (CE ignores
    the constant ``log N``), kept under its paper's name."""

    needs_class_counts = True

    def __init__(self, class_counts: Sequence[int] | None = None) -> None:
        super().__init__(class_counts)
        self.register_buffer("offset", torch.log(self.class_counts), persistent=False)

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits + self.offset.to(logits), targets.long())
