"""Which (loss, options) pairs are one method by construction, at given class counts.

A comparison grid must not present one method twice as two confirmations: ``balanced_softmax``
is ``logit_adjusted`` at τ = 1; at uniform counts (ρ = 1, or behind an ``inverse`` sampler)
``weighted_ce`` and ``logit_adjusted`` are plain CE; ``focal`` at γ = 0 is CE; and at the counts
of a small long-tailed set, ``class_balanced`` with β = 0.999 is close to inverse-frequency
weighting. :func:`canonical` reduces a loss to what it computes; :func:`equivalent` (exact) and
:func:`weight_deviation` (how far apart two re-weightings are) are what a sweep report queries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from dicebert.errors import ConfigError
from dicebert.losses.base import class_weights
from dicebert.losses.registry import ALIASES, canonical_name, loss_defaults


@dataclass(frozen=True)
class Canonical:
    """What a loss computes: a base objective, its remaining options, and the class-dependent parts.

    ``weights``: per-class sample weights (None: all 1); ``offset``: training-time logit offset,
    centred because CE ignores a constant (None: no offset); ``drw_start`` only when weighted.
    """

    kind: str
    params: tuple[tuple[str, Any], ...]
    weights: tuple[float, ...] | None = None
    offset: tuple[float, ...] | None = None
    drw_start: int | float | None = None


def _options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    return loss_defaults(name) | dict(options or {}) | ALIASES.get(name, ("", {}))[1]


def _counts(name: str, class_counts: Sequence[float] | None) -> torch.Tensor:
    if class_counts is None:
        raise ConfigError(f"deciding what {name!r} computes needs the class counts it is trained on")
    return torch.as_tensor(list(class_counts), dtype=torch.float64)


def _ce(label_smoothing: float = 0.0) -> tuple[str, dict[str, Any]]:
    return "ce", {"label_smoothing": float(label_smoothing)}


def canonical(
    name: str, options: Mapping[str, Any] | None = None, class_counts: Sequence[float] | None = None
) -> Canonical:
    """Reduce ``name`` with ``options`` (defaults filled in) at ``class_counts`` to what it computes."""
    opts = _options(name, options)
    base = canonical_name(name)
    weights: torch.Tensor | None = None
    offset: torch.Tensor | None = None
    drw = opts.pop("drw_start", None)
    if base == "ce":
        kind, params = _ce(opts["label_smoothing"])
    elif base == "weighted_ce":
        kind, params = _ce()
        weights = class_weights(_counts(name, class_counts), opts["weighting"], opts["beta"])
    elif base in ("focal", "class_balanced"):
        gamma = float(opts["gamma"])
        if base == "focal":
            alpha = opts["alpha"]
            if isinstance(alpha, str):
                weights = class_weights(_counts(name, class_counts), alpha, opts["beta"])
            elif alpha is not None:
                weights = torch.as_tensor(list(alpha), dtype=torch.float64)
            loss_base = "focal"
        else:
            weights = class_weights(_counts(name, class_counts), "effective_number", opts["beta"])
            loss_base = opts["base"]
        if loss_base == "sigmoid":
            kind, params = "sigmoid_bce", {}
        elif loss_base == "ce" or gamma == 0.0:
            kind, params = _ce()
        else:
            kind, params = "focal", {"gamma": gamma}
    elif base == "logit_adjusted":
        kind, params = _ce()
        counts = _counts(name, class_counts)
        offset = float(opts["tau"]) * torch.log(counts / counts.sum())
    elif base == "ldam":
        kind, params = "ldam", {"max_margin": opts["max_margin"], "scale": opts["scale"]}
        if drw is not None:
            weights = class_weights(_counts(name, class_counts), "effective_number", opts["beta"])
    elif base == "dice_ce" and opts["lambda_ce"] == 0 and opts["lambda_dice"] == 1:
        kind = "dice"
        params = {k: opts[k] for k in ("squared", "smooth_nr", "smooth_dr", "absent", "ema", "prior_tau")}
        params["weight"] = None
    elif base == "dice_ce" and opts["lambda_dice"] == 0 and opts["lambda_ce"] == 1:
        kind, params = _ce(opts["label_smoothing"])
    elif base == "tversky" and opts["alpha"] == opts["beta"] == 0.5:
        kind = "dice"  # Tversky at α = β = ½ is Dice with k = 1 and smoothing 2s
        s = 2.0 * float(opts["smooth"])
        params = {"squared": False, "smooth_nr": s, "smooth_dr": s, "weight": None}
        params |= {"absent": opts["absent"], "ema": None, "prior_tau": 0.0}
    else:
        kind, params = base, opts
    if weights is not None and torch.allclose(weights, torch.ones_like(weights), rtol=0, atol=1e-12):
        weights = None
    if offset is not None:
        offset = offset - offset.mean()
        if offset.abs().max() < 1e-12:
            offset = None
    return Canonical(
        kind=kind,
        params=tuple(sorted((k, _freeze(v)) for k, v in params.items())),
        weights=None if weights is None else tuple(weights.tolist()),
        offset=None if offset is None else tuple(offset.tolist()),
        drw_start=None if weights is None else drw,
    )


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-15)
    return a == b


def weight_deviation(
    name_a: str,
    opts_a: Mapping[str, Any] | None,
    name_b: str,
    opts_b: Mapping[str, Any] | None,
    class_counts: Sequence[float] | None = None,
) -> float:
    """Largest relative difference of the two losses' class weights; ``inf`` if they differ otherwise.

    0 means identical by construction; a small value (say < 0.2) means "a re-weighting of the
    same base loss with nearly the same weights": a comparison between them measures little.
    """
    a = canonical(name_a, opts_a, class_counts)
    b = canonical(name_b, opts_b, class_counts)
    if a.kind != b.kind or len(a.params) != len(b.params) or a.drw_start != b.drw_start:
        return math.inf
    for (ka, va), (kb, vb) in zip(a.params, b.params, strict=True):
        if ka != kb or not _same(va, vb):
            return math.inf
    if (a.offset is None) != (b.offset is None):
        return math.inf
    if (
        a.offset is not None
        and b.offset is not None
        and not torch.allclose(torch.tensor(a.offset), torch.tensor(b.offset), rtol=0, atol=1e-9)
    ):
        return math.inf
    if a.weights is None and b.weights is None:
        return 0.0
    c = len(a.weights or b.weights or ())
    wa = torch.tensor(a.weights or [1.0] * c, dtype=torch.float64)
    wb = torch.tensor(b.weights or [1.0] * c, dtype=torch.float64)
    if wa.numel() != wb.numel():
        return math.inf
    return float(((wa - wb).abs() / wb.abs()).max())


def equivalent(
    name_a: str,
    opts_a: Mapping[str, Any] | None,
    name_b: str,
    opts_b: Mapping[str, Any] | None,
    class_counts: Sequence[float] | None = None,
    rtol: float = 1e-9,
) -> bool:
    """True when the two losses are one method at these counts (class weights within ``rtol``)."""
    return weight_deviation(name_a, opts_a, name_b, opts_b, class_counts) <= rtol
