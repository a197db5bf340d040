"""Long-tail subsampling of the training split, deterministic for a seed (splitting: splits.py).

Only the training split is made imbalanced by default: val/test keep the natural distribution so
that every loss is judged on the same examples, and macro metrics still see every class. Validation
can follow the training profile (:func:`match_profile`, ``data.val_imbalance``); test never does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from dicebert.errors import DataError

CLASS_ORDERS = ("descending", "ascending", "name", "rotate")


def long_tail_counts(available: Sequence[int], ratio: float) -> list[int]:
    """Per-class sizes ``n_i = ⌊n_max · ρ^(−i/(C−1))⌋`` for classes given head to tail.

    ``n_max`` is the largest head size for which no class needs more examples than it has, so
    ρ = 1 gives a balanced set at the smallest class size.
    """
    if ratio < 1:
        raise DataError(f"data.imbalance_ratio must be >= 1 (head/tail size ratio); got {ratio}")
    c = len(available)
    if c == 1:
        return [int(available[0])]
    fractions = [ratio ** (-i / (c - 1)) for i in range(c)]

    def sizes(n_max: int) -> list[int]:
        return [math.floor(n_max * f + 1e-9) for f in fractions]

    n_max = min(math.floor(a / f + 1e-9) for a, f in zip(available, fractions, strict=True))
    while n_max > 0 and any(n > a for n, a in zip(sizes(n_max), available, strict=True)):
        n_max -= 1
    counts = sizes(n_max)
    if min(counts) < 1:
        raise DataError(
            f"data.imbalance_ratio={ratio} leaves the tail class with 0 training examples "
            f"(available per class, head to tail: {list(available)}); lower the ratio or add data"
        )
    return counts


def order_classes(counts: dict[str, int], class_order: str | Sequence[str], seed: int = 0) -> list[str]:
    """Head-to-tail order of class names: by count (ties by name), by name, or an explicit list.

    ``rotate``: the descending order rotated left by ``seed % C``, so seeds 0..C-1 make each
    class the tail once and a result over seeds is not about one class (:func:`make_long_tailed`
    keeps the count profile the same for every seed).
    """
    if isinstance(class_order, str):
        if class_order == "descending":
            return sorted(counts, key=lambda name: (-counts[name], name))
        if class_order == "rotate":
            descending = sorted(counts, key=lambda name: (-counts[name], name))
            shift = seed % len(descending)
            return descending[shift:] + descending[:shift]
        if class_order == "ascending":
            return sorted(counts, key=lambda name: (counts[name], name))
        if class_order == "name":
            return sorted(counts)
        raise DataError(
            f"data.class_order={class_order!r}: use one of {', '.join(CLASS_ORDERS)} or a list of classes"
        )
    order = [str(name) for name in class_order]
    if sorted(order) != sorted(counts):
        raise DataError(f"data.class_order lists {order}; the training classes are {sorted(counts)}")
    return order


def make_long_tailed(
    frame: pd.DataFrame,
    ratio: float,
    seed: int,
    class_order: str | Sequence[str] = "descending",
    rotate_counts: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """Subsample ``frame`` to the long-tail profile; the rows kept per class are a seeded random draw.

    With ``rotate`` every seed gets the same count profile, sized so that any class can be the
    head (head = the smallest class's size): seeds then differ in which class is the tail, not in
    how many articles the tail or the whole training split has. ``rotate_counts`` (the counts of
    all labelled rows, before splitting) fixes the order that is rotated: the training split's own
    counts differ by seed, and two near-equal classes swapping places (BBC: sports 511, business
    510) would make one class the tail twice in C seeds and another never.
    """
    available = frame["label"].astype(str).value_counts().to_dict()
    if class_order == "rotate":
        base = available if rotate_counts is None else {name: rotate_counts[name] for name in available}
        order = order_classes(base, class_order, seed)
        capacity = [min(available.values())] * len(order)
    else:
        order = order_classes(available, class_order, seed)
        capacity = [available[name] for name in order]
    targets = long_tail_counts(capacity, ratio)
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    labels = frame["label"].astype(str).to_numpy()
    for name, n in zip(order, targets, strict=True):
        rows = np.flatnonzero(labels == name)
        keep.append(np.sort(rng.permutation(rows)[:n]))
    return frame.iloc[np.sort(np.concatenate(keep))].reset_index(drop=True)


def match_profile(frame: pd.DataFrame, counts: Mapping[str, int], minimum: int, seed: int) -> pd.DataFrame:
    """Subsample ``frame`` (validation) to the class proportions of ``counts``, at least ``minimum`` each.

    The largest scale ``s`` with ``s·counts[c]`` available for every class sets the sizes
    ``max(minimum, round(s·counts[c]))`` (never more than a class has): at ρ = 100 on BBC about
    40 head and ``minimum`` tail articles, instead of about 40 of every class.
    """
    labels = frame["label"].astype(str).to_numpy()
    available = {name: int((labels == name).sum()) for name in counts}
    scale = min(available[name] / counts[name] for name in counts if counts[name] > 0)
    rng = np.random.default_rng(seed)
    keep = []
    for name, count in counts.items():
        n = min(available[name], max(minimum, round(scale * count)))
        keep.append(np.sort(rng.permutation(np.flatnonzero(labels == name))[:n]))
    return frame.iloc[np.sort(np.concatenate(keep))].reset_index(drop=True)


def limit_per_class(frame: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """Keep at most ``limit`` rows per class (seeded draw): quick smoke runs on real data."""
    if limit < 1:
        raise DataError(f"data.limit_per_class must be >= 1; got {limit}")
    rng = np.random.default_rng(seed)
    labels = frame["label"].astype(str).to_numpy()
    keep = [np.sort(rng.permutation(np.flatnonzero(labels == name))[:limit]) for name in np.unique(labels)]
    return frame.iloc[np.sort(np.concatenate(keep))].reset_index(drop=True)
