"""Softmax focal loss (Lin et al. 2017): down-weights the easy, mostly head-class, examples."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dicebert.errors import ConfigError
from dicebert.losses import register
from dicebert.losses.base import (
    ClassificationLoss,
    check_weight_norm,
    class_weights,
    log_probs_and_complements,
    weighted_mean,
)


def focal_per_sample(logits: Tensor, targets: Tensor, gamma: float) -> Tensor:
    """``−(1 − p_t)^γ log p_t`` per sample (``[N]``), without class weights.

    ``(1 − p_t)^γ`` is ``exp(γ·log(1 − p_t))`` with ``log(1 − p_t)`` exact: the power form
    ``x ** γ`` has an infinite derivative at x = 0 for γ < 1, and in float32 1 − p_t is 0 past
    a logit gap of ~17, so the gradient was NaN there while the loss stayed finite.
    """
    index = targets.long()[:, None]
    log_p, log_1mp = log_probs_and_complements(logits)
    log_pt, log_1mpt = log_p.gather(1, index).squeeze(1), log_1mp.gather(1, index).squeeze(1)
    if gamma == 0:  # exp(0·(−inf)) would be NaN if p_t were exactly 1
        return -log_pt
    return -torch.exp(gamma * log_1mpt) * log_pt


@register("focal")
class FocalLoss(ClassificationLoss):
    """``mean_i −α_{y_i} (1 − p_{y_i})^γ log p_{y_i}`` on softmax probabilities.

    ``alpha``: None (no class weights), one weight per class (used as given), or ``"inverse"`` /
    ``"effective_number"`` (weights from the training counts, normalised to sum to C; ``beta`` is
    the effective-number β). The string forms need ``class_counts``. ``drw_start`` defers α
    (deferred re-weighting: unweighted focal until that epoch or fraction of training).
    """

    alpha: Tensor | None  # buffer [C], or None: no class weights

    def __init__(
        self,
        class_counts: Sequence[int] | None = None,
        gamma: float = 2.0,
        alpha: Sequence[float] | str | None = None,
        beta: float = 0.999,
        drw_start: int | float | None = None,
        weight_norm: str = "batch_mean",
    ) -> None:
        super().__init__(class_counts)
        self.init_drw(drw_start)
        self.weight_norm = check_weight_norm(weight_norm)
        if gamma < 0:
            raise ConfigError(f"focal gamma must be >= 0; got {gamma}")
        self.gamma = gamma
        a: Tensor | None = None
        if isinstance(alpha, str):
            if self.class_counts is None:
                raise ConfigError(
                    f"focal alpha={alpha!r} needs the training class counts; build it with "
                    "build_loss('focal', class_counts=datamodule.class_counts, ...)"
                )
            a = class_weights(self.class_counts, alpha, beta)
        elif alpha is not None:
            a = torch.as_tensor(list(alpha), dtype=torch.float64)
        self.register_buffer("alpha", a, persistent=False)

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        loss = focal_per_sample(logits, targets, self.gamma)
        if self.alpha is not None and self.weights_active:
            if self.alpha.numel() != logits.shape[1]:
                raise ConfigError(
                    f"focal alpha has {self.alpha.numel()} entries for {logits.shape[1]} classes"
                )
            return weighted_mean(loss, self.alpha.to(loss)[targets.long()], self.weight_norm)
        return loss.mean()
