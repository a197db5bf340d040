"""Softmax focal loss (Lin et al. 2017): down-weights the easy, mostly head-class, examples."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from dicebert.losses import register
from dicebert.losses.base import ClassificationLoss


@register("focal")
class FocalLoss(ClassificationLoss):
    """``mean_i −α_{y_i} (1 − p_{y_i})^γ log p_{y_i}`` on softmax probabilities.

    ``alpha``: None (no class weights) or one weight per class.
    """

    def __init__(
        self,
        class_counts: Sequence[int] | None = None,
        gamma: float = 2.0,
        alpha: Sequence[float] | None = None,
    ) -> None:
        super().__init__(class_counts)
        if gamma < 0:
            raise ValueError(f"focal gamma must be >= 0; got {gamma}")
        self.gamma = gamma
        a = None if alpha is None else torch.as_tensor(list(alpha), dtype=torch.float32)
        self.register_buffer("alpha", a, persistent=False)

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        targets = targets.long()
        log_pt = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
        # (1 - p)^γ via expm1 stays exact when p_t → 1, where 1 - exp(log p) cancels.
        loss = -((-torch.expm1(log_pt)).clamp_min(0) ** self.gamma) * log_pt
        if self.alpha is not None:
            if self.alpha.numel() != logits.shape[1]:
                raise ValueError(f"focal alpha has {self.alpha.numel()} entries for {logits.shape[1]} classes")
            loss = self.alpha.to(loss)[targets] * loss
        return loss.mean()
