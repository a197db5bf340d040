"""Seed-level inference for a paired comparison of two methods: the test of record, its MDD, Holm.

The unit of replication is the seed: one training run per method on one seed-specific split. The
test of record therefore works on the k per-seed differences ``d_s = metric(a, s) − metric(b, s)``
and is valid at the 3–10 seeds users run:

- a paired t-test (t interval and p with k − 1 degrees of freedom) when the differences look
  normal, which an average over a few hundred test examples per seed usually is;
- the exact sign-flip permutation test when normality is doubtful (a collapsed run in the pair
  puts a point mass far from the rest). Under the null the two methods are exchangeable within a
  seed, so every sign pattern of the d_s is equally likely and the test is exact at any k; its
  smallest p is 2/2^k, so at k ≤ 5 it can never reach 0.05 and says so through an infinite MDD.

Resampling test examples inside a seed is not used: the between-seed spread already contains the
test-set noise of seed-specific splits, and a bootstrap over k seeds is a normal approximation
without the small-sample correction (intervals about 63 % too narrow at k = 3). The calibration
of both tests is simulated in :mod:`dicebert.sweeps.calibration` and asserted in the test suite.
scipy gives the t-test and the noncentral t for the MDD; the sign flip and Holm are a few lines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize, stats

ALPHA = 0.05
POWER = 0.8
#: Up to this many seeds the sign-flip test enumerates every sign pattern (exact p).
EXACT_FLIP_SEEDS = 16


def sign_flip_p(diff: np.ndarray) -> np.ndarray | float:
    """Two-sided exact sign-flip p of the mean difference; ``diff`` ``[k]`` or a batch ``[..., k]``.

    p = the share of the 2^k sign patterns whose |mean| reaches the observed one (the observed
    pattern included, so never 0). By hand rather than ``scipy.stats.permutation_test``, which
    tests one comparison per call: the calibration simulation tests thousands at once.
    """
    d = np.asarray(diff, dtype=float)
    k = d.shape[-1]
    if k > EXACT_FLIP_SEEDS:
        raise ValueError(f"the exact sign-flip test enumerates 2^k patterns; k={k} > {EXACT_FLIP_SEEDS}")
    if k == 0:
        return 1.0
    signs = 1 - 2 * ((np.arange(2**k)[:, None] >> np.arange(k)) & 1)  # [2^k, k] of ±1
    observed = np.abs(d.sum(-1))[..., None]
    flipped = np.abs(d @ signs.T)  # [..., 2^k]
    p = (flipped >= observed - 1e-12 * (1 + observed)).mean(-1)
    return float(p) if np.ndim(p) == 0 else p


def min_sign_flip_p(k: int) -> float:
    """The smallest two-sided p the sign-flip test can give with k seeds (all signs alike)."""
    return min(1.0, 2.0 / 2**k) if k >= 1 else 1.0


def t_power(effect: float, sd: float, k: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test at level ``alpha`` for a true mean difference ``effect``."""
    if k < 2 or sd <= 0:
        return math.nan
    df = k - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = effect / (sd / math.sqrt(k))
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def mdd(sd: float, k: int, alpha: float = ALPHA, power: float = POWER, test: str = "t") -> float:
    """Minimum detectable difference: the true mean difference the test finds with ``power``.

    For the paired t-test, from the noncentral t distribution at the observed spread ``sd`` of the
    per-seed differences. A sign-flip test whose smallest possible p exceeds ``alpha`` detects
    nothing (infinite MDD); otherwise the t-test's MDD stands in for it.
    """
    if k < 2 or not sd > 0:
        return math.nan
    if test == "sign-flip" and min_sign_flip_p(k) > alpha:
        return math.inf

    def gap(d: float) -> float:
        value = t_power(d, sd, k, alpha)
        return (1.0 if math.isnan(value) else value) - power  # nct's tail is NaN only far past 1

    high = sd * (stats.t.ppf(1 - alpha / 2, k - 1) + 2) / math.sqrt(k)
    while gap(high) < 0:
        high *= 2
    return float(optimize.brentq(gap, 0.0, high))


def p_values(diffs: np.ndarray, robust: np.ndarray | bool = False) -> dict[str, np.ndarray]:
    """The paired t p, the sign-flip p and the p of record for per-seed differences ``[..., k]``.

    Batched so that the calibration simulation runs the very code a report runs. The p of record is
    the sign-flip one where ``robust`` (normality doubtful) or where no t statistic exists (all
    differences equal and not zero), else the t-test's; it is never 0.
    """
    d = np.asarray(diffs, dtype=float)
    k = d.shape[-1]
    mean, sd = d.mean(-1), d.std(-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / (sd / math.sqrt(k))
    p_t = np.where(sd > 0, 2 * stats.t.sf(np.abs(t), k - 1), np.where(mean == 0, 1.0, np.nan))
    p_flip = np.asarray(sign_flip_p(d)) if k <= EXACT_FLIP_SEEDS else np.full(mean.shape, np.nan)
    flip = (np.asarray(robust) | np.isnan(p_t)) & ~np.isnan(p_flip)
    return {"p_t": p_t, "p_signflip": p_flip, "p": np.where(flip, p_flip, p_t), "flip": flip}


def seed_test(diff: Sequence[float], robust: bool = False, confidence: float = 0.95) -> dict[str, Any]:
    """The test of record for the per-seed differences ``diff`` (:func:`p_values`), with its interval.

    ``robust``: normality is doubtful (e.g. a collapsed run in the pair). Reported: mean, sd, the t
    interval (clipped to [−1, 1], the range of a difference of scores), both p-values and which one
    is of record.
    """
    d = np.asarray(diff, dtype=float)
    k = len(d)
    out: dict[str, Any] = {
        "n_pairs": k,
        "diff": float(d.mean()) if k else math.nan,
        "sd": float(d.std(ddof=1)) if k > 1 else math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "p_t": math.nan,
        "p_signflip": math.nan,
        "p": math.nan,
        "test": "–",
    }
    if k < 2:
        return out
    found = p_values(d, robust)
    out.update({key: float(found[key]) for key in ("p_t", "p_signflip", "p")})
    out["test"] = "sign-flip" if bool(found["flip"]) else "t"
    if out["sd"] > 0:
        low, high = stats.t.interval(confidence, k - 1, loc=out["diff"], scale=out["sd"] / math.sqrt(k))
        out.update(ci_low=max(float(low), -1.0), ci_high=min(float(high), 1.0))
    else:
        out.update(ci_low=out["diff"], ci_high=out["diff"])
    return out


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, at most 1); NaN stays NaN.

    Six lines by hand: scipy has only Benjamini–Hochberg, and statsmodels is a heavy dependency
    for one function.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    order = np.flatnonzero(~np.isnan(p))
    order = order[np.argsort(p[order], kind="stable")]
    m = len(order)
    if m:
        out[order] = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
    return out
