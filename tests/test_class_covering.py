"""ClassCoveringBatchSampler on BBC News at ρ = 100: every class in every batch, seeded draws,
and the class mix the loss is told about."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from dicebert.data import BBCNews
from dicebert.data.imbalance import make_long_tailed
from dicebert.data.sampling import ClassCoveringBatchSampler, build_sampler
from dicebert.priors import effective_class_counts


@pytest.fixture(scope="module")
def tail_labels() -> tuple[list[int], list[int]]:
    """Labels of BBC News titles subsampled to ρ = 100 (head to tail), as class ids 0..4."""
    frame = make_long_tailed(BBCNews(text_field="title").load().train, ratio=100, seed=0)
    order = [name for name, _ in Counter(frame["label"]).most_common()]
    labels = [order.index(name) for name in frame["label"]]
    counts = [labels.count(c) for c in range(len(order))]
    return labels, counts


def _batches(labels: list[int], counts: list[int], scheme: str, epoch: int, batch_size: int = 16) -> list:
    sampler = ClassCoveringBatchSampler(build_sampler(labels, counts, scheme, seed=3), labels, batch_size)
    sampler.set_epoch(epoch)
    return list(sampler)


def test_every_batch_holds_every_class(tail_labels) -> None:
    labels, counts = tail_labels
    assert counts[-1] <= 10 and counts[0] >= 100 * counts[-1] * 0.9  # a real long tail
    # with plain shuffling, most batches of 16 miss the tail class
    plain = list(build_sampler(labels, counts, "none", seed=3))
    plain_batches = [plain[i : i + 16] for i in range(0, len(plain), 16)]
    assert sum(any(labels[i] == 4 for i in b) for b in plain_batches) < len(plain_batches) / 2
    for scheme in ("none", "sqrt"):
        batches = _batches(labels, counts, scheme, epoch=0)
        assert len(batches) == -(-len(labels) // 16)
        assert all(len(b) == 16 and {labels[i] for i in b} == set(range(5)) for b in batches)
    # a tail example recurs as evenly as possible: each of the n_tail examples ⌊B/n⌋ or ⌈B/n⌉ times
    tail_uses = Counter(i for b in _batches(labels, counts, "none", 0) for i in b[4:5])
    assert max(tail_uses.values()) - min(tail_uses.values()) <= 1 and len(tail_uses) == counts[-1]


def test_draws_depend_only_on_seed_and_epoch(tail_labels) -> None:
    labels, counts = tail_labels
    assert _batches(labels, counts, "none", 2) == _batches(labels, counts, "none", 2)
    assert _batches(labels, counts, "none", 2) != _batches(labels, counts, "none", 3)


@pytest.mark.parametrize("scheme", ["none", "inverse"])
def test_class_mix_matches_effective_counts(tail_labels, scheme: str) -> None:
    labels, counts = tail_labels
    drawn = Counter(
        labels[i] for epoch in range(60) for b in _batches(labels, counts, scheme, epoch) for i in b
    )
    shares = torch.tensor([drawn[c] for c in range(5)], dtype=torch.float64)
    expected = torch.tensor(effective_class_counts(counts, scheme, cover_batch_size=16), dtype=torch.float64)
    torch.testing.assert_close(shares / shares.sum(), expected / expected.sum(), atol=0.01, rtol=0)
    assert sum(expected.tolist()) == pytest.approx(sum(counts))


def test_batch_smaller_than_the_class_count_is_refused(tail_labels) -> None:
    labels, counts = tail_labels
    with pytest.raises(ValueError, match=r"data\.batch_size=4 cannot hold one example of each of the 5"):
        ClassCoveringBatchSampler(build_sampler(labels, counts, "none", seed=0), labels, 4)
    with pytest.raises(ValueError, match=r"data\.batch_size=3"):
        effective_class_counts(counts, "none", cover_batch_size=3)


def test_datamodule_cover_classes_feeds_every_class_to_every_batch(make_cfg) -> None:
    """``data.cover_classes=true`` reaches training: each batch the model sees holds every class."""
    from hydra.utils import instantiate

    cfg = make_cfg("data.cover_classes=true", "data.imbalance_ratio=6", "data.limit_per_class=40")
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    batches = [b["labels"].tolist() for b in datamodule.train_dataloader()]
    assert len(batches) == -(-len(datamodule.datasets["train"]) // cfg.data.batch_size)
    assert all(set(b) == set(range(datamodule.num_classes)) for b in batches)
    plain = instantiate(cfg.data, cover_classes=False)
    plain.setup("fit")
    assert not all(set(b["labels"].tolist()) == set(range(5)) for b in plain.train_dataloader())
    with pytest.raises(Exception, match=r"data\.cover_classes and data\.group_by_length"):
        instantiate(cfg.data, group_by_length=True)  # Hydra wraps the DataError; the message is ours
