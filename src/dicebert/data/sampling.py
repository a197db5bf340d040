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


def effective_class_counts(
    class_counts: Sequence[int], scheme: str, beta: float = 0.999, cover_batch_size: int | None = None
) -> list[float]:
    """Expected examples of each class per epoch under the sampler ``scheme``: ∝ n_c·w_c, sum N.

    This is the class distribution the model is trained on, so it is what priors, margins and
    weights must be computed from: a loss given the raw counts behind a rebalancing sampler
    corrects the imbalance twice (Ren et al. 2020). ``none`` returns the raw counts.
    ``cover_batch_size`` = B: batches from :class:`ClassCoveringBatchSampler` (one example of each
    of the C classes, then B − C drawn by ``scheme``), so class c's share is (1 + (B − C)·π_c)/B.
    """
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    seen = counts if scheme == "none" else counts * _sampler_weights(class_counts, scheme, beta)
    share = seen / seen.sum()
    if cover_batch_size is not None:
        c = counts.numel()
        _check_cover(cover_batch_size, c)
        share = (1.0 + (cover_batch_size - c) * share) / cover_batch_size
    if scheme == "none" and cover_batch_size is None:
        return counts.tolist()
    return (share * counts.sum()).tolist()


def _check_cover(batch_size: int, num_classes: int) -> None:
    if batch_size < num_classes:
        raise DataError(
            f"data.batch_size={batch_size} cannot hold one example of each of the {num_classes} classes; "
            f"raise data.batch_size to at least {num_classes} or turn class covering off"
        )


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


class ClassCoveringBatchSampler(Sampler[list[int]]):
    """Batches in which every class appears: one example per class, the rest from ``base``'s scheme.

    Batch-level losses (Dice family) score a class absent from the batch by smoothing alone, and
    with a 3-example tail and batch 16 that is ~91% of the batches. Here each batch starts with
    one example of every class (each class's examples in a fresh seeded order, cycling, so a
    tail example recurs as evenly as possible), and the remaining ``batch_size − C`` slots come
    from the base sampler's draws (shuffle or class-weighted). The class mix this gives the model
    is :func:`effective_class_counts` with ``cover_batch_size``. Draws depend only on (seed,
    epoch); ``len`` is ⌈N / batch_size⌉ batches. Single-process (no DDP sharding).
    """

    def __init__(self, base: EpochSeededSampler, labels: Sequence[int], batch_size: int) -> None:
        super().__init__()
        label_t = torch.as_tensor(list(labels), dtype=torch.long)
        num_classes = int(label_t.max()) + 1 if label_t.numel() else 0
        _check_cover(batch_size, num_classes)
        self.members = [torch.nonzero(label_t == c).flatten() for c in range(num_classes)]
        empty = [c for c, m in enumerate(self.members) if m.numel() == 0]
        if empty:
            raise DataError(
                f"class covering needs every class in the training set; classes {empty} have none"
            )
        self.base = base
        self.batch_size = batch_size
        self.num_batches = -(-len(label_t) // batch_size)

    @property
    def epoch(self) -> int:
        return self.base.epoch

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.base.seed * 100_003 + self.epoch + 1)
        fill = self.batch_size - len(self.members)
        draws = list(self.base)  # advances the base sampler's epoch, as a plain loader would
        needed = self.num_batches * fill
        draws = (draws * (needed // max(len(draws), 1) + 1))[:needed]
        cover = []
        for members in self.members:
            rounds = -(-self.num_batches // members.numel())
            order = torch.cat(
                [members[torch.randperm(members.numel(), generator=generator)] for _ in range(rounds)]
            )
            cover.append(order[: self.num_batches].tolist())
        for b in range(self.num_batches):
            yield [column[b] for column in cover] + draws[b * fill : (b + 1) * fill]
