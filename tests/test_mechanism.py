"""The mechanism behind a dying tail class, measured: batch presence and gradient share per class."""

from __future__ import annotations

import pytest
import torch

from dicebert.losses import build_loss
from dicebert.reporting.mechanism import ClassSignalMonitor
from dicebert.train import train


def test_a_run_records_presence_and_gradient_share_of_every_class(make_cfg) -> None:
    cfg = make_cfg("loss=ce", "data.limit_per_class=40", "data.imbalance_ratio=8")
    record = train(cfg)
    names = [k.split("/")[-1] for k in record if k.startswith("train/count/")]
    presence = {n: record[f"train/presence/{n}"] for n in names}
    share = {n: record[f"train/grad_share/{n}"] for n in names}
    assert sum(share.values()) == pytest.approx(1.0, abs=1e-6)
    head = max(names, key=lambda n: record[f"train/count/{n}"])
    tail = min(names, key=lambda n: record[f"train/count/{n}"])
    assert 0 < presence[tail] < presence[head] <= 1.0  # the tail misses batches


def test_gradient_share_is_the_logit_gradient_per_class() -> None:
    """For cross-entropy ∂L/∂z = (softmax(z) − onehot(y)) / N: the monitor reports its column mass."""
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 3).train()
    monitor = ClassSignalMonitor()
    hook = head.register_forward_hook(monitor._on_logits)
    logits = head(torch.randn(16, 8))
    targets = torch.tensor([0] * 12 + [1] * 4)  # class 2 absent from the batch
    build_loss("ce")(logits, targets).backward()
    hook.remove()
    expected = (logits.detach().softmax(-1) - torch.nn.functional.one_hot(targets, 3)).abs().sum(0) / 16
    assert monitor.grad_mass is not None
    assert torch.allclose(monitor.grad_mass, expected, atol=1e-6)
    head.eval()  # evaluation forwards record nothing
    head(torch.randn(4, 8)).sum()
    assert torch.allclose(monitor.grad_mass, expected, atol=1e-6)
