"""Priors from what the model sees: a rebalancing sampler changes the class distribution the
loss must correct for; and one class-weight function for losses and samplers."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

import pytest
import torch

import dicebert.losses
from dicebert.data.sampling import build_sampler
from dicebert.losses import build_loss
from dicebert.losses.base import class_weights as loss_class_weights
from dicebert.priors import class_weights, effective_class_counts

COUNTS = [50, 20, 10, 5, 2]


def test_effective_counts_of_each_sampler() -> None:
    n = sum(COUNTS)
    assert effective_class_counts(COUNTS, "none") == COUNTS
    assert effective_class_counts(COUNTS, "inverse") == pytest.approx([n / 5] * 5)
    sqrt = torch.tensor(COUNTS, dtype=torch.float64).sqrt()
    assert effective_class_counts(COUNTS, "sqrt") == pytest.approx((sqrt * n / sqrt.sum()).tolist())
    eff = effective_class_counts(COUNTS, "effective_number", beta=0.9)
    assert sum(eff) == pytest.approx(n)
    assert eff[0] < COUNTS[0] and eff[-1] > COUNTS[-1]  # flatter than the raw counts


@pytest.mark.parametrize("scheme", ["inverse", "sqrt", "effective_number"])
def test_the_samplers_draws_follow_the_effective_counts(scheme: str) -> None:
    labels = [c for c, n in enumerate(COUNTS) for _ in range(n)]
    sampler = build_sampler(labels, COUNTS, scheme, seed=0, beta=0.9)
    drawn = Counter(labels[i] for _ in range(300) for i in sampler)
    shares = torch.tensor([drawn[c] for c in range(5)], dtype=torch.float64)
    expected = torch.tensor(effective_class_counts(COUNTS, scheme, beta=0.9), dtype=torch.float64)
    torch.testing.assert_close(shares / shares.sum(), expected / expected.sum(), atol=0.01, rtol=0)


def test_inverse_sampler_with_logit_adjustment_is_cross_entropy() -> None:
    """Balanced batches have a uniform prior: logit adjustment and re-weighting must undo nothing."""
    g = torch.Generator().manual_seed(0)
    z, t = torch.randn(16, 5, generator=g), torch.randint(0, 5, (16,), generator=g)
    seen = effective_class_counts(COUNTS, "inverse")
    ce = build_loss("ce")(z, t)
    torch.testing.assert_close(build_loss("logit_adjusted", class_counts=seen)(z, t), ce)
    torch.testing.assert_close(build_loss("balanced_softmax", class_counts=seen)(z, t), ce)
    torch.testing.assert_close(build_loss("weighted_ce", class_counts=seen)(z, t), ce)
    # and the raw counts would have corrected a second time
    assert not torch.isclose(build_loss("logit_adjusted", class_counts=COUNTS)(z, t), ce)


def test_unknown_sampler_scheme_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match=r"data.sampler='balanced' is not one of inverse, sqrt"):
        effective_class_counts(COUNTS, "balanced")
    with pytest.raises(ValueError, match=r"data.sampler_beta must be in \[0, 1\)"):
        effective_class_counts(COUNTS, "effective_number", beta=1.0)


def test_one_class_weight_function_exact_near_beta_one() -> None:
    """Samplers and losses share the −expm1 form; the sampler's old 1 − β^n was off by 5e-11 here."""
    assert class_weights is loss_class_weights
    beta, counts = 1.0 - 1e-13, [1, 2, 3, 7, 1000]
    exact = [(1 - Fraction(beta)) / (1 - Fraction(beta) ** n) for n in counts]
    exact = [float(w * len(counts) / sum(exact)) for w in exact]
    got = class_weights(counts, "effective_number", beta)
    torch.testing.assert_close(got, torch.tensor(exact, dtype=torch.float64), rtol=1e-13, atol=0)


def test_training_builds_the_loss_from_the_samplers_effective_counts(make_cfg, monkeypatch) -> None:
    """train() hands the loss the class distribution of the batches, not the raw counts."""
    seen: dict[str, list[float]] = {}

    class Built(Exception):
        pass

    def spy(name: str, class_counts: list[float] | None = None, **options: object) -> None:
        seen["counts"] = list(class_counts or [])
        raise Built

    monkeypatch.setattr(dicebert.losses, "build_loss", spy)
    from dicebert.train import train

    cfg = make_cfg("loss=logit_adjusted", "data.sampler=inverse", "callbacks=none")
    with pytest.raises(Exception) as err:  # Hydra may wrap the spy's exception
        train(cfg)
    assert isinstance(err.value, Built) or isinstance(err.value.__cause__, Built), err.value
    counts = seen["counts"]
    assert len(counts) == 5 and max(counts) == pytest.approx(min(counts))
