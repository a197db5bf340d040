"""Self-adjusting Dice, DSC (Li et al., ACL 2020, "Dice Loss for Data-imbalanced NLP Tasks").

Per sample, on softmax probabilities, with ``p̃ = (1 − p)^α · p``:

    ℓ_i = Σ_c [1 − (2 p̃_ic y_ic + s) / (p̃_ic² + y_ic² + s)],   loss = mean_i ℓ_i

Reading of the formula (checked against the issue's known value): the sum runs over *all* classes
(the target term and the C − 1 non-target terms) and the denominator is squared. On the given
probabilities ``[[.9,.03,.03,.03],[.03,.9,.03,.03]]``, targets ``[0, 1]``, α = 0.01, s = 1 this
gives 0.007930 per sample; the target class alone gives 0.005234, a mean over classes 0.001983
and an unsquared denominator 0.1292, so those readings are not the one specified.

Being per sample, DSC is *not* batch-level: accumulation and DDP do not change it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dicebert.errors import ConfigError
from dicebert.losses import register
from dicebert.losses.base import ClassificationLoss, log_probs_and_complements, one_hot


def _dsc_terms(adjusted: Tensor, y: Tensor, smooth: float) -> Tensor:
    return 1.0 - (2.0 * adjusted * y + smooth) / (adjusted**2 + y**2 + smooth)


def dsc_per_sample(probs: Tensor, targets: Tensor, alpha: float = 0.01, smooth: float = 1.0) -> Tensor:
    """DSC of each sample (``[N]``) from probabilities ``[N, C]`` taken as given (no softmax)."""
    y = one_hot(targets, probs.shape[1], probs.dtype)
    # 1 − p floored at the smallest normal float: (1 − p)^α has an infinite derivative at 0.
    adjusted = (1.0 - probs).clamp_min(torch.finfo(probs.dtype).tiny) ** alpha * probs
    return _dsc_terms(adjusted, y, smooth).sum(dim=1)


@register("dsc")
class SelfAdjustingDiceLoss(ClassificationLoss):
    """DSC on softmax probabilities, ``α`` = 0.01 and ``s`` = 1 as the authors ran it.

    The factor ``(1 − p)^α`` pushes well-classified samples' p̃ down, so easy (head-class)
    examples stop dominating; note it makes even a perfect prediction cost 0.5 per sample.
    """

    def __init__(
        self, class_counts: Sequence[int] | None = None, alpha: float = 0.01, smooth: float = 1.0
    ) -> None:
        super().__init__(class_counts)
        if alpha < 0 or smooth <= 0:
            raise ConfigError(f"need alpha >= 0 and smooth > 0; got {alpha}, {smooth}")
        self.alpha = alpha
        self.smooth = smooth

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        # p̃ = exp(α·log(1 − p) + log p) with both logs exact: 1 − softmax rounds to 0 past a
        # logit gap of ~17 in float32, where a naive 1 − p jumps (0.006 → 0.156) with no gradient.
        log_p, log_1mp = log_probs_and_complements(logits)
        adjusted = torch.exp(self.alpha * log_1mp + log_p)
        y = one_hot(targets, logits.shape[1], logits.dtype)
        return _dsc_terms(adjusted, y, self.smooth).sum(dim=1).mean()
