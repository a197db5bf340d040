"""Losses against independent float64 references written from the papers' formulas.

The references below deliberately avoid the package's helpers (no ``one_hot``/``class_weights``/
``log_softmax`` shortcuts shared with the implementation), so a wrong helper cannot pass twice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dicebert.errors import ConfigError
from dicebert.losses import LOSSES, build_loss, loss_defaults
from dicebert.losses.dsc import dsc_per_sample

F64 = torch.float64
CONF = Path(__file__).resolve().parents[1] / "conf" / "loss"
COUNTS5 = [50, 20, 10, 5, 2]

BATCH_LEVEL = {"seed_dice", "dice", "dice_ce", "tversky", "generalized_dice"}
NEEDS_COUNTS = {"weighted_ce", "class_balanced", "ldam", "logit_adjusted", "balanced_softmax"}


# ----------------------------------------------------------------------------- references (float64)


def _onehot(t: torch.Tensor, c: int) -> torch.Tensor:
    return torch.eye(c, dtype=F64)[t]


def _softmax(z: torch.Tensor) -> torch.Tensor:
    e = torch.exp(z - z.max(dim=1, keepdim=True).values)
    return e / e.sum(dim=1, keepdim=True)


def _pick(m: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return m[torch.arange(m.shape[0]), t]


def _ref_weights(n: torch.Tensor, scheme: str, beta: float = 0.999) -> torch.Tensor:
    c = n.numel()
    if scheme == "inverse":
        w = n.sum() / (c * n)
    elif scheme == "sqrt":
        w = 1.0 / torch.sqrt(n)
    else:
        w = (1.0 - beta) / (1.0 - beta**n)
    return w / w.sum() * c


def _ce_rows(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return -torch.log(_pick(_softmax(z), t))


def ref_ce(z, t, n, label_smoothing=0.0):
    c = z.shape[1]
    q = (1 - label_smoothing) * _onehot(t, c) + label_smoothing / c
    return -(q * torch.log(_softmax(z))).sum(dim=1).mean()


def ref_weighted_ce(z, t, n, weighting="inverse", beta=0.999):
    return (_ref_weights(n, weighting, beta)[t] * _ce_rows(z, t)).mean()


def _focal_rows(z, t, gamma):
    pt = _pick(_softmax(z), t)
    return -((1 - pt) ** gamma) * torch.log(pt)


def ref_focal(z, t, n, gamma=2.0, alpha=None, beta=0.999):
    rows = _focal_rows(z, t, gamma)
    if alpha is None:
        return rows.mean()
    a = _ref_weights(n, alpha, beta) if isinstance(alpha, str) else torch.tensor(alpha, dtype=F64)
    return (a[t] * rows).mean()


def ref_class_balanced(z, t, n, base="focal", beta=0.999, gamma=2.0):
    w = (1 - beta) / (1 - beta**n)
    w = w * n.numel() / w.sum()
    if base == "ce":
        rows = _ce_rows(z, t)
    elif base == "focal":
        rows = _focal_rows(z, t, gamma)
    else:
        s = 1 / (1 + torch.exp(-z))
        y = _onehot(t, z.shape[1])
        rows = -(y * torch.log(s) + (1 - y) * torch.log(1 - s)).sum(dim=1)
    return (w[t] * rows).mean()


def ref_seed_dice(z, t, n):
    p = 1 / (1 + torch.exp(-z))
    y = _onehot(t, z.shape[1])
    return -(2 * (p * y).sum(0) / ((p * p).sum(0) + (y * y).sum(0) + 1e-8)).mean()


def _dice_classes(p, y, k, snr, sdr):
    return (2 * (p * y).sum(0) + snr) / ((p**k).sum(0) + (y**k).sum(0) + sdr)


def ref_dice(z, t, n, squared=True, smooth_nr=1.0, smooth_dr=1.0, weight=None):
    d = _dice_classes(_softmax(z), _onehot(t, z.shape[1]), 2 if squared else 1, smooth_nr, smooth_dr)
    if weight is None:
        return 1 - d.mean()
    w = torch.tensor(weight, dtype=F64)
    return 1 - (w * d).sum() / w.sum()


def ref_dice_ce(
    z, t, n, lambda_dice=1.0, lambda_ce=1.0, squared=True, smooth_nr=1.0, smooth_dr=1.0, label_smoothing=0.0
):
    dice = ref_dice(z, t, n, squared=squared, smooth_nr=smooth_nr, smooth_dr=smooth_dr)
    return lambda_dice * dice + lambda_ce * ref_ce(z, t, n, label_smoothing)


def ref_dsc_probs(p, t, alpha, smooth):
    y = _onehot(t, p.shape[1])
    pt = (1 - p) ** alpha * p
    return (1 - (2 * pt * y + smooth) / (pt**2 + y**2 + smooth)).sum(dim=1)


def ref_dsc(z, t, n, alpha=0.01, smooth=1.0):
    return ref_dsc_probs(_softmax(z), t, alpha, smooth).mean()


def ref_tversky(z, t, n, alpha=0.3, beta=0.7, smooth=1.0):
    p, y = _softmax(z), _onehot(t, z.shape[1])
    tp = (p * y).sum(0)
    fp = (p * (1 - y)).sum(0)
    fn = ((1 - p) * y).sum(0)
    return 1 - ((tp + smooth) / (tp + alpha * fp + beta * fn + smooth)).mean()


def ref_generalized_dice(z, t, n, smooth_nr=1e-5, smooth_dr=1e-5):
    p, y = _softmax(z), _onehot(t, z.shape[1])
    present = [c for c in range(z.shape[1]) if (t == c).any()]
    w_max = max(1.0 / float((t == c).sum()) ** 2 for c in present)
    num = den = 0.0
    for c in range(z.shape[1]):  # the reference may loop; the implementation may not
        w = 1.0 / float((t == c).sum()) ** 2 if c in present else w_max
        num = num + w * (p[:, c] * y[:, c]).sum()
        den = den + w * (p[:, c] + y[:, c]).sum()
    return 1 - (2 * num + smooth_nr) / (den + smooth_dr)


def ref_ldam(z, t, n, max_margin=0.5, scale=30.0, drw_start=None, beta=0.999, epoch=0):
    """The paper's CE(s·(cos − Δ_y e_y)), where the cosine head hands the loss z = s·cos."""
    cos = z / scale
    raw = 1.0 / n**0.25
    delta = raw / raw.max() * max_margin
    shifted = cos - _onehot(t, z.shape[1]) * delta[t][:, None]
    rows = _ce_rows(scale * shifted, t)
    if drw_start is not None and epoch >= drw_start:
        rows = _ref_weights(n, "effective_number", beta)[t] * rows
    return rows.mean()


def ref_logit_adjusted(z, t, n, tau=1.0):
    return _ce_rows(z + tau * torch.log(n / n.sum()), t).mean()


def ref_balanced_softmax(z, t, n):
    return _ce_rows(z + torch.log(n), t).mean()


Opts = Callable[[int], dict[str, Any]]


def _const(**o: Any) -> Opts:
    return lambda c: dict(o)


def _per_class(key: str, **o: Any) -> Opts:
    return lambda c: {**o, key: [0.5 + 0.1 * i for i in range(c)]}


# (name, options as a function of C, reference, epoch passed to set_progress)
CASES: list[tuple[str, Opts, Callable[..., torch.Tensor], int]] = [
    ("ce", _const(), ref_ce, 0),
    ("ce", _const(label_smoothing=0.1), ref_ce, 0),
    ("weighted_ce", _const(), ref_weighted_ce, 0),
    ("weighted_ce", _const(weighting="sqrt"), ref_weighted_ce, 0),
    ("weighted_ce", _const(weighting="effective_number", beta=0.99), ref_weighted_ce, 0),
    ("focal", _const(), ref_focal, 0),
    ("focal", _per_class("alpha", gamma=1.5), ref_focal, 0),
    ("focal", _const(alpha="inverse"), ref_focal, 0),
    ("focal", _const(alpha="effective_number", gamma=0.5), ref_focal, 0),
    ("class_balanced", _const(), ref_class_balanced, 0),
    ("class_balanced", _const(base="ce", beta=0.99), ref_class_balanced, 0),
    ("class_balanced", _const(base="sigmoid"), ref_class_balanced, 0),
    ("seed_dice", _const(), ref_seed_dice, 0),
    ("dice", _const(), ref_dice, 0),
    ("dice", _per_class("weight", squared=False, smooth_nr=0.5, smooth_dr=2.0), ref_dice, 0),
    ("dice_ce", _const(), ref_dice_ce, 0),
    ("dice_ce", _const(lambda_dice=0.3, lambda_ce=2.0, squared=False, label_smoothing=0.1), ref_dice_ce, 0),
    ("dsc", _const(), ref_dsc, 0),
    ("dsc", _const(alpha=0.5, smooth=0.1), ref_dsc, 0),
    ("tversky", _const(), ref_tversky, 0),
    ("tversky", _const(alpha=0.5, beta=0.5, smooth=0.2), ref_tversky, 0),
    ("generalized_dice", _const(), ref_generalized_dice, 0),
    ("generalized_dice", _const(smooth_nr=0.0, smooth_dr=1e-3), ref_generalized_dice, 0),
    ("ldam", _const(), ref_ldam, 0),
    ("ldam", _const(drw_start=2, scale=5.0, max_margin=1.0), ref_ldam, 1),
    ("ldam", _const(drw_start=2, beta=0.99), ref_ldam, 3),
    ("logit_adjusted", _const(), ref_logit_adjusted, 0),
    ("logit_adjusted", _const(tau=0.5), ref_logit_adjusted, 0),
    ("balanced_softmax", _const(), ref_balanced_softmax, 0),
]


def _counts(c: int) -> list[int]:
    g = torch.Generator().manual_seed(c)
    counts = torch.randint(2, 800, (c,), generator=g)
    counts[0], counts[-1] = 1000, 1  # a head class and a singleton tail class
    return counts.tolist()


def _batch(c: int, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 * c + len(kind))
    if kind == "mixed":
        t = torch.randint(0, c, (12,), generator=g)
    elif kind == "absent":  # the last class never occurs (for C = 2 this is also single-class)
        t = torch.randint(0, c - 1, (9,), generator=g)
    else:  # every target is the rarest class
        t = torch.full((6,), c - 1)
    z = 2.0 * torch.randn(t.shape[0], c, generator=g, dtype=F64)
    return z, t


def _build(name: str, c: int, opts: Opts, epoch: int) -> torch.nn.Module:
    loss = build_loss(name, class_counts=_counts(c), **opts(c))
    loss.set_progress(epoch)
    return loss


def test_cases_cover_every_registered_loss() -> None:
    assert {case[0] for case in CASES} == set(LOSSES)


@pytest.mark.parametrize("kind", ["mixed", "absent", "single"])
@pytest.mark.parametrize("c", [2, 5, 50])
@pytest.mark.parametrize(
    ("name", "opts", "ref", "epoch"), CASES, ids=[f"{case[0]}-{i}" for i, case in enumerate(CASES)]
)
def test_matches_float64_reference(
    name: str, opts: Opts, ref: Callable, epoch: int, c: int, kind: str
) -> None:
    loss = _build(name, c, opts, epoch)
    z, t = _batch(c, kind)
    counts = torch.tensor(_counts(c), dtype=F64)

    z_loss = z.clone().requires_grad_()
    value = loss(z_loss, t)
    assert value.dtype == F64 and value.ndim == 0
    (grad,) = torch.autograd.grad(value, z_loss)

    z_ref = z.clone().requires_grad_()
    options = opts(c) | ({"epoch": epoch} if name == "ldam" else {})
    expected = ref(z_ref, t, counts, **options)
    (grad_ref,) = torch.autograd.grad(expected, z_ref)

    torch.testing.assert_close(value, expected, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-7, atol=1e-10)
    # Full numerical Jacobian on the smallest case; a random projection of it (fast mode) elsewhere.
    full = c == 2 and kind == "mixed"
    assert torch.autograd.gradcheck(
        lambda x: loss(x, t),
        (z.clone().requires_grad_(),),
        eps=1e-6,
        atol=1e-6,
        rtol=1e-4,
        fast_mode=not full,
    )


# ----------------------------------------------------------------------------- specific behaviour


def test_dsc_known_value_on_given_probabilities() -> None:
    probs = torch.tensor([[0.9, 0.03, 0.03, 0.03], [0.03, 0.9, 0.03, 0.03]], dtype=F64)
    t = torch.tensor([0, 1])
    per_sample = dsc_per_sample(probs, t, alpha=0.01, smooth=1.0)
    torch.testing.assert_close(per_sample, torch.full((2,), 0.007930, dtype=F64), rtol=0, atol=5e-7)
    torch.testing.assert_close(per_sample, ref_dsc_probs(probs, t, 0.01, 1.0))


def test_dice_is_zero_on_a_perfect_batch() -> None:
    t = torch.tensor([0, 1, 1, 3, 3, 3])  # class 2 absent too: smoothing scores it 1
    z = 1e3 * (2 * torch.eye(4)[t] - 1)  # p ≈ y under softmax and under sigmoid
    for name in ("dice", "tversky", "generalized_dice"):
        assert build_loss(name)(z, t).abs().item() < 1e-6, name
    assert build_loss("dice_ce")(z, t).abs().item() < 1e-6
    # the write-up's loss reaches its minimum −1 only when every class is present
    torch.testing.assert_close(build_loss("seed_dice")(z, t), torch.tensor(-0.75))


def test_absent_class_gets_a_gradient_from_dice_but_not_from_seed_dice() -> None:
    z, t = _batch(5, "absent")
    absent = 4
    assert not (t == absent).any()
    grads = {}
    for name in ("dice", "seed_dice", "tversky", "generalized_dice"):
        x = z.clone().requires_grad_()
        build_loss(name)(x, t).backward()
        grads[name] = x.grad[:, absent]
    assert torch.all(grads["seed_dice"] == 0)
    for name in ("dice", "tversky", "generalized_dice"):
        assert grads[name].abs().min() > 0, name  # every sample's absent-class logit is pushed


def test_tversky_with_equal_weights_is_dice_without_squares() -> None:
    z, t = _batch(5, "mixed")
    tversky = build_loss("tversky", alpha=0.5, beta=0.5, smooth=0.7)(z, t)
    dice = build_loss("dice", squared=False, smooth_nr=1.4, smooth_dr=1.4)(z, t)
    torch.testing.assert_close(tversky, dice)


def test_balanced_softmax_is_logit_adjustment_with_tau_one() -> None:
    z, t = _batch(50, "mixed")
    counts = _counts(50)
    torch.testing.assert_close(
        build_loss("balanced_softmax", class_counts=counts)(z, t),
        build_loss("logit_adjusted", class_counts=counts, tau=1.0)(z, t),
    )


def test_uniform_counts_make_the_reweighted_losses_plain() -> None:
    z, t = _batch(5, "mixed")
    uniform = [40] * 5
    ce = build_loss("ce")(z, t)
    for weighting in ("inverse", "sqrt", "effective_number"):
        torch.testing.assert_close(
            build_loss("weighted_ce", class_counts=uniform, weighting=weighting)(z, t), ce
        )
    torch.testing.assert_close(build_loss("class_balanced", class_counts=uniform, base="ce")(z, t), ce)
    torch.testing.assert_close(
        build_loss("focal", class_counts=uniform, alpha="inverse")(z, t), build_loss("focal")(z, t)
    )
    # logit adjustment by a uniform prior shifts every logit equally: CE is unchanged
    torch.testing.assert_close(build_loss("logit_adjusted", class_counts=uniform)(z, t), ce)


def test_rare_classes_weigh_more() -> None:
    z = torch.zeros(2, 5, dtype=F64)  # same CE for every sample
    head, tail = torch.tensor([0, 0]), torch.tensor([4, 4])
    for name, opts in [
        ("weighted_ce", {}),
        ("class_balanced", {"base": "ce"}),
        ("focal", {"alpha": "inverse"}),
    ]:
        loss = build_loss(name, class_counts=COUNTS5, **opts)
        assert loss(z, tail) > loss(z, head), name


def test_ldam_margins_and_deferred_reweighting() -> None:
    loss = build_loss("ldam", class_counts=COUNTS5, max_margin=0.5, drw_start=2)
    assert loss.margins.max().item() == pytest.approx(0.5)
    assert torch.all(loss.margins[1:] > loss.margins[:-1])  # rarer class, larger margin
    z, t = _batch(5, "single")  # all targets are the rarest class, whose DRW weight is > 1
    plain = build_loss("ldam", class_counts=COUNTS5, max_margin=0.5)(z, t)
    loss.set_progress(1)
    torch.testing.assert_close(loss(z, t), plain)
    loss.set_progress(2)
    weighted = loss(z, t)
    assert weighted > plain
    torch.testing.assert_close(
        weighted, ref_ldam(z, t, torch.tensor(COUNTS5, dtype=F64), drw_start=2, epoch=2)
    )


@pytest.mark.parametrize("name", ["weighted_ce", "class_balanced", "ldam"])
def test_weight_sum_norm_is_pytorchs_weighted_mean(name: str) -> None:
    """``weight_norm=weight_sum`` is Σw·ℓ/Σw (the DRW reference, F.cross_entropy(weight=w)); the default
    is mean_i w·ℓ, which differs from it by the batch's mean weight."""
    options: dict[str, Any] = {"drw_start": 0.5, **({"base": "ce"} if name == "class_balanced" else {})}
    z, t = _batch(5, "mixed")
    default = build_loss(name, class_counts=COUNTS5, **options)
    ref_sum = build_loss(name, class_counts=COUNTS5, weight_norm="weight_sum", **options)
    for loss in (default, ref_sum):
        loss.set_progress(10**6, 0.99)  # any deferred weights on
    w = (default.drw_weight if name == "ldam" else default.weight).to(z)
    shifted = (
        z - (30.0 * default.margins.to(z))[None, :] * torch.eye(z.shape[1], dtype=z.dtype)[t]
        if (name == "ldam")
        else z
    )
    ce = torch.nn.functional.cross_entropy(shifted, t, reduction="none")
    torch.testing.assert_close(ref_sum(z, t), torch.nn.functional.cross_entropy(shifted, t, weight=w))
    torch.testing.assert_close(default(z, t), (w[t] * ce).mean())
    assert not torch.isclose(default(z, t), ref_sum(z, t))
    with pytest.raises(ConfigError, match="weight_norm='sum' is not one of batch_mean, weight_sum"):
        build_loss(name, class_counts=COUNTS5, weight_norm="sum", **options)


def test_batch_level_flag_matches_behaviour() -> None:
    """Per-sample losses of a batch are the mean over two equal halves; set losses are not."""
    z, t = _batch(5, "mixed")
    assert {name for name, cls in LOSSES.items() if cls.batch_level} == BATCH_LEVEL
    for name in LOSSES:
        loss = build_loss(name, class_counts=COUNTS5)
        whole = loss(z, t)
        halves = (loss(z[:6], t[:6]) + loss(z[6:], t[6:])) / 2
        if name in BATCH_LEVEL:
            assert not torch.isclose(whole, halves, rtol=1e-4), name
        else:
            torch.testing.assert_close(whole, halves, msg=name)


def test_prior_needing_losses_are_marked() -> None:
    assert {name for name, cls in LOSSES.items() if cls.needs_class_counts} == NEEDS_COUNTS


def test_large_class_count_runs() -> None:
    """The benchmark runs at C = 500: every loss must cope (and stays vectorised to be fast there)."""
    c = 500
    g = torch.Generator().manual_seed(0)
    counts = torch.randint(1, 1000, (c,), generator=g).tolist()
    z = torch.randn(64, c, generator=g).requires_grad_()
    t = torch.randint(0, c, (64,), generator=g)
    for name in LOSSES:
        value = build_loss(name, class_counts=counts)(z, t)
        (grad,) = torch.autograd.grad(value, z)
        assert torch.isfinite(value) and torch.isfinite(grad).all(), name


# ----------------------------------------------------------------------------- mixed precision


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_autocast_computes_in_float32_and_stays_finite(name: str, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(3)
    signs = torch.where(torch.rand(16, 5, generator=g) > 0.5, 1.0, -1.0)
    x = (1e4 * signs).requires_grad_()
    t = torch.randint(0, 5, (16,), generator=g)
    loss = build_loss(name, class_counts=COUNTS5)
    seen: dict[str, Any] = {}
    compute = loss.compute

    def spy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        seen["dtype"], seen["autocast"] = logits.dtype, torch.is_autocast_enabled("cpu")
        return compute(logits, targets)

    loss.compute = spy
    with torch.autocast("cpu", dtype=dtype):
        logits = x.to(dtype)  # what a half-precision head hands the loss
        assert logits.dtype == dtype
        value = loss(logits, t)
    assert seen == {"dtype": torch.float32, "autocast": False}
    assert value.dtype == torch.float32 and torch.isfinite(value)
    value.backward()
    assert torch.isfinite(x.grad).all()
    # identical to computing on the rounded logits in float32 without autocast
    torch.testing.assert_close(value.detach(), compute(logits.detach().float(), t))


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_bad_inputs_raise_value_errors_naming_expected_shapes(name: str) -> None:
    loss = build_loss(name, class_counts=COUNTS5)
    z = torch.randn(4, 5)
    good = torch.tensor([0, 1, 2, 4])
    bad = {
        "float targets": (z, good.float()),
        "target = C": (z, torch.tensor([0, 1, 2, 5])),
        "negative target": (z, torch.tensor([0, -1, 2, 3])),
        "3-D logits": (z[None], good),
        "1-D logits": (z[0], good),
        "targets [N, 1]": (z, good[:, None]),
        "wrong N": (z, good[:3]),
        "integer logits": (z.long(), good),
    }
    for what, (logits, targets) in bad.items():
        with pytest.raises(ValueError, match=r"expected logits \[N, C\].*targets \[N\]"):
            loss(logits, targets)
            pytest.fail(f"{name}: no error for {what}")
    assert torch.isfinite(loss(z, good))


def test_unknown_loss_lists_registered_names() -> None:
    with pytest.raises(ValueError, match="unknown loss 'diec'") as err:
        build_loss("diec")
    for name in LOSSES:
        assert name in str(err.value)


@pytest.mark.parametrize("name", sorted(NEEDS_COUNTS))
def test_prior_needing_loss_without_counts_is_a_clear_error(name: str) -> None:
    with pytest.raises(ValueError, match="needs the training class counts"):
        build_loss(name)


def test_other_configuration_errors() -> None:
    """Bad user options are ConfigError (one line at the entry points); shape misuse stays ValueError."""
    with pytest.raises(ConfigError, match="needs the training class counts"):
        build_loss("focal", alpha="inverse")
    with pytest.raises(ConfigError, match=r"unknown weighting 'log'.*inverse, sqrt, effective_number"):
        build_loss("weighted_ce", class_counts=COUNTS5, weighting="log")
    with pytest.raises(ConfigError, match="unknown class_balanced base"):
        build_loss("class_balanced", class_counts=COUNTS5, base="softmax")
    with pytest.raises(ConfigError, match="bad options for loss 'tversky'"):
        build_loss("tversky", gama=2.0)
    with pytest.raises(ConfigError, match="unknown loss 'diec'"):
        build_loss("diec")
    for name, bad in [("focal", {"gamma": -1.0}), ("dice", {"smooth_dr": 0.0}), ("ldam", {"scale": 0.0})]:
        with pytest.raises(ConfigError):
            build_loss(name, class_counts=COUNTS5, **bad)
    with pytest.raises(ValueError, match="class_counts must be positive"):
        build_loss("ldam", class_counts=[3, 0, 2])
    with pytest.raises(ValueError, match="built with 5 class counts but got logits with C=3"):
        build_loss("balanced_softmax", class_counts=COUNTS5)(torch.randn(2, 3), torch.tensor([0, 1]))


# ----------------------------------------------------------------------------- configs


def _yaml_files() -> list[Path]:
    return sorted(CONF.glob("*.yaml"))


def test_every_registered_loss_has_exactly_one_yaml() -> None:
    names = [OmegaConf.load(path).name for path in _yaml_files()]
    assert sorted(names) == sorted(LOSSES)


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: p.stem)
def test_yaml_lists_every_option_and_takes_its_default_from_the_constructor(path: Path) -> None:
    """One source for defaults: each YAML option is ``${loss_default:<option>}``, never a literal."""
    cfg = OmegaConf.load(path)
    loss = instantiate(cfg, class_counts=COUNTS5)
    assert isinstance(loss, LOSSES[cfg.name])
    value = loss(torch.randn(8, 5), torch.tensor([0, 1, 2, 3, 4, 0, 0, 1]))
    assert torch.isfinite(value)

    raw = OmegaConf.to_container(cfg, resolve=False)
    options = {k: v for k, v in raw.items() if k not in ("_target_", "name")}
    assert options == {k: f"${{loss_default:{k}}}" for k in loss_defaults(cfg.name)}
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert {k: resolved[k] for k in options} == loss_defaults(cfg.name)


def test_loss_options_override_from_the_command_line(make_cfg) -> None:
    cfg = make_cfg("loss=focal", "loss.gamma=0.5", "loss.alpha=inverse", "loss.drw_start=0.8")
    loss = instantiate(cfg.loss, class_counts=COUNTS5)
    assert (loss.gamma, loss.drw_start) == (0.5, 0.8) and loss.alpha is not None
    assert (
        instantiate(make_cfg("loss=ldam").loss, class_counts=COUNTS5).scale == loss_defaults("ldam")["scale"]
    )
    with pytest.raises(Exception, match="no option 'gama'"):
        OmegaConf.create({"name": "focal", "gama": "${loss_default:gama}"}).gama  # noqa: B018


@pytest.mark.parametrize("search", ["optuna", "optuna_focal", "optuna_dice_ce", "optuna_tversky"])
def test_hparams_searches_override_existing_loss_options(make_cfg, search: str) -> None:
    cfg = make_cfg(f"hparams_search={search}")
    params = cfg.hydra.sweeper.params
    loss_keys = [key.split(".", 1)[1] for key in params if key.startswith("loss.")]
    assert all(key in cfg.loss for key in loss_keys), (search, loss_keys)
    assert isinstance(instantiate(cfg.loss, class_counts=COUNTS5), LOSSES[cfg.loss.name])


@pytest.mark.parametrize("experiment", ["loss_vs_imbalance", "sampler_vs_imbalance"])
def test_experiments_compose_and_build_their_loss(make_cfg, experiment: str) -> None:
    cfg = make_cfg(f"experiment={experiment}")
    assert isinstance(instantiate(cfg.loss, class_counts=COUNTS5), LOSSES[cfg.loss.name])


def test_listing_shows_every_loss_with_the_constructor_defaults() -> None:
    from dicebert.losses.__main__ import describe

    lines = {line.split()[0]: line for line in describe().splitlines()}
    assert set(lines) == set(LOSSES)
    assert "gamma=2.0" in lines["focal"]
    assert "alias of logit_adjusted with tau=1.0" in lines["balanced_softmax"]
