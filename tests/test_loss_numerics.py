"""Float32 numerics of the losses at large logit gaps (confident predictions), against float64.

A fine-tuned BERT reaches logit gaps of 20–30 on easy examples; there float32 ``1 − p_t`` rounds
to 0. These tests pin what must hold there: finite gradients for focal at any γ ≥ 0 and DSC
values/gradients that follow the float64 curve instead of jumping (issue 11).
"""

from __future__ import annotations

import pytest
import torch

from dicebert.losses import build_loss
from dicebert.losses.base import log_probs_and_complements

F64 = torch.float64


def _gap_logits(gap: float, c: int = 5, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Two samples: target logit ``gap`` above the others (class 0), and a non-target-top row."""
    z = torch.zeros(2, c, dtype=dtype)
    z[0, 0] = gap
    z[1, 2] = gap  # the target (class 1) is not the top class: p_t tiny, 1 − p_t ≈ 1
    z[1, 1] = 0.5
    return z


TARGETS = torch.tensor([0, 1])


def _ref_focal(z: torch.Tensor, t: torch.Tensor, gamma: float) -> torch.Tensor:
    p = torch.softmax(z, 1)[torch.arange(len(t)), t]
    return (-((1 - p) ** gamma) * torch.log(p)).mean()


def _ref_dsc(z: torch.Tensor, t: torch.Tensor, alpha: float = 0.01, smooth: float = 1.0) -> torch.Tensor:
    p = torch.softmax(z, 1)
    y = torch.eye(z.shape[1], dtype=z.dtype)[t]
    pt = (1 - p) ** alpha * p
    return (1 - (2 * pt * y + smooth) / (pt**2 + y**2 + smooth)).sum(1).mean()


def _value_and_grad(fn, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = z.clone().requires_grad_()
    value = fn(x)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach(), grad


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 0.99, 1.0, 2.0])
@pytest.mark.parametrize("gap", [5.0, 17.0, 30.0, 80.0])
def test_focal_gradient_is_finite_and_right_at_large_gaps(gamma: float, gap: float) -> None:
    z32 = _gap_logits(gap)
    value, grad = _value_and_grad(lambda x: build_loss("focal", gamma=gamma)(x, TARGETS), z32)
    assert torch.isfinite(value) and torch.isfinite(grad).all(), (gamma, gap, grad)
    if gap <= 30:  # float64 itself resolves 1 − p_t up to a gap of about 30
        ref_value, ref_grad = _value_and_grad(lambda x: _ref_focal(x, TARGETS, gamma), z32.double())
        torch.testing.assert_close(value.double(), ref_value, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-4, atol=1e-7)


def test_focal_gamma_zero_is_cross_entropy_in_float32() -> None:
    z = _gap_logits(30.0)
    torch.testing.assert_close(build_loss("focal", gamma=0.0)(z, TARGETS), build_loss("ce")(z, TARGETS))


def test_class_balanced_focal_small_gamma_has_finite_gradient() -> None:
    loss = build_loss("class_balanced", class_counts=[50, 20, 10, 5, 2], gamma=0.5)
    _, grad = _value_and_grad(lambda x: loss(x, TARGETS), _gap_logits(30.0))
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("gap", [10.0, 16.0, 17.0, 18.0, 20.0, 25.0])
def test_dsc_follows_the_float64_curve_past_the_float32_cliff(gap: float) -> None:
    z32 = _gap_logits(gap)
    value, grad = _value_and_grad(lambda x: build_loss("dsc")(x, TARGETS), z32)
    ref_value, ref_grad = _value_and_grad(lambda x: _ref_dsc(x, TARGETS), z32.double())
    torch.testing.assert_close(value.double(), ref_value, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-3, atol=1e-9)


def test_dsc_is_monotone_in_the_gap_without_a_jump() -> None:
    """Per-sample DSC of a correct sample changes smoothly with the gap (it jumped 0.006 → 0.156)."""
    gaps = torch.arange(10.0, 60.0, 0.5)
    values = torch.stack([build_loss("dsc")(_gap_logits(float(g))[:1], TARGETS[:1]) for g in gaps])
    steps = values.diff()
    assert steps.abs().max() < 2e-3, steps.abs().max()


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_log_probs_and_complements_are_exact_at_both_ends(dtype: torch.dtype) -> None:
    z = torch.tensor([[40.0, 0.0, -3.0], [0.0, 0.1, 0.2], [-1e3, 0.0, 1e3]], dtype=dtype)
    log_p, log_1mp = log_probs_and_complements(z)
    exact_p = torch.softmax(z.double(), 1)
    # top class of row 0: 1 − p = (e^0 + e^−3) / (e^40 + …) ≈ e^−40, far below float32's epsilon
    expected = torch.log(torch.exp(torch.tensor([0.0, -3.0], dtype=F64)).sum()) - 40.0
    torch.testing.assert_close(log_1mp[0, 0].double(), expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(log_p.double().exp(), exact_p, rtol=1e-5, atol=0)
    torch.testing.assert_close(log_1mp[1].double(), torch.log1p(-exact_p[1]), rtol=1e-5, atol=0)
    assert torch.isfinite(log_p[:2]).all() and torch.isfinite(log_1mp).all()
