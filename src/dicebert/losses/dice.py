"""Dice losses: the write-up's formula kept verbatim, and the project's multi-class soft Dice."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dicebert.errors import ConfigError
from dicebert.losses import register
from dicebert.losses.base import ClassificationLoss, global_batch_sums, one_hot


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
        both, predicted, actual = global_batch_sums(
            torch.stack([(probs * y).sum(dim=0), (probs**2).sum(dim=0), (y**2).sum(dim=0)])
        )
        return -(2.0 * both / (predicted + actual + self.eps)).mean()


ABSENT = ("smooth", "mask")


def _check_absent(absent: str) -> None:
    if absent not in ABSENT:
        raise ConfigError(f"absent={absent!r} is not one of {', '.join(ABSENT)}")


def _class_mean(values: Tensor, present: Tensor | None, weight: Tensor | None) -> Tensor:
    """(Weighted) mean over classes, over the ``present`` ones only when given."""
    w = torch.ones_like(values) if weight is None else weight.to(values)
    if present is not None:
        w = w * present.to(values)
    return (w * values).sum() / w.sum()


@register("dice")
class DiceLoss(ClassificationLoss):
    """Multi-class soft Dice on softmax probabilities, per class over the batch, ``1 − mean_c dice_c``.

    ``dice_c = (2Σp·y + smooth_nr) / (Σp^k + Σy^k + smooth_dr)`` with k = 2 (``squared``) or 1.
    The smoothing terms make a class that is absent from the batch score 1 when the model gives it
    no probability and less when it does, so it still receives a gradient (the write-up's formula
    gives it a constant 0). ``weight`` optionally weighs classes in the mean.

    Rare classes are absent from most batches, and there the smoothed term *rewards* giving them
    zero probability. Two options counter that: ``absent="mask"`` leaves classes without a target
    out of the mean; ``ema`` = m accumulates the per-class sums across batches
    (``S ← m·S + (1 − m)·S_batch``, gradient through the batch part), so the ratio tracks the
    dataset-level Dice rather than one batch's. The running sums start at the first training
    batch's, are updated in training mode only, and are saved in checkpoints when the loss was
    built with ``class_counts`` (as training does); under DDP they are the global batch's on every rank.
    ``prior_tau`` = τ computes Dice on ``softmax(z + τ·log π)`` (π the class prior, as in
    ``logit_adjusted``): the training-time shift makes head classes pay a margin, predictions
    use the raw ``z``.
    """

    batch_level = True
    weight: Tensor | None  # buffers
    running: Tensor | None
    running_started: Tensor
    offset: Tensor | None

    def __init__(
        self,
        class_counts: Sequence[int] | None = None,
        squared: bool = True,
        smooth_nr: float = 1.0,
        smooth_dr: float = 1.0,
        weight: Sequence[float] | None = None,
        absent: str = "smooth",
        ema: float | None = None,
        prior_tau: float = 0.0,
    ) -> None:
        super().__init__(class_counts)
        if smooth_nr < 0 or smooth_dr <= 0:
            raise ConfigError(f"need smooth_nr >= 0 and smooth_dr > 0; got {smooth_nr}, {smooth_dr}")
        _check_absent(absent)
        if ema is not None and not 0.0 <= ema < 1.0:
            raise ConfigError(f"dice ema (momentum of the running sums) must be in [0, 1) or null; got {ema}")
        self.power = 2 if squared else 1
        self.smooth_nr = smooth_nr
        self.smooth_dr = smooth_dr
        self.absent = absent
        self.ema = ema
        w = None if weight is None else torch.as_tensor(list(weight), dtype=torch.float64)
        self.register_buffer("weight", w, persistent=False)
        running = None
        if ema is not None and self.class_counts is not None:  # known C: checkpointed with the model
            running = torch.zeros(3, self.class_counts.numel(), dtype=torch.float64)
        self.register_buffer("running", running, persistent=running is not None)
        self.register_buffer("running_started", torch.tensor(False), persistent=running is not None)
        self.prior_tau = prior_tau
        offset = None
        if prior_tau != 0.0:
            if self.class_counts is None:
                raise ConfigError(
                    "dice prior_tau needs the training class counts; "
                    "build it with build_loss(name, class_counts=datamodule.class_counts, ...)"
                )
            offset = prior_tau * torch.log(self.class_counts / self.class_counts.sum())
        self.register_buffer("offset", offset, persistent=False)

    def batch_sums(self, probs: Tensor, targets: Tensor) -> Tensor:
        """``[3, C]``: per-class Σp·y, Σp^k and Σy^k (= Σy for one-hot y) over the batch."""
        y = one_hot(targets, probs.shape[1], probs.dtype)
        return torch.stack([(probs * y).sum(dim=0), (probs**self.power).sum(dim=0), y.sum(dim=0)])

    def sums(self, probs: Tensor, targets: Tensor) -> Tensor:
        """The sums the ratio uses: this batch's, or the running ones mixed with this batch's.

        Under DDP the batch sums are the global batch's (:func:`~dicebert.losses.base.global_batch_sums`).
        """
        return self.mix(global_batch_sums(self.batch_sums(probs, targets)))

    def mix(self, batch: Tensor) -> Tensor:
        """The running sums mixed with this (global) batch's; the batch's own without ``ema``."""
        if self.ema is None:
            return batch
        if self.running is None or self.running.shape[1] != batch.shape[1]:
            self.running = torch.zeros_like(batch.detach(), dtype=torch.float64)
            self.running_started = torch.tensor(False, device=batch.device)
        previous = self.running.to(batch) if bool(self.running_started) else batch.detach()
        mixed = self.ema * previous + (1.0 - self.ema) * batch
        if self.training:
            self.running = mixed.detach().to(self.running)
            self.running_started = torch.tensor(True, device=batch.device)
        return mixed

    def per_class_dice(self, probs: Tensor, targets: Tensor) -> Tensor:
        """Dice coefficient of each class over the batch, from probabilities ``[N, C]``."""
        intersection, predicted, actual = self.sums(probs, targets)
        return (2.0 * intersection + self.smooth_nr) / (predicted + actual + self.smooth_dr)

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        if self.offset is not None:  # training-time prior shift; predictions use the raw logits
            logits = logits + self.offset.to(logits)
        probs = torch.softmax(logits, dim=1)
        batch = global_batch_sums(self.batch_sums(probs, targets))
        intersection, predicted, actual = self.mix(batch)
        dice = (2.0 * intersection + self.smooth_nr) / (predicted + actual + self.smooth_dr)
        if self.weight is not None and self.weight.numel() != dice.numel():
            raise ConfigError(f"dice weight has {self.weight.numel()} entries for {dice.numel()} classes")
        # Presence is this global batch's, not the running sums': with ema those stay > 0 for ever
        # after a class's first batch, so the mask would never act.
        present = batch[2] > 0 if self.absent == "mask" else None
        return 1.0 - _class_mean(dice, present, self.weight)


@register("dice_ce")
class DiceCELoss(ClassificationLoss):
    """``λ_dice · dice + λ_ce · CE``: CE gives well-scaled per-sample gradients, Dice the class balance.

    ``absent``, ``ema`` and ``prior_tau`` are the Dice term's (see :class:`DiceLoss`).
    """

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
        absent: str = "smooth",
        ema: float | None = None,
        prior_tau: float = 0.0,
    ) -> None:
        super().__init__(class_counts)
        from dicebert.losses.cross_entropy import CrossEntropyLoss

        self.dice = DiceLoss(
            class_counts,
            squared=squared,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            absent=absent,
            ema=ema,
            prior_tau=prior_tau,
        )
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
    smoothing 2s. ``smooth`` plays the role it has in ``dice``: an absent class still gets a gradient;
    ``absent="mask"`` leaves classes without a target in the batch out of the mean instead.
    """

    batch_level = True

    def __init__(
        self,
        class_counts: Sequence[int] | None = None,
        alpha: float = 0.3,
        beta: float = 0.7,
        smooth: float = 1.0,
        absent: str = "smooth",
    ) -> None:
        super().__init__(class_counts)
        if alpha < 0 or beta < 0 or smooth <= 0:
            raise ConfigError(f"need alpha, beta >= 0 and smooth > 0; got {alpha}, {beta}, {smooth}")
        _check_absent(absent)
        self.absent = absent
        self.alpha = alpha
        self.beta = beta
        self.smooth = smooth

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        probs = torch.softmax(logits, dim=1)
        y = one_hot(targets, probs.shape[1], probs.dtype)
        tp, predicted, actual = global_batch_sums(
            torch.stack([(probs * y).sum(dim=0), probs.sum(dim=0), y.sum(dim=0)])
        )
        fp, fn = predicted - tp, actual - tp
        index = (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth)
        present = actual > 0 if self.absent == "mask" else None
        return 1.0 - _class_mean(index, present, None)


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
            raise ConfigError(f"need smooth_nr >= 0 and smooth_dr > 0; got {smooth_nr}, {smooth_dr}")
        self.smooth_nr = smooth_nr
        self.smooth_dr = smooth_dr

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        probs = torch.softmax(logits, dim=1)
        y = one_hot(targets, probs.shape[1], probs.dtype)
        both, predicted, support = global_batch_sums(
            torch.stack([(probs * y).sum(dim=0), probs.sum(dim=0), y.sum(dim=0)])
        )
        present = support > 0
        weight = torch.where(present, 1.0 / support.clamp_min(1.0) ** 2, torch.zeros_like(support))
        weight = torch.where(present, weight, weight.max())
        intersection = (weight * both).sum()
        total = (weight * (predicted + support)).sum()
        return 1.0 - (2.0 * intersection + self.smooth_nr) / (total + self.smooth_dr)
