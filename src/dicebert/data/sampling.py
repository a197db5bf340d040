"""Training-set samplers whose draws depend only on (seed, epoch).

Lightning calls ``set_epoch`` before every epoch, so a run resumed from an epoch-end checkpoint
sees exactly the batches the uninterrupted run saw. Under DDP Lightning wraps these samplers in a
DistributedSamplerWrapper; the counter in ``__iter__`` still gives each epoch fresh draws there.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from dicebert.data.sources import DataError
from dicebert.losses.base import class_weights

__all__ = ["SAMPLERS", "EpochSeededSampler", "build_sampler", "class_weights", "effective_class_counts"]

SAMPLERS = ("none", "inverse", "sqrt", "effective_number")


def _sampler_weights(class_counts: Sequence[int], scheme: str, beta: float) -> torch.Tensor:
    """Per-class draw weight (1/n_c, 1/√n_c or the effective number), one home with the losses'."""
    if scheme not in SAMPLERS or scheme == "none":
        raise DataError(f"data.sampler={scheme!r} is not one of {', '.join(SAMPLERS[1:])} here")
    if not 0.0 <= beta < 1.0:
        raise DataError(f"data.sampler_beta must be in [0, 1); got {beta}")
    return class_weights(torch.as_tensor(list(class_counts), dtype=torch.float64), scheme, beta)


def effective_class_counts(class_counts: Sequence[int], scheme: str, beta: float = 0.999) -> list[float]:
    """Expected examples of each class per epoch under the sampler ``scheme``: ∝ n_c·w_c, sum N.

    This is the class distribution the model is trained on, so it is what priors, margins and
    weights must be computed from: a loss given the raw counts behind a rebalancing sampler
    corrects the imbalance twice (Ren et al. 2020). ``none`` returns the raw counts.
    """
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    if scheme == "none":
        return counts.tolist()
    seen = counts * _sampler_weights(class_counts, scheme, beta)
    return (seen * (counts.sum() / seen.sum())).tolist()


class EpochSeededSampler(Sampler[int]):
    """Shuffle (``weights=None``) or weighted draws with replacement, seeded by ``seed + epoch``."""

    def __init__(self, num_samples: int, seed: int, weights: torch.Tensor | None = None) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.weights = weights
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1  # fresh draws next time even if nobody calls set_epoch
        if self.weights is None:
            order = torch.randperm(self.num_samples, generator=generator)
        else:
            order = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=generator)
        yield from order.tolist()


def build_sampler(
    labels: Sequence[int], class_counts: Sequence[int], scheme: str, seed: int, beta: float = 0.999
) -> EpochSeededSampler:
    """Plain shuffling (``none``) or class-rebalancing draws: per-sample weight = its class's weight."""
    if scheme == "none":
        return EpochSeededSampler(len(labels), seed)
    per_class = _sampler_weights(class_counts, scheme, beta)
    weights = per_class[torch.as_tensor(list(labels), dtype=torch.long)]
    return EpochSeededSampler(len(labels), seed, weights)
