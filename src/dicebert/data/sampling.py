"""Training-set samplers whose draws depend only on (seed, epoch).

Lightning calls ``set_epoch`` before every epoch, so a run resumed from an epoch-end checkpoint
sees exactly the batches the uninterrupted run saw. Under DDP Lightning wraps these samplers in a
DistributedSamplerWrapper; the counter in ``__iter__`` still gives each epoch fresh draws there.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from dicebert.errors import DataError
from dicebert.priors import SAMPLERS, check_cover, sampler_weights

__all__ = ["SAMPLERS", "ClassCoveringBatchSampler", "EpochSeededSampler", "build_sampler"]


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
    per_class = sampler_weights(class_counts, scheme, beta)
    weights = per_class[torch.as_tensor(list(labels), dtype=torch.long)]
    return EpochSeededSampler(len(labels), seed, weights)


class ClassCoveringBatchSampler(Sampler[list[int]]):
    """Batches in which every class appears: one example per class, the rest from ``base``'s scheme.

    Batch-level losses (Dice family) score a class absent from the batch by smoothing alone, and
    with a 3-example tail and batch 16 that is ~91% of the batches. Here each batch starts with
    one example of every class (each class's examples in a fresh seeded order, cycling, so a
    tail example recurs as evenly as possible), and the remaining ``batch_size − C`` slots come
    from the base sampler's draws (shuffle or class-weighted). The class mix this gives the model
    is :func:`dicebert.priors.effective_class_counts` with ``cover_batch_size``. Draws depend only on (seed,
    epoch); ``len`` is ⌈N / batch_size⌉ batches. Single-process (no DDP sharding).
    """

    def __init__(self, base: EpochSeededSampler, labels: Sequence[int], batch_size: int) -> None:
        super().__init__()
        label_t = torch.as_tensor(list(labels), dtype=torch.long)
        num_classes = int(label_t.max()) + 1 if label_t.numel() else 0
        check_cover(batch_size, num_classes)
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
