"""Batch-level losses under DDP: two gloo ranks, half a batch each, get the one-device loss and gradient."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dicebert.losses import ALIASES, LOSSES, build_loss

COUNTS = [40, 12, 3]


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 3, generator=generator, dtype=torch.float64) * 2
    return logits, torch.tensor([0, 0, 1, 0, 2, 0, 1, 0])  # the tail (2) only in rank 1's half


#: Every batch-level loss (``batch_level = True``), with its absent-class variants.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("dice", {}),
    ("dice", {"absent": "mask"}),
    ("dice", {"ema": 0.9}),
    ("dice_ce", {}),
    ("seed_dice", {}),
    ("tversky", {}),
    ("tversky", {"absent": "mask"}),
    ("generalized_dice", {}),
]


def _rank(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        logits, targets = _batch()
        for case, (name, options) in enumerate(CASES):
            half = logits[rank * 4 : (rank + 1) * 4].clone().requires_grad_(True)
            loss = build_loss(name, class_counts=COUNTS, **options)(half, targets[rank * 4 : (rank + 1) * 4])
            loss.backward()
            assert half.grad is not None
            grad = half.grad / world  # what DDP's gradient averaging does to every parameter's gradient
            torch.save({"loss": loss.detach(), "grad": grad}, f"{out}/case{case}-rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_every_batch_level_loss_on_two_ranks_matches_one_device(tmp_path: Path) -> None:
    batch_level = {name for name, cls in LOSSES.items() if cls.batch_level and name not in ALIASES}
    assert {name for name, _ in CASES} == batch_level  # a new batch-level loss joins this test
    mp.spawn(_rank, args=(2, f"file://{tmp_path}/init", str(tmp_path)), nprocs=2, join=True)
    for case, (name, options) in enumerate(CASES):
        logits, targets = _batch()
        logits.requires_grad_(True)
        loss = build_loss(name, class_counts=COUNTS, **options)(logits, targets)
        loss.backward()
        assert logits.grad is not None
        label = f"{name} {options}"
        ranks = [torch.load(tmp_path / f"case{case}-rank{r}.pt") for r in (0, 1)]
        # the ratio is the global batch's on every rank; dice_ce's CE term is each rank's half-batch
        # mean, so there only the ranks' average is the global loss (and the gradient still equal)
        losses = torch.stack([got["loss"] for got in ranks])
        if name == "dice_ce":
            losses, expected = losses.mean(), loss.detach()
        else:
            expected = loss.detach().expand(2)
        torch.testing.assert_close(losses, expected, msg=lambda m, x=label: f"{x}: {m}")
        for r, got in enumerate(ranks):
            half = logits.grad[r * 4 : (r + 1) * 4]
            torch.testing.assert_close(got["grad"], half, msg=lambda m, x=label: f"{x}: {m}")
