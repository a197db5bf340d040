"""Softmax focal loss (Lin et al. 2017): down-weights the easy, mostly head-class, examples."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from dicebert.losses import register
from dicebert.losses.base import ClassificationLoss, class_weights


def focal_per_sample(logits: Tensor, targets: Tensor, gamma: float) -> Tensor:
    """``−(1 − p_t)^γ log p_t`` per sample (``[N]``), without class weights."""
    log_pt = F.log_softmax(logits, dim=1).gather(1, targets.long()[:, None]).squeeze(1)
    # (1 - p)^γ via expm1 stays exact when p_t → 1, where 1 - exp(log p) cancels.
    return -((-torch.expm1(log_pt)).clamp_min(0) ** gamma) * log_pt


@register("focal")
class FocalLoss(ClassificationLoss):
    """``mean_i −α_{y_i} (1 − p_{y_i})^γ log p_{y_i}`` on softmax probabilities.

    ``alpha``: None (no class weights), one weight per class (used as given), or ``"inverse"`` /
    ``"effective_number"`` (weights from the training counts, normalised to sum to C; ``beta`` is
    the effective-number β). The string forms need ``class_counts``.
    """

    def __init__(
        self,
        class_counts: Sequence[int] | None = None,
        gamma: float = 2.0,
        alpha: Sequence[float] | str | None = None,
        beta: float = 0.999,
    ) -> None:
        super().__init__(class_counts)
        if gamma < 0:
            raise ValueError(f"focal gamma must be >= 0; got {gamma}")
        self.gamma = gamma
        if isinstance(alpha, str):
            if self.class_counts is None:
                raise ValueError(
                    f"focal alpha={alpha!r} needs the training class counts; build it with "
                    "build_loss('focal', class_counts=datamodule.class_counts, ...)"
                )
            a = class_weights(self.class_counts, alpha, beta)
        else:
            a = None if alpha is None else torch.as_tensor(list(alpha), dtype=torch.float64)
        self.register_buffer("alpha", a, persistent=False)

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        loss = focal_per_sample(logits, targets, self.gamma)
        if self.alpha is not None:
            if self.alpha.numel() != logits.shape[1]:
                raise ValueError(
                    f"focal alpha has {self.alpha.numel()} entries for {logits.shape[1]} classes"
                )
            loss = self.alpha.to(loss)[targets.long()] * loss
        return loss.mean()
