"""Losses that move the logits by class priors during training only: LDAM, logit adjustment and
its alias balanced softmax. Predictions use the raw logits (argmax z), which is what makes them work."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from dicebert.errors import ConfigError
from dicebert.losses import register, register_alias
from dicebert.losses.base import (
    ClassificationLoss,
    check_weight_norm,
    class_weights,
    one_hot,
    weighted_mean,
)


@register("ldam")
class LDAMLoss(ClassificationLoss):
    """Cao et al. 2019: ``CE(s·(cos − Δ_y·e_y))``, margins ``Δ_j ∝ n_j^−¼``, ``max Δ = max_margin``.

    The scale s lives in the model: the cosine head (``model.net.head=cosine``) outputs
    ``z = s·cos``, so probabilities, predictions and calibration come from the same logits the
    loss sees (with s only inside the loss, test probabilities were a softmax of values in
    [−1, 1], capped at 0.65 for 5 classes). The loss therefore computes ``CE(z − s·Δ_y·e_y)``,
    identical to the paper's formula; ``scale`` must equal the head's (the LightningModule checks).
    Deferred re-weighting (DRW): from ``drw_start`` (an epoch, or a fraction of training) on,
    samples are weighted by effective-number weights (β = ``beta``); ``drw_start=None`` is plain
    LDAM, never re-weighted.
    """

    needs_class_counts = True
    margins: Tensor  # buffer [C], in cosine units
    drw_weight: Tensor  # buffer [C]

    def __init__(
        self,
        class_counts: Sequence[int] | None = None,
        max_margin: float = 0.5,
        scale: float = 30.0,  # the paper's s; the cosine head's default too (models.classifier)
        drw_start: int | float | None = None,
        beta: float = 0.999,
        weight_norm: str = "batch_mean",
    ) -> None:
        super().__init__(class_counts)
        if max_margin < 0 or scale <= 0:
            raise ConfigError(f"need max_margin >= 0 and scale > 0; got {max_margin}, {scale}")
        self.init_drw(drw_start, active_without_start=False)
        self.weight_norm = check_weight_norm(weight_norm)
        margins = self.counts.pow(-0.25)
        self.register_buffer("margins", margins * (max_margin / margins.max()), persistent=False)
        self.register_buffer(
            "drw_weight", class_weights(self.counts, "effective_number", beta), persistent=False
        )
        self.scale = scale

    @property
    def logit_scale(self) -> float:
        """The scale the logits must carry (the head's s); the LightningModule checks it."""
        return self.scale

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        targets = targets.long()
        margins = self.scale * self.margins.to(logits)  # Δ in cosine units, z in s·cos units
        shifted = logits - one_hot(targets, logits.shape[1], logits.dtype) * margins
        rows = F.cross_entropy(shifted, targets, reduction="none")
        if self.weights_active:
            return weighted_mean(rows, self.drw_weight.to(rows)[targets], self.weight_norm)
        return rows.mean()


@register("logit_adjusted")
class LogitAdjustedLoss(ClassificationLoss):
    """Menon et al. 2021: ``CE(z + τ·log π)``, π the training class prior; predict with raw z."""

    needs_class_counts = True
    offset: Tensor  # buffer [C]: τ·log π

    def __init__(self, class_counts: Sequence[int] | None = None, tau: float = 1.0) -> None:
        super().__init__(class_counts)
        self.tau = tau
        self.register_buffer("offset", tau * torch.log(self.counts / self.counts.sum()), persistent=False)

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits + self.offset.to(logits), targets.long())


# Ren et al. 2020's balanced softmax, CE(z + log n_c), is logit adjustment with τ = 1 (CE ignores
# the constant log N): one method under two names, so one class and an alias, not a second loss.
register_alias("balanced_softmax", "logit_adjusted", tau=1.0)
