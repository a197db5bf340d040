"""The contract every loss follows, so that the training loop never special-cases one."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


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

    def __init__(self, class_counts: Sequence[int] | None = None) -> None:
        super().__init__()
        if self.needs_class_counts and class_counts is None:
            raise ValueError(
                f"{type(self).__name__} needs the training class counts; build it with "
                "build_loss(name, class_counts=datamodule.class_counts)"
            )
        counts = None if class_counts is None else torch.as_tensor(list(class_counts), dtype=torch.float64)
        if counts is not None and (counts.ndim != 1 or (counts <= 0).any()):
            raise ValueError(f"class_counts must be positive integers, one per class; got {list(class_counts)}")
        self.register_buffer("class_counts", counts, persistent=False)

    def set_epoch(self, epoch: int) -> None:  # noqa: B027 - optional hook, most losses are stateless
        """Called by the LightningModule at each epoch start (schedules such as LDAM-DRW use it)."""

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        check_inputs(logits, targets)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return self.compute(logits.float() if logits.dtype != torch.float64 else logits, targets)

    def compute(self, logits: Tensor, targets: Tensor) -> Tensor:
        raise NotImplementedError


def check_inputs(logits: Tensor, targets: Tensor) -> None:
    """Raise a one-line ValueError naming the expected shapes and dtypes."""
    expected = "expected logits [N, C] (float) and targets [N] (int64 class ids in [0, C))"
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D; got shape {tuple(logits.shape)}; {expected}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point; got {logits.dtype}; {expected}")
    if targets.ndim != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(
            f"targets must be 1-D with N={logits.shape[0]} entries; got shape {tuple(targets.shape)}; {expected}"
        )
    if targets.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"targets must be integer class ids; got {targets.dtype}; {expected}")
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= logits.shape[1]):
        raise ValueError(
            f"targets out of range: min {int(targets.min())}, max {int(targets.max())}, "
            f"C={logits.shape[1]}; {expected}"
        )


def one_hot(targets: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    return nn.functional.one_hot(targets.long(), num_classes).to(dtype)
