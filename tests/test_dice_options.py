"""Dice-family options for rare classes: absent-class masking and running (EMA) statistics,
against float64 references written from the formulas."""

from __future__ import annotations

import pytest
import torch

from dicebert.losses import build_loss

F64 = torch.float64
C = 5


def _batch(seed: int, classes: list[int], n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = torch.tensor(classes, dtype=torch.long)[torch.randint(0, len(classes), (n,), generator=g)]
    return 2.0 * torch.randn(n, C, generator=g, dtype=F64), t


def _sums(z: torch.Tensor, t: torch.Tensor, k: int = 2) -> torch.Tensor:
    p = torch.exp(z) / torch.exp(z).sum(1, keepdim=True)
    y = torch.eye(C, dtype=F64)[t]
    return torch.stack([(p * y).sum(0), (p**k).sum(0), (y**k).sum(0)])


def _ref_dice(s: torch.Tensor, mask: bool, snr: float = 1.0, sdr: float = 1.0) -> torch.Tensor:
    dice = (2 * s[0] + snr) / (s[1] + s[2] + sdr)
    keep = s[2] > 0 if mask else torch.ones(C, dtype=torch.bool)
    return 1 - dice[keep].mean()


def _grad(fn, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = z.clone().requires_grad_()
    value = fn(x)
    (g,) = torch.autograd.grad(value, x)
    return value.detach(), g


def test_mask_averages_dice_over_the_classes_in_the_batch() -> None:
    z, t = _batch(0, [0, 1, 2])  # classes 3 and 4 absent
    got = _grad(lambda x: build_loss("dice", absent="mask")(x, t), z)
    ref = _grad(lambda x: _ref_dice(_sums(x, t), mask=True), z)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    smooth = build_loss("dice")(z, t)
    assert not torch.isclose(smooth, got[0])
    z, t = _batch(1, [0, 1, 2, 3, 4], n=40)  # every class present: the two agree
    assert set(t.tolist()) == set(range(C))
    torch.testing.assert_close(build_loss("dice", absent="mask")(z, t), build_loss("dice")(z, t))


def test_mask_removes_the_reward_for_starving_an_absent_class() -> None:
    """Smoothed Dice gets better as an absent class's probability drops; masked Dice does not care."""
    z, t = _batch(2, [0, 1, 2, 3])  # the tail class 4 absent
    lower_tail = z.clone()
    lower_tail[:, 4] -= 5.0
    smooth, mask = build_loss("dice"), build_loss("dice", absent="mask")
    assert smooth(lower_tail, t) < smooth(z, t) - 1e-3
    # masked: class 4 matters only through the softmax normalisation of the present classes
    ref = _ref_dice(_sums(lower_tail, t), mask=True)
    torch.testing.assert_close(mask(lower_tail, t), ref)


def test_tversky_mask_matches_reference() -> None:
    z, t = _batch(3, [0, 2])
    p = torch.softmax(z, 1)
    y = torch.eye(C, dtype=F64)[t]
    tp, fp, fn = (p * y).sum(0), (p * (1 - y)).sum(0), ((1 - p) * y).sum(0)
    index = (tp + 1.0) / (tp + 0.3 * fp + 0.7 * fn + 1.0)
    torch.testing.assert_close(build_loss("tversky", absent="mask")(z, t), 1 - index[[0, 2]].mean())


@pytest.mark.parametrize("name", ["dice", "dice_ce"])
def test_ema_statistics_follow_the_running_average_reference(name: str) -> None:
    m = 0.8
    loss = build_loss(name, class_counts=[10, 8, 6, 4, 2], ema=m)
    loss.train()
    batches = [_batch(10, [0, 1, 2, 3, 4]), _batch(11, [0, 1]), _batch(12, [0, 2, 4])]
    running = None
    for z, t in batches:
        s = _sums(z, t)  # reference: first batch starts the running sums
        prev = s.detach() if running is None else running
        got = _grad(lambda x, t=t: loss(x, t), z)

        def ref(x: torch.Tensor, t: torch.Tensor = t, prev: torch.Tensor = prev) -> torch.Tensor:
            dice = _ref_dice(m * prev + (1 - m) * _sums(x, t), mask=False)
            if name == "dice_ce":
                return dice + torch.nn.functional.cross_entropy(x, t)
            return dice

        torch.testing.assert_close(got, _grad(ref, z), rtol=1e-10, atol=1e-12)
        running = m * prev + (1 - m) * s
    # the tail class (4) was absent from the last-but-one batch, yet its running Σy stayed > 0
    dice = loss if name == "dice" else loss.dice
    assert dice.running[2, 4] > 0
    torch.testing.assert_close(dice.running, running)


def test_mask_with_ema_masks_the_classes_absent_from_this_batch() -> None:
    """Presence is the batch's: the running Σy stays > 0 after a class's first batch, so a mask read
    from it would never act again (the recipe would be plain EMA-Dice under another name)."""
    m = 0.8
    loss = build_loss("dice", class_counts=[10, 8, 6, 4, 2], ema=m, absent="mask").train()
    z0, t0 = _batch(20, [0, 1, 2, 3, 4])
    loss(z0, t0)
    prev = _sums(z0, t0)
    z1, t1 = _batch(21, [0, 1])  # classes 2–4 absent here, present in the running sums
    got = _grad(lambda x: loss(x, t1), z1)

    def ref(x: torch.Tensor) -> torch.Tensor:
        s = m * prev + (1 - m) * _sums(x, t1)
        dice = (2 * s[0] + 1.0) / (s[1] + s[2] + 1.0)
        return 1 - dice[[0, 1]].mean()

    torch.testing.assert_close(got, _grad(ref, z1), rtol=1e-10, atol=1e-12)
    unmasked = build_loss("dice", class_counts=[10, 8, 6, 4, 2], ema=m).train()
    unmasked(z0, t0)
    assert not torch.isclose(unmasked(z1, t1), got[0])


def test_ema_updates_only_in_training_and_is_checkpointed() -> None:
    counts = [10, 8, 6, 4, 2]
    loss = build_loss("dice", class_counts=counts, ema=0.9)
    z1, t1 = _batch(20, [0, 1, 2, 3, 4])
    z2, t2 = _batch(21, [0, 1])
    loss.train()
    loss(z1, t1)
    state = {k: v.clone() for k, v in loss.state_dict().items()}
    assert set(state) == {"running", "running_started"}
    loss.eval()
    first = loss(z2, t2)
    assert torch.equal(loss.running, state["running"])  # validation does not move the statistics
    restored = build_loss("dice", class_counts=counts, ema=0.9)
    restored.load_state_dict(state)  # a resumed run continues from the saved sums
    restored.eval()
    torch.testing.assert_close(restored(z2, t2), first)
    assert not torch.isclose(first, build_loss("dice")(z2, t2))
    # momentum 0: every batch on its own, the plain loss
    zero = build_loss("dice", class_counts=counts, ema=0.0).train()
    for z, t in ((z1, t1), (z2, t2)):
        torch.testing.assert_close(zero(z, t), build_loss("dice")(z, t))


def test_dice_option_errors() -> None:
    with pytest.raises(ValueError, match="absent='drop' is not one of smooth, mask"):
        build_loss("dice", absent="drop")
    with pytest.raises(ValueError, match=r"ema .* must be in \[0, 1\)"):
        build_loss("dice_ce", ema=1.0)


def test_prior_adjusted_dice_matches_reference_and_needs_counts() -> None:
    counts = [300, 95, 30, 9, 3]
    log_prior = torch.log(torch.tensor(counts, dtype=F64) / sum(counts))
    z, t = _batch(30, [0, 1, 2, 3, 4], n=12)
    for tau in (0.5, 1.0):
        got = _grad(lambda x, tau=tau: build_loss("dice", class_counts=counts, prior_tau=tau)(x, t), z)
        ref = _grad(lambda x, tau=tau: _ref_dice(_sums(x + tau * log_prior, t), mask=False), z)
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    shifted = build_loss("dice_ce", class_counts=counts, prior_tau=1.0)(z, t)
    expected = _ref_dice(_sums(z + log_prior, t), mask=False) + torch.nn.functional.cross_entropy(z, t)
    torch.testing.assert_close(shifted, expected)
    # τ = 0 is plain Dice; predictions are not shifted: probabilities stay softmax(z)
    torch.testing.assert_close(
        build_loss("dice", class_counts=counts, prior_tau=0.0)(z, t), build_loss("dice")(z, t)
    )
    with pytest.raises(ValueError, match="prior_tau needs the training class counts"):
        build_loss("dice", prior_tau=1.0)
