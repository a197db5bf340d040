"""Losses inside the model: LDAM's scale in the cosine head, deferred re-weighting (DRW) for every
re-weighting loss, and each loss's own probabilities for calibration metrics."""

from __future__ import annotations

import functools
from typing import Any

import lightning as L
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from dicebert.losses import LOSSES, build_loss, loss_defaults
from dicebert.models import ClassifierModule
from dicebert.models.classifier import COSINE_SCALE, CosineHead

F64 = torch.float64
COUNTS5 = [50, 20, 10, 5, 2]


def paper_ldam(cos: Tensor, t: Tensor, counts: list[int], max_margin: float, s: float) -> Tensor:
    """Cao et al. 2019, eq. (13) with their code's normalisation: CE(s·(cos − Δ_y e_y)), float64."""
    n = torch.tensor(counts, dtype=F64)
    delta = n**-0.25
    delta = delta / delta.max() * max_margin
    shifted = cos.clone()
    shifted[torch.arange(len(t)), t] -= delta[t]
    logp = torch.log_softmax(s * shifted, dim=1)
    return -logp[torch.arange(len(t)), t].mean()


@pytest.mark.parametrize(("s", "max_margin"), [(30.0, 0.5), (10.0, 1.0)])
def test_ldam_on_the_heads_scaled_logits_is_the_papers_loss(s: float, max_margin: float) -> None:
    g = torch.Generator().manual_seed(0)
    cos = torch.rand(32, 5, generator=g, dtype=F64) * 2 - 1
    t = torch.randint(0, 5, (32,), generator=g)
    loss = build_loss("ldam", class_counts=COUNTS5, scale=s, max_margin=max_margin)
    torch.testing.assert_close(
        loss(s * cos, t), paper_ldam(cos, t, COUNTS5, max_margin, s), rtol=1e-12, atol=0
    )


def test_cosine_head_outputs_scaled_logits_so_probabilities_can_be_confident() -> None:
    head = CosineHead(16, 5, scale=30.0)
    with torch.no_grad():
        features = head.weight[2:3] * 7.0  # aligned with class 2: cos = 1
        logits = head(features)
    assert logits[0, 2].item() == pytest.approx(30.0, rel=1e-5)
    assert logits.abs().max() <= 30.0 + 1e-4
    assert torch.softmax(logits, 1)[0, 2] > 0.99  # bare cosines capped this at 0.65
    with pytest.raises(ValueError, match="cosine_scale must be > 0"):
        CosineHead(16, 5, scale=0.0)


class TinyNet(nn.Module):
    """Bag-of-embeddings classifier standing in for BERT: the module only needs logits."""

    def __init__(self, num_classes: int, logit_scale: float = 1.0) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(50, 8)
        self.head = nn.Linear(8, num_classes)
        self.logit_scale = logit_scale

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        return self.head(self.embed(input_ids))


def _module(loss: Any, logit_scale: float = 1.0, **options: Any) -> ClassifierModule:
    return ClassifierModule(
        net=lambda num_classes: TinyNet(num_classes, logit_scale),
        loss=loss,
        class_names=[f"c{i}" for i in range(5)],
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        **options,
    )


def test_module_refuses_a_head_whose_scale_is_not_ldams() -> None:
    ldam = build_loss("ldam", class_counts=COUNTS5)  # s = 30
    with pytest.raises(ValueError, match=r"scale 30 .*model.net.head=cosine model.net.cosine_scale=30"):
        _module(ldam, logit_scale=1.0)  # a linear head
    _module(ldam, logit_scale=30.0)
    _module(build_loss("ldam", class_counts=COUNTS5, scale=1.0), logit_scale=1.0)
    _module(build_loss("ce"), logit_scale=30.0)  # losses without a stated scale take any head


def test_ldam_and_the_cosine_head_default_to_one_scale() -> None:
    """Two defaults in two rooms (the head's and the loss's): ``head=cosine loss=ldam`` needs both equal."""
    assert loss_defaults("ldam")["scale"] == COSINE_SCALE
    assert CosineHead(4, 3).scale == build_loss("ldam", class_counts=COUNTS5[:3]).logit_scale


# ----------------------------------------------------------------------------- DRW

REWEIGHTING = [
    ("weighted_ce", {}, ("ce", {})),
    ("focal", {"alpha": "inverse", "gamma": 1.0}, ("focal", {"gamma": 1.0})),
    ("class_balanced", {"base": "ce"}, ("ce", {})),
    ("ldam", {"scale": 1.0}, ("ldam", {"scale": 1.0})),
]


def _batch() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(4)
    return torch.randn(12, 5, generator=g, dtype=F64), torch.tensor([4, 4, 3, 0, 0, 0, 1, 2, 4, 3, 0, 1])


@pytest.mark.parametrize(("name", "opts", "plain"), REWEIGHTING, ids=[r[0] for r in REWEIGHTING])
@pytest.mark.parametrize(
    ("start", "before", "after"),
    [(2, (1, 0.9), (2, 0.1)), (0.5, (3, 0.49), (0, 0.5))],
    ids=["epoch", "fraction"],
)
def test_deferred_reweighting_switches_weights_on_at_drw_start(
    name: str, opts: dict, plain: tuple[str, dict], start: float, before: tuple, after: tuple
) -> None:
    z, t = _batch()
    unweighted = build_loss(plain[0], class_counts=COUNTS5, **plain[1])(z, t)
    weighted = build_loss(name, class_counts=COUNTS5, **opts, drw_start=0)
    weighted.set_progress(0, 0.0)
    weighted_value = weighted(z, t)
    assert not torch.isclose(weighted_value, unweighted)
    deferred = build_loss(name, class_counts=COUNTS5, **opts, drw_start=start)
    torch.testing.assert_close(deferred(z, t), unweighted)  # off until told otherwise
    deferred.set_progress(*before)
    torch.testing.assert_close(deferred(z, t), unweighted)
    deferred.set_progress(*after)
    torch.testing.assert_close(deferred(z, t), weighted_value)


def test_drw_start_is_validated() -> None:
    for bad in (1.0, 1.5, -1, True, "0.8"):
        with pytest.raises(ValueError, match="drw_start"):
            build_loss("weighted_ce", class_counts=COUNTS5, drw_start=bad)
    loss = build_loss("weighted_ce", class_counts=COUNTS5, drw_start=0.8)
    with pytest.raises(ValueError, match="no finite length"):
        loss.set_progress(3, None)


def _loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50, (40, 6), generator=g)
    labels = torch.arange(40) % 5
    data = [
        {"input_ids": ids[i : i + 8], "attention_mask": torch.ones(8, 6), "labels": labels[i : i + 8]}
        for i in range(0, 40, 8)
    ]
    return DataLoader(data, batch_size=None)  # 5 ready-made batches of 8


def test_module_reports_training_progress_to_the_loss() -> None:
    """A real Lightning fit: the loss sees (epoch, global_step / total) before every batch."""
    loss = build_loss("weighted_ce", class_counts=COUNTS5, drw_start=0.5)
    seen: list[tuple[int, float | None, bool]] = []
    set_progress = loss.set_progress

    def spy(epoch: int, fraction: float | None = None) -> None:
        set_progress(epoch, fraction)
        seen.append((epoch, fraction, loss.weights_active))

    loss.set_progress = spy  # type: ignore[method-assign]
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(_module(loss), train_dataloaders=_loader())
    assert [(e, f) for e, f, _ in seen] == [(e, s / 10) for e in (0, 1) for s in range(5 * e, 5 * e + 5)]
    assert [active for *_, active in seen] == [False] * 5 + [True] * 5


# ----------------------------------------------------------------------------- probabilities


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_each_loss_declares_the_probabilities_it_trains(name: str) -> None:
    z = torch.randn(6, 5, dtype=F64)
    probs = LOSSES[name].probabilities(z)
    if name == "seed_dice":  # trained through one-vs-rest sigmoids
        torch.testing.assert_close(probs, torch.sigmoid(z))
    else:
        torch.testing.assert_close(probs, torch.softmax(z, dim=1))


def test_module_scores_calibration_on_the_losss_probabilities() -> None:
    """seed_dice's ECE is measured on the sigmoids it trained, not on a softmax of its logits."""
    from torchmetrics.classification import MulticlassCalibrationError

    module = _module(build_loss("seed_dice"))
    batch = next(iter(_loader()))
    with torch.no_grad():
        logits = module(batch)
        module.test_step(batch, 0)
    ece = module.test_metrics.compute()["test/ece"]
    sigmoid_ece = MulticlassCalibrationError(5, n_bins=15, norm="l1")(torch.sigmoid(logits), batch["labels"])
    softmax_ece = MulticlassCalibrationError(5, n_bins=15, norm="l1")(
        torch.softmax(logits, 1), batch["labels"]
    )
    torch.testing.assert_close(ece, sigmoid_ece)
    assert not torch.isclose(ece, softmax_ece)


def test_head_learning_rate_multiplier_gives_the_head_its_own_groups() -> None:
    module = _module(build_loss("ce"), head_lr_multiplier=10.0, weight_decay=0.05)
    groups = module.param_groups()
    head = {id(p) for p in module.net.head.parameters()}
    assert [("lr" in g, g["weight_decay"]) for g in groups] == [
        (False, 0.05),  # encoder weights
        (True, 0.05),  # head weight
        (True, 0.0),  # head bias
    ]
    assert all(id(p) in head for g in groups if "lr" in g for p in g["params"])
    assert all(g["lr"] == pytest.approx(1.0) for g in groups if "lr" in g)  # 10 × the SGD lr 0.1
    optimizer = torch.optim.SGD(groups, lr=0.1)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.1, 1.0, 1.0])
    plain = _module(build_loss("ce")).param_groups()  # multiplier 1: the two classic groups
    assert [("lr" in g, g["weight_decay"]) for g in plain] == [(False, 0.01), (False, 0.0)]
    with pytest.raises(ValueError, match="head_lr_multiplier must be > 0"):
        _module(build_loss("ce"), head_lr_multiplier=0.0)


def test_predict_step_returns_the_raw_float32_logits() -> None:
    """Post-hoc logit adjustment needs logits (scaled ones for the cosine head), not probabilities."""
    module = _module(build_loss("ldam", class_counts=COUNTS5, scale=30.0), logit_scale=30.0)
    batch = next(iter(_loader()))
    with torch.no_grad():
        logits = module.predict_step(batch, 0)
        torch.testing.assert_close(logits, module(batch).float())
    assert logits.dtype == torch.float32 and logits.shape == (8, 5)
