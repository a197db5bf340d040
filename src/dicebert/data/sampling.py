"""Class-rebalancing samplers: draw the tail more often instead of re-weighting the loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import WeightedRandomSampler

from dicebert.data.sources import DataError

SAMPLERS = ("none", "inverse", "sqrt", "effective_number")


def class_weights(class_counts: Sequence[int], scheme: str, beta: float = 0.999) -> torch.Tensor:
    """Per-class sampling weight: 1/n_c, 1/√n_c or the effective number (1−β)/(1−β^n_c)."""
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    if scheme == "inverse":
        return 1.0 / counts
    if scheme == "sqrt":
        return counts.rsqrt()
    if scheme == "effective_number":
        if not 0.0 <= beta < 1.0:
            raise DataError(f"data.sampler_beta must be in [0, 1); got {beta}")
        return (1.0 - beta) / (1.0 - beta**counts)
    raise DataError(f"data.sampler={scheme!r} is not one of {', '.join(SAMPLERS)}")


def build_sampler(
    labels: Sequence[int], class_counts: Sequence[int], scheme: str, seed: int, beta: float = 0.999
) -> WeightedRandomSampler | None:
    """A WeightedRandomSampler over the training set, or None for plain shuffling.

    Lightning wraps it in a DistributedSamplerWrapper under DDP, so each rank draws its own share
    of the same weighted stream.
    """
    if scheme == "none":
        return None
    per_class = class_weights(class_counts, scheme, beta)
    weights = per_class[torch.as_tensor(list(labels), dtype=torch.long)]
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(weights, num_samples=len(weights), replacement=True, generator=generator)
