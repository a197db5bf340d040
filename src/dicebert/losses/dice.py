"""Dice losses: the write-up's formula kept verbatim, and the project's multi-class soft Dice."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dicebert.losses import register
from dicebert.losses.base import ClassificationLoss, one_hot


@register("seed_dice")
class SeedDiceLoss(ClassificationLoss):
    """The write-up's loss, unchanged: ``−mean_c 2Σp·y / (Σp² + Σy² + 1e-8)`` with sigmoid p.

    Kept as a named variant so results can be compared with the original. Its known flaws are the
    reason :class:`DiceLoss` exists: sigmoid probabilities do not compete across classes, a class
    absent from the batch contributes a constant 0 with no gradient towards "predict it less", and
    the loss lives in [−1, 0] rather than being a distance.
    """

    batch_level = True
    eps = 1e-8

    @classmethod
    def probabilities(cls, logits: Tensor) -> Tensor:
        """One-vs-rest sigmoids, as trained (they need not sum to 1)."""
        return torch.sigmoid(logits)

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        probs = self.probabilities(logits)
        y = one_hot(targets, logits.shape[1], probs.dtype)
        numerator = 2.0 * (probs * y).sum(dim=0)
        denominator = (probs**2).sum(dim=0) + (y**2).sum(dim=0) + self.eps
        return -(numerator / denominator).mean()


@register("dice")
class DiceLoss(ClassificationLoss):
    """Multi-class soft Dice on softmax probabilities, per class over the batch, ``1 − mean_c dice_c``.

    ``dice_c = (2Σp·y + smooth_nr) / (Σp^k + Σy^k + smooth_dr)`` with k = 2 (``squared``) or 1.
    The smoothing terms make a class that is absent from the batch score 1 when the model gives it
    no probability and less when it does, so it still receives a gradient (the write-up's formula
    gives it a constant 0). ``weight`` optionally weighs classes in the mean.
    """

    batch_level = True

    def __init__(
        self,
        class_counts: Sequence[int] | None = None,
        squared: bool = True,
        smooth_nr: float = 1.0,
        smooth_dr: float = 1.0,
        weight: Sequence[float] | None = None,
    ) -> None:
        super().__init__(class_counts)
        if smooth_nr < 0 or smooth_dr <= 0:
            raise ValueError(f"need smooth_nr >= 0 and smooth_dr > 0; got {smooth_nr}, {smooth_dr}")
        self.power = 2 if squared else 1
        self.smooth_nr = smooth_nr
        self.smooth_dr = smooth_dr
        w = None if weight is None else torch.as_tensor(list(weight), dtype=torch.float64)
        self.register_buffer("weight", w, persistent=False)

    def per_class_dice(self, probs: Tensor, targets: Tensor) -> Tensor:
        """Dice coefficient of each class over the batch, from probabilities ``[N, C]``."""
        y = one_hot(targets, probs.shape[1], probs.dtype)
        numerator = 2.0 * (probs * y).sum(dim=0) + self.smooth_nr
        denominator = (probs**self.power).sum(dim=0) + (y**self.power).sum(dim=0) + self.smooth_dr
        return numerator / denominator

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        dice = self.per_class_dice(torch.softmax(logits, dim=1), targets)
        if self.weight is None:
            return 1.0 - dice.mean()
        if self.weight.numel() != dice.numel():
            raise ValueError(f"dice weight has {self.weight.numel()} entries for {dice.numel()} classes")
        w = self.weight.to(dice)
        return 1.0 - (w * dice).sum() / w.sum()


@register("dice_ce")
class DiceCELoss(ClassificationLoss):
    """``λ_dice · dice + λ_ce · CE``: CE gives well-scaled per-sample gradients, Dice the class balance."""

    batch_level = True

    def __init__(
        self,
        class_counts: Sequence[int] | None = None,
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        squared: bool = True,
        smooth_nr: float = 1.0,
        smooth_dr: float = 1.0,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(class_counts)
        from dicebert.losses.cross_entropy import CrossEntropyLoss

        self.dice = DiceLoss(squared=squared, smooth_nr=smooth_nr, smooth_dr=smooth_dr)
        self.ce = CrossEntropyLoss(label_smoothing=label_smoothing)
        self.lambda_dice = lambda_dice
        self.lambda_ce = lambda_ce

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        return self.lambda_dice * self.dice.compute(logits, targets) + self.lambda_ce * self.ce.compute(
            logits, targets
        )


@register("tversky")
class TverskyLoss(ClassificationLoss):
    """Salehi et al. 2017: ``1 − mean_c (tp_c + s) / (tp_c + α·fp_c + β·fn_c + s)`` over the batch.

    On softmax probabilities: tp = Σp·y, fp = Σp·(1−y), fn = Σ(1−p)·y. α weighs false positives,
    β false negatives (β > α favours recall of rare classes); α = β = 0.5 is Dice with k = 1 and
    smoothing 2s. ``smooth`` plays the role it has in ``dice``: an absent class still gets a gradient.
    """

    batch_level = True

    def __init__(
        self,
        class_counts: Sequence[int] | None = None,
        alpha: float = 0.3,
        beta: float = 0.7,
        smooth: float = 1.0,
    ) -> None:
        super().__init__(class_counts)
        if alpha < 0 or beta < 0 or smooth <= 0:
            raise ValueError(f"need alpha, beta >= 0 and smooth > 0; got {alpha}, {beta}, {smooth}")
        self.alpha = alpha
        self.beta = beta
        self.smooth = smooth

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        probs = torch.softmax(logits, dim=1)
        y = one_hot(targets, probs.shape[1], probs.dtype)
        tp = (probs * y).sum(dim=0)
        fp = probs.sum(dim=0) - tp
        fn = y.sum(dim=0) - tp
        index = (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth)
        return 1.0 - index.mean()


@register("generalized_dice")
class GeneralizedDiceLoss(ClassificationLoss):
    """Sudre et al. 2017: ``1 − (2 Σ_c w_c Σp·y + s_nr) / (Σ_c w_c Σ(p + y) + s_dr)``, ``w_c = 1/(Σy_c)²``.

    A class absent from the batch would get an infinite weight. As in MONAI, it gets the largest
    weight among the present classes instead: it is treated as at least as rare as the rarest
    present class, so probability mass put on it (pure false positives) is penalised and it keeps
    a gradient. (Dropping it, weight 0, would let the model put mass on absent classes for free.)
    """

    batch_level = True

    def __init__(
        self,
        class_counts: Sequence[int] | None = None,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
    ) -> None:
        super().__init__(class_counts)
        if smooth_nr < 0 or smooth_dr <= 0:
            raise ValueError(f"need smooth_nr >= 0 and smooth_dr > 0; got {smooth_nr}, {smooth_dr}")
        self.smooth_nr = smooth_nr
        self.smooth_dr = smooth_dr

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        probs = torch.softmax(logits, dim=1)
        y = one_hot(targets, probs.shape[1], probs.dtype)
        support = y.sum(dim=0)
        present = support > 0
        weight = torch.where(present, 1.0 / support.clamp_min(1.0) ** 2, torch.zeros_like(support))
        weight = torch.where(present, weight, weight.max())
        intersection = (weight * (probs * y).sum(dim=0)).sum()
        total = (weight * (probs.sum(dim=0) + support)).sum()
        return 1.0 - (2.0 * intersection + self.smooth_nr) / (total + self.smooth_dr)
