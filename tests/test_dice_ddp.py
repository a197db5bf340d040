"""Dice under DDP: two gloo ranks with half a batch each get the one-device loss and gradient."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dicebert.losses import build_loss

COUNTS = [40, 12, 3]


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 3, generator=generator, dtype=torch.float64) * 2
    return logits, torch.tensor([0, 0, 1, 0, 2, 0, 1, 0])  # the tail (2) only in rank 1's half


def _rank(rank: int, world: int, init: str, out: str, options: dict) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        logits, targets = _batch()
        half = logits[rank * 4 : (rank + 1) * 4].clone().requires_grad_(True)
        loss = build_loss("dice", class_counts=COUNTS, **options)(half, targets[rank * 4 : (rank + 1) * 4])
        loss.backward()
        assert half.grad is not None
        grad = half.grad / world  # what DDP's gradient averaging does to every parameter's gradient
        torch.save({"loss": loss.detach(), "grad": grad}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_match_one_device(tmp_path: Path) -> None:
    for options in ({}, {"absent": "mask"}):
        init = f"file://{tmp_path}/init{len(options)}"
        mp.spawn(_rank, args=(2, init, str(tmp_path), options), nprocs=2, join=True)
        logits, targets = _batch()
        logits.requires_grad_(True)
        loss = build_loss("dice", class_counts=COUNTS, **options)(logits, targets)
        loss.backward()
        ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
        for r, got in enumerate(ranks):
            torch.testing.assert_close(got["loss"], loss.detach())  # the global batch's Dice on each rank
            torch.testing.assert_close(got["grad"], logits.grad[r * 4 : (r + 1) * 4])
