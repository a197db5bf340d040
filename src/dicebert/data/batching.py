"""Length-grouped batches: batches of similar lengths, so the collator pads almost nothing.

Dynamic padding pads each batch to its longest member; with random batches of short texts one
long text still makes the whole batch long. :class:`LengthGroupedBatchSampler` takes the indices
the epoch's sampler drew (shuffled or class-weighted: the draws, and so the class balance, stay
exactly the sampler's), cuts them into windows of ``group_batches`` batches, sorts each window by
length, cuts it into batches and shuffles the batch order. Every draw depends only on
``(seed, epoch)``, like :class:`~dicebert.data.sampling.EpochSeededSampler`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import BatchSampler, Sampler


class LengthGroupedBatchSampler(BatchSampler):
    """Batches of the sampler's draws grouped by length, in shuffled order.

    ``lengths[i]`` is the token count of example ``i``. ``group_batches`` sets the window that is
    sorted: larger windows pad less but mix fewer random neighbours into each batch (the window
    is random, so the batches stay random samples of the epoch's draws).

    Lightning calls ``set_epoch`` on ``batch_sampler.sampler``; the batch order is seeded from that
    sampler's epoch, so resuming at an epoch boundary replays the same batches.
    """

    def __init__(
        self,
        sampler: Sampler[int],
        batch_size: int,
        drop_last: bool = False,
        lengths: Sequence[int] = (),
        group_batches: int = 50,
        seed: int = 0,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        if group_batches < 1:
            raise ValueError(f"group_batches must be >= 1; got {group_batches}")
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.long)
        if self.lengths.numel() == 0:
            raise ValueError("lengths must give the token count of every example")
        self.group_batches = group_batches
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Forward to the sampler (whose epoch seeds its draws) and keep our own counter in step."""
        self.epoch = epoch
        set_epoch = getattr(self.sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)

    def _epoch(self) -> int:
        """The epoch of this pass: the sampler's if it keeps one (EpochSeededSampler does)."""
        epoch = getattr(self.sampler, "epoch", None)
        if isinstance(epoch, int):
            self.epoch = epoch
            return epoch
        return self.epoch

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self._epoch()
        drawn = torch.as_tensor(list(self.sampler), dtype=torch.long)  # the sampler's draws, in order
        self.epoch = epoch + 1
        window = self.batch_size * self.group_batches
        batches: list[torch.Tensor] = []
        for start in range(0, drawn.numel(), window):
            chunk = drawn[start : start + window]
            # stable sort: ties keep the sampler's random order
            chunk = chunk[torch.sort(self.lengths[chunk], descending=True, stable=True).indices]
            batches.extend(chunk.split(self.batch_size))
        if self.drop_last and batches and batches[-1].numel() < self.batch_size:
            batches.pop()  # windows are whole batches, so only the last batch can be short
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch + 1_000_000_007)
        for position in torch.randperm(len(batches), generator=generator).tolist():
            yield batches[position].tolist()

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        if self.drop_last:
            return n // self.batch_size
        # each window but the last is a whole number of batches, so only the last can be short
        return (n + self.batch_size - 1) // self.batch_size
