"""One method, one row: aliases and the registry's "identical by construction" queries.

Every claim :func:`equivalent` makes is checked against the losses' values, so the registry
cannot call two different objectives one.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch

from dicebert.losses import ALIASES, LOSSES, build_loss, canonical_name, equivalent, weight_deviation
from dicebert.priors import effective_class_counts

F64 = torch.float64
UNIFORM = [40] * 5
LONG_TAIL = [300, 95, 30, 9, 3]  # BBC News at ρ = 100 (5 classes, the tail class has 3)


def _values_equal(a: tuple[str, dict[str, Any]], b: tuple[str, dict[str, Any]], counts: list) -> bool:
    g = torch.Generator().manual_seed(1)
    z, t = torch.randn(20, 5, generator=g, dtype=F64), torch.randint(0, 5, (20,), generator=g)
    la = build_loss(a[0], class_counts=counts, **a[1])
    lb = build_loss(b[0], class_counts=counts, **b[1])
    for loss in (la, lb):
        loss.set_progress(10, 0.99)  # past any drw_start
    return bool(torch.isclose(la(z, t), lb(z, t), rtol=1e-10, atol=1e-12))


def test_balanced_softmax_is_an_alias_of_logit_adjusted_at_tau_one() -> None:
    assert ALIASES["balanced_softmax"] == ("logit_adjusted", {"tau": 1.0})
    assert LOSSES["balanced_softmax"] is LOSSES["logit_adjusted"]
    assert canonical_name("balanced_softmax") == "logit_adjusted" and canonical_name("ce") == "ce"
    assert build_loss("balanced_softmax", class_counts=LONG_TAIL).tau == 1.0
    with pytest.raises(ValueError, match=r"'balanced_softmax' is 'logit_adjusted' with tau=1.0 fixed"):
        build_loss("balanced_softmax", class_counts=LONG_TAIL, tau=0.5)
    assert equivalent("balanced_softmax", {}, "logit_adjusted", {}, LONG_TAIL)
    assert not equivalent("balanced_softmax", {}, "logit_adjusted", {"tau": 0.5}, LONG_TAIL)


# (a, b, counts, identical?): each row is checked against the losses' values too
CASES = [
    (("balanced_softmax", {}), ("logit_adjusted", {"tau": 1.0}), LONG_TAIL, True),
    (("logit_adjusted", {}), ("ce", {}), UNIFORM, True),
    (("logit_adjusted", {}), ("ce", {}), LONG_TAIL, False),
    (("logit_adjusted", {"tau": 0.0}), ("ce", {}), LONG_TAIL, True),
    (("weighted_ce", {}), ("ce", {}), UNIFORM, True),
    (("weighted_ce", {"weighting": "sqrt"}), ("ce", {}), UNIFORM, True),
    (("weighted_ce", {"drw_start": 2}), ("ce", {}), UNIFORM, True),
    (("weighted_ce", {}), ("ce", {}), LONG_TAIL, False),
    (("weighted_ce", {}), ("weighted_ce", {"drw_start": 0.5}), LONG_TAIL, False),
    (("class_balanced", {"base": "ce"}), ("ce", {}), UNIFORM, True),
    (("class_balanced", {"base": "ce"}), ("weighted_ce", {"weighting": "effective_number"}), LONG_TAIL, True),
    (("class_balanced", {}), ("focal", {"alpha": "effective_number"}), LONG_TAIL, True),
    (("class_balanced", {"base": "ce"}), ("weighted_ce", {}), LONG_TAIL, False),
    (("focal", {"gamma": 0.0}), ("ce", {}), LONG_TAIL, True),
    (("focal", {"alpha": "inverse"}), ("focal", {}), UNIFORM, True),
    (("focal", {"alpha": [2.0] * 5}), ("focal", {}), UNIFORM, False),  # twice the loss
    (("tversky", {"alpha": 0.5, "beta": 0.5, "smooth": 0.5}), ("dice", {"squared": False}), LONG_TAIL, True),
    (("tversky", {}), ("dice", {"squared": False}), LONG_TAIL, False),
    (("dice_ce", {"lambda_ce": 0.0}), ("dice", {}), LONG_TAIL, True),
    (("dice_ce", {"lambda_dice": 0.0}), ("ce", {}), LONG_TAIL, True),
    (("dsc", {}), ("dice", {}), LONG_TAIL, False),
    (("ldam", {"drw_start": 1}), ("ldam", {}), LONG_TAIL, False),
]


@pytest.mark.parametrize(("a", "b", "counts", "same"), CASES, ids=[f"{c[0][0]}-{c[1][0]}" for c in CASES])
def test_equivalent_is_exact_and_checked_against_values(a, b, counts, same: bool) -> None:
    assert equivalent(*a, *b, counts) is same
    assert equivalent(*b, *a, counts) is same
    if same:
        assert _values_equal(a, b, counts)
    elif "drw_start" not in a[1] | b[1]:  # a deferral differs before drw_start, not after
        assert not _values_equal(a, b, counts)


def test_inverse_sampler_makes_prior_losses_plain_cross_entropy() -> None:
    seen = effective_class_counts(LONG_TAIL, "inverse")
    for name in ("logit_adjusted", "balanced_softmax", "weighted_ce"):
        assert equivalent(name, {}, "ce", {}, seen), name
        assert not equivalent(name, {}, "ce", {}, LONG_TAIL), name


def test_class_balanced_near_inverse_is_flagged_by_weight_deviation(caplog) -> None:
    """At ρ = 100 on BBC News, β = 0.999 is inverse-frequency weighting within 16%."""
    near = weight_deviation("class_balanced", {"base": "ce"}, "weighted_ce", {}, LONG_TAIL)
    assert 0.1 < near < 0.2
    far = weight_deviation("class_balanced", {"base": "ce", "beta": 0.9}, "weighted_ce", {}, LONG_TAIL)
    assert far > 0.5
    assert equivalent("class_balanced", {"base": "ce", "beta": 1 - 1e-9}, "weighted_ce", {}, LONG_TAIL, 1e-6)
    assert weight_deviation("class_balanced", {}, "weighted_ce", {}, LONG_TAIL) == float("inf")  # focal ≠ CE
    with caplog.at_level(logging.WARNING, logger="dicebert"):
        build_loss("class_balanced", class_counts=LONG_TAIL)
    assert "within 15% of inverse frequency" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dicebert"):
        build_loss("class_balanced", class_counts=LONG_TAIL, beta=0.9)
    assert caplog.text == ""


def test_canonical_needs_counts_only_for_count_dependent_losses() -> None:
    assert equivalent("ce", {}, "ce", {"label_smoothing": 0.0})
    assert not equivalent("ce", {}, "ce", {"label_smoothing": 0.1})
    with pytest.raises(ValueError, match="needs the class counts"):
        equivalent("weighted_ce", {}, "ce", {})
    with pytest.raises(ValueError, match="unknown loss 'foo'"):
        equivalent("foo", {}, "ce", {})
