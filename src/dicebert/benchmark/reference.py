"""The write-up's training loop, kept as the baseline the project is measured against.

Not part of the library: nothing outside :mod:`dicebert.benchmark` uses it. It reproduces the
write-up's choices that cost time: a per-class Python loop in the Dice loss, every text padded to
``max_length`` by the tokenizer, and a bare PyTorch step (no framework).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase


def writeup_dice_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """``−mean_c 2Σp·y / (Σp² + Σy² + 1e-8)`` with sigmoid p, one class per Python iteration."""
    probs = torch.sigmoid(logits)
    dice = []
    for c in range(logits.shape[1]):
        p = probs[:, c]
        y = (targets == c).float()
        dice.append(2.0 * (p * y).sum() / ((p**2).sum() + (y**2).sum() + 1e-8))
    return -torch.stack(dice).mean()


def writeup_collator(tokenizer: PreTrainedTokenizerBase, max_length: int) -> DataCollatorWithPadding:
    """Every batch padded to ``max_length``: the same tensors as ``tokenizer(..., padding="max_length")``."""
    return DataCollatorWithPadding(tokenizer, padding="max_length", max_length=max_length)


def param_groups(net: nn.Module, weight_decay: float) -> list[dict]:
    """The project's AdamW groups (no decay on biases/LayerNorm), so both loops do the same update."""
    decay = [p for p in net.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in net.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def writeup_step(
    net: nn.Module,
    batch: dict[str, Tensor],
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    clip_norm: float | None = None,
) -> float:
    """One plain PyTorch training step: forward, loss, backward, (clip), step; returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    logits = net(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        token_type_ids=batch.get("token_type_ids"),
    )
    loss = loss_fn(logits, batch["labels"])
    loss.backward()
    if clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip_norm)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return float(loss.detach())
