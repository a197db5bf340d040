"""Class priors from class counts: weights, the distribution a sampler shows the model, log π.

The ground floor under the losses (class weights, margins), the data samplers (draw weights) and
the post-hoc adjustment (log π): each computes from the same counts the same way, so the three
can never disagree about what "the prior the model was trained on" is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dicebert.errors import ConfigError, DataError

WEIGHTINGS = ("inverse", "sqrt", "effective_number")
#: The training samplers: plain shuffling, or draws weighted by one of :data:`WEIGHTINGS`.
SAMPLERS = ("none", *WEIGHTINGS)


def class_weights(counts: Tensor | Sequence[float], weighting: str, beta: float = 0.999) -> Tensor:
    """Per-class weights from class counts, normalised to sum to C (so ``w = 1`` means unweighted).

    ``inverse``: ∝ 1/n_c (N/(C·n_c) before normalising); ``sqrt``: ∝ n_c^−½; ``effective_number``
    (Cui et al. 2019): ∝ (1−β)/(1−β^n_c). Normalising keeps the loss on CE's scale whatever the scheme.
    The one home of these weights: the losses and the data samplers (``data.sampler``) both use it.
    """
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
    if not 0.0 <= beta < 1.0:
        raise ConfigError(f"effective-number beta must be in [0, 1); got {beta}")
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if weighting == "inverse":
        raw = counts.sum() / (counts.numel() * counts)
    elif weighting == "sqrt":
        raw = counts.rsqrt()
    else:
        # 1 − β^n computed as −expm1(n·log β): exact for β near 1, where 1 − β^n cancels.
        raw = (1.0 - beta) / -torch.expm1(counts * torch.log(torch.tensor(beta, dtype=torch.float64)))
    return raw * (counts.numel() / raw.sum())


def sampler_weights(class_counts: Sequence[int], scheme: str, beta: float) -> Tensor:
    """Per-class draw weight of a rebalancing sampler (1/n_c, 1/√n_c or the effective number)."""
    if scheme not in SAMPLERS or scheme == "none":
        raise DataError(f"data.sampler={scheme!r} is not one of {', '.join(SAMPLERS[1:])} here")
    if not 0.0 <= beta < 1.0:
        raise DataError(f"data.sampler_beta must be in [0, 1); got {beta}")
    return class_weights(torch.as_tensor(list(class_counts), dtype=torch.float64), scheme, beta)


def check_cover(batch_size: int, num_classes: int) -> None:
    """A class-covering batch holds one example of every class: refuse a batch too small for that."""
    if batch_size < num_classes:
        raise DataError(
            f"data.batch_size={batch_size} cannot hold one example of each of the {num_classes} classes; "
            f"raise data.batch_size to at least {num_classes} or turn class covering off"
        )


def effective_class_counts(
    class_counts: Sequence[int], scheme: str, beta: float = 0.999, cover_batch_size: int | None = None
) -> list[float]:
    """Expected examples of each class per epoch under the sampler ``scheme``: ∝ n_c·w_c, sum N.

    This is the class distribution the model is trained on, so it is what priors, margins and
    weights must be computed from: a loss given the raw counts behind a rebalancing sampler
    corrects the imbalance twice (Ren et al. 2020). ``none`` returns the raw counts.
    ``cover_batch_size`` = B: batches that hold one example of each of the C classes, then B − C
    drawn by ``scheme`` (``data.cover_classes``), so class c's share is (1 + (B − C)·π_c)/B.
    """
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    seen = counts if scheme == "none" else counts * sampler_weights(class_counts, scheme, beta)
    share = seen / seen.sum()
    if cover_batch_size is not None:
        c = counts.numel()
        check_cover(cover_batch_size, c)
        share = (1.0 + (cover_batch_size - c) * share) / cover_batch_size
    if scheme == "none" and cover_batch_size is None:
        return counts.tolist()
    return (share * counts.sum()).tolist()


def log_prior(class_counts: Sequence[float], num_classes: int) -> np.ndarray:
    """log π of the counts the model was trained on; ValueError unless ``num_classes`` positive numbers."""
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.shape != (num_classes,) or not (counts > 0).all():
        raise ValueError(f"class_counts must be {num_classes} positive numbers; got {list(counts)}")
    return np.log(counts / counts.sum())


def run_prior(record: Mapping[str, Any], class_names: Sequence[str]) -> list[float]:
    """The counts a run's model saw: the sampler's effective ``train/prior_count/*``, else ``train/count/*``.

    ``record`` is a run's metrics.json, or its row of a sweep table (missing keys there are NaN).
    """
    prior = []
    for name in class_names:
        value = record.get(f"train/prior_count/{name}")
        if value is None or math.isnan(float(value)):
            value = record[f"train/count/{name}"]
        prior.append(float(value))
    return prior


def training_prior(datamodule: Any) -> tuple[list[float], bool]:
    """The class counts a set-up DataModule's batches show the model, and whether its sampler changed them.

    Priors, margins and weights come from these (:func:`effective_class_counts` of its ``sampler``
    and class covering); when they differ from the raw counts the run records them
    (``train/prior_count/*``) for the post-hoc adjustment.
    """
    cover = datamodule.batch_size if getattr(datamodule, "cover_classes", False) else None
    prior = effective_class_counts(
        datamodule.class_counts, datamodule.sampler, datamodule.sampler_beta, cover_batch_size=cover
    )
    return prior, datamodule.sampler != "none" or cover is not None
