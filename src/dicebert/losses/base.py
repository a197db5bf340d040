"""The contract every loss follows, so that the training loop never special-cases one."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import Tensor, nn

from dicebert.errors import ConfigError

# re-exported: the loss modules take their class weights from here, computed in the one home of priors
from dicebert.priors import WEIGHTINGS as WEIGHTINGS
from dicebert.priors import class_weights as class_weights


class ClassificationLoss(nn.Module):
    """Base class: raw logits ``[N, C]`` + integer targets ``[N]`` → scalar.

    Inputs are validated once here (clear ``ValueError`` instead of a deep shape error) and the
    loss is computed in float32 with autocast off, because softmax/log/Dice ratios lose too much
    in bf16/fp16. Subclasses implement :meth:`compute`.
    """

    #: True when the loss treats the batch as a set (Dice family): its value for a batch is not
    #: the mean of per-sample values, so gradient accumulation and DDP change what it optimises.
    batch_level: bool = False
    #: True when the loss needs the training class counts (priors, margins, weights).
    needs_class_counts: bool = False
    class_counts: Tensor | None  # buffer: float64 [C], or None when built without counts

    def __init__(self, class_counts: Sequence[int] | None = None) -> None:
        super().__init__()
        if self.needs_class_counts and class_counts is None:
            raise ConfigError(
                f"{type(self).__name__} needs the training class counts; build it with "
                "build_loss(name, class_counts=datamodule.class_counts)"
            )
        counts = None if class_counts is None else torch.as_tensor(list(class_counts), dtype=torch.float64)
        if counts is not None and (counts.ndim != 1 or (counts <= 0).any()):
            raise ValueError(
                f"class_counts must be positive integers, one per class; got {list(class_counts or [])}"
            )
        self.register_buffer("class_counts", counts, persistent=False)

    #: Deferred re-weighting (Cao et al. 2019): where a loss's class weights switch on. None:
    #: from the start; an int: from that 0-based epoch; a float in [0, 1): from that fraction of
    #: the training steps. Re-weighting losses take it as the ``drw_start`` option.
    drw_start: int | float | None = None
    #: Whether the class weights apply now (False before ``drw_start``); see :meth:`set_progress`.
    weights_active: bool = True

    def init_drw(self, drw_start: int | float | None, active_without_start: bool = True) -> None:
        """Validate and store ``drw_start``; weights are off until :meth:`set_progress` reaches it."""
        if isinstance(drw_start, bool) or not (
            drw_start is None
            or (isinstance(drw_start, int) and drw_start >= 0)
            or (isinstance(drw_start, float) and 0.0 <= drw_start < 1.0)
        ):
            raise ConfigError(
                f"drw_start={drw_start!r}: give an epoch (int >= 0), a fraction of training "
                "(float in [0, 1), e.g. 0.8) or null"
            )
        self.drw_start = drw_start
        self._active_without_start = active_without_start
        self.weights_active = active_without_start if drw_start is None else False

    @property
    def counts(self) -> Tensor:
        """The class counts, for losses that require them (``needs_class_counts``)."""
        if self.class_counts is None:
            raise ValueError(f"{type(self).__name__} was built without class counts")
        return self.class_counts

    def set_progress(self, epoch: int, fraction: float | None = None) -> None:
        """Called by the LightningModule before every training batch: epoch and done fraction.

        ``fraction`` is ``global_step / total steps`` (None when training has no finite length).
        """
        self.set_epoch(epoch)
        start = self.drw_start
        if start is None:
            self.weights_active = getattr(self, "_active_without_start", True)
        elif isinstance(start, int):
            self.weights_active = epoch >= start
        elif fraction is None:
            raise ConfigError(
                f"loss.drw_start={start} is a fraction of training, but the run has no finite "
                "length; set trainer.max_epochs or trainer.max_steps, or give drw_start as an epoch"
            )
        else:
            self.weights_active = fraction >= start

    def set_epoch(self, epoch: int) -> None:  # optional hook: most losses are stateless
        """Called through :meth:`set_progress`; losses with epoch schedules override it."""

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        check_inputs(logits, targets)
        counts = self.class_counts
        if self.needs_class_counts and counts is not None and counts.numel() != logits.shape[1]:
            raise ValueError(
                f"{type(self).__name__} was built with {counts.numel()} class counts "
                f"but got logits with C={logits.shape[1]} classes"
            )
        # float64 stays float64 (gradcheck); everything else, bf16/fp16 included, runs in float32.
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return self.compute(logits.float() if logits.dtype != torch.float64 else logits, targets)

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        raise NotImplementedError

    @classmethod
    def probabilities(cls, logits: Tensor) -> Tensor:
        """The class probabilities this loss trains (softmax unless it trains something else).

        Calibration (ECE) and predictions must read the probabilities the loss shaped: a loss
        trained through sigmoids scored on a softmax would be judged on numbers it never saw. A
        classmethod, so prediction can use it from a run's loss name without class counts.
        """
        return torch.softmax(logits, dim=-1)


def check_inputs(logits: Tensor, targets: Tensor) -> None:
    """Raise a one-line ValueError naming the expected shapes and dtypes."""
    expected = "expected logits [N, C] (float) and targets [N] (int64 class ids in [0, C))"
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D; got shape {tuple(logits.shape)}; {expected}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point; got {logits.dtype}; {expected}")
    if targets.ndim != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(
            f"targets must be 1-D with N={logits.shape[0]} entries; "
            f"got shape {tuple(targets.shape)}; {expected}"
        )
    if targets.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"targets must be integer class ids; got {targets.dtype}; {expected}")
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= logits.shape[1]):
        raise ValueError(
            f"targets out of range: min {int(targets.min())}, max {int(targets.max())}, "
            f"C={logits.shape[1]}; {expected}"
        )


def log_probs_and_complements(logits: Tensor) -> tuple[Tensor, Tensor]:
    """``(log p, log(1 − p))`` of the softmax, ``[N, C]`` each, exact at both ends in float32.

    ``1 − softmax`` (or ``−expm1(log p)``) rounds to 0 once the top logit leads by ~17 in float32,
    which gives focal with γ < 1 an infinite derivative (NaN gradient) and DSC a jump with zero
    gradient. Only the top class of a row can have p > ½; for it both terms come from its margin
    ``d = z_top − logsumexp(others)``: ``log p = −log(1 + e^−d)`` and ``log(1 − p) = −log(1 + e^d)``.
    Every other class has p ≤ ½, where ``log1p(−p)`` is exact.
    """
    log_p = torch.log_softmax(logits, dim=1)
    top = nn.functional.one_hot(logits.argmax(dim=1), logits.shape[1]).bool()
    others = logits.masked_fill(top, float("-inf")).logsumexp(dim=1, keepdim=True)
    margin = logits.masked_select(top)[:, None] - others
    zero = torch.zeros_like(margin)
    log_p = torch.where(top, -torch.logaddexp(zero, -margin), log_p)
    # the top class's p is replaced by 0 before log1p: log1p(−1) would make where's gradient NaN
    below_half = torch.where(top, torch.zeros_like(log_p), log_p.exp())
    log_1mp = torch.where(top, -torch.logaddexp(zero, margin), torch.log1p(-below_half))
    return log_p, log_1mp


def one_hot(targets: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """``[N, C]`` one-hot targets in the loss's compute dtype."""
    return nn.functional.one_hot(targets.long(), num_classes).to(dtype)


def global_batch_sums(sums: Tensor) -> Tensor:
    """Per-class batch sums of a batch-level loss, summed over the DDP ranks (the global batch's).

    The all-reduce is differentiable, so each rank's backward carries the global ratio's gradient
    with respect to its own examples, times the world size; DDP's gradient averaging then gives
    exactly the one-device gradient. Without it every rank would optimise its own half-batch's Dice.
    """
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist_nn.all_reduce(sums)
    return sums


#: How a class-weighted loss averages ``w_{y_i}·ℓ_i`` over the batch (``weight_norm``).
WEIGHT_NORMS = ("batch_mean", "weight_sum")


def weighted_mean(values: Tensor, weights: Tensor, weight_norm: str) -> Tensor:
    """``mean_i w_i·ℓ_i`` (``batch_mean``) or ``Σ w_i·ℓ_i / Σ w_i`` (``weight_sum``).

    ``weight_sum`` is PyTorch's weighted cross-entropy and the DRW reference's (Cao et al. 2019):
    every batch keeps the scale of an unweighted mean. ``batch_mean`` keeps the weights' own scale
    (they sum to C), so a batch of head examples contributes little in absolute terms: at ρ = 100
    the mean example weight is about 0.1, which shrinks the re-weighted phase's step size.
    """
    if weight_norm == "weight_sum":
        return (weights * values).sum() / weights.sum().clamp_min(torch.finfo(values.dtype).tiny)
    return (weights * values).mean()


def check_weight_norm(weight_norm: str) -> str:
    if weight_norm not in WEIGHT_NORMS:
        raise ConfigError(f"weight_norm={weight_norm!r} is not one of {', '.join(WEIGHT_NORMS)}")
    return weight_norm
