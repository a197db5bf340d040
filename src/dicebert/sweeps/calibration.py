"""Simulated calibration of the seed-level test of record: false-positive rate under the null, power.

A test is only as good as its behaviour at the seed counts users run, so it is checked by
simulation, not assumed. The model of a grid: each seed draws its own split (an effect that both
methods on that seed share, e.g. how hard its tail articles are) and its own test set; each run
adds its own training noise; macro-F1 is scored on the seed's simulated test set with the project's
one F1 definition, so test-set noise enters as in a real grid. Under the null the two methods'
runs come from one distribution; ``collapse_rate`` adds runs that never predict the tail class,
the non-normal case the sign-flip test exists for. The defaults follow the BBC ρ = 100 grids
(per-seed macro-F1 about 0.85, between-seed std about 0.04–0.05, 445 test articles in 5 classes).

``python -m dicebert.sweeps.calibration`` prints the table that docs/sweeps.md quotes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dicebert.metrics import macro_f1_from_counts
from dicebert.sweeps.inference import ALPHA, p_values


@dataclass(frozen=True)
class GridModel:
    """How per-seed results of one method arise: accuracy = base + seed effect + run noise."""

    n_test: int = 445
    num_classes: int = 5
    accuracy: float = 0.86
    seed_sd: float = 0.035
    run_sd: float = 0.025
    collapse_rate: float = 0.0


def _macro_f1(
    support: np.ndarray, accuracy: np.ndarray, collapsed: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Macro-F1 ``[sims, k]`` of runs that get each test example right with ``accuracy``.

    ``support`` ``[sims, k, C]``: the seed's test examples per class. A wrong prediction goes to a
    uniformly drawn other class; a collapsed run predicts class 0 wherever it would predict the
    tail (class C − 1). Drawn as counts (binomial, multinomial), not per example: same law, faster.
    """
    c = support.shape[-1]
    tp = rng.binomial(support, accuracy[..., None])
    wrong = rng.multinomial(support - tp, np.full(c - 1, 1.0 / (c - 1)))  # [sims, k, C, C-1]
    others = (np.arange(c)[:, None] + 1 + np.arange(c - 1)[None, :]) % c  # true class → other classes
    into = np.zeros_like(tp)
    for true in range(c):
        into[..., others[true]] += wrong[..., true, :]
    predicted = tp + into
    if collapsed.any():
        tail = c - 1
        tp[..., 0] += np.where(collapsed, wrong[..., 0, others[0].tolist().index(tail)], 0)
        predicted[..., 0] += np.where(collapsed, predicted[..., tail], 0)
        predicted[..., tail] = np.where(collapsed, 0, predicted[..., tail])
        tp[..., tail] = np.where(collapsed, 0, tp[..., tail])
    return macro_f1_from_counts(tp, support, predicted)


def simulate(
    model: GridModel, k: int, n_sims: int, effect: float = 0.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-seed macro-F1 of methods a and b ``[n_sims, k]`` and whether either run collapsed.

    ``effect``: a's accuracy advantage (0: the null). The two runs of a seed share its split effect
    and its test set, as paired runs of a real grid do.
    """
    rng = np.random.default_rng(seed)
    shape = (n_sims, k)
    support = rng.multinomial(model.n_test, np.full(model.num_classes, 1.0 / model.num_classes), size=shape)
    split = rng.normal(0.0, model.seed_sd, shape)
    scores, collapses = [], []
    for shift in (effect, 0.0):
        accuracy = np.clip(model.accuracy + shift + split + rng.normal(0.0, model.run_sd, shape), 0.05, 1.0)
        collapsed = rng.random(shape) < model.collapse_rate
        scores.append(_macro_f1(support, accuracy, collapsed, rng))
        collapses.append(collapsed)
    return scores[0], scores[1], collapses[0] | collapses[1]


def record_p(diffs: np.ndarray, robust: np.ndarray) -> np.ndarray:
    """The report's p of record for a batch of comparisons (:func:`~dicebert.sweeps.inference.p_values`)."""
    return p_values(diffs, robust)["p"]


def rejection_rate(
    p_value: Callable[[np.ndarray, np.ndarray], np.ndarray],
    model: GridModel,
    k: int,
    n_sims: int,
    effect: float = 0.0,
    seed: int = 0,
) -> float:
    """Share of simulated comparisons with p ≤ α: the false-positive rate at effect 0, else power.

    ``p_value(diffs [n_sims, k], collapsed [n_sims])`` → p ``[n_sims]``.
    """
    a, b, collapsed = simulate(model, k, n_sims, effect, seed)
    return float(np.mean(p_value(a - b, np.asarray(collapsed.any(-1))) <= ALPHA))


def table(ks: Sequence[int] = (3, 5, 10), n_sims: int = 4000, effects: Sequence[float] = (0.02, 0.04)) -> str:
    """Markdown: false-positive rate (normal and collapse nulls) and power of the test of record."""
    normal, heavy = GridModel(), GridModel(collapse_rate=0.1)
    head = [
        "k",
        "FPR (no collapse)",
        "FPR (10 % collapsed runs)",
        *(f"power, +{e:.2f} accuracy" for e in effects),
    ]
    rows = []
    for k in ks:
        row = [str(k)]
        for model in (normal, heavy):
            row.append(f"{rejection_rate(record_p, model, k, n_sims, seed=k):.3f}")
        for effect in effects:
            row.append(f"{rejection_rate(record_p, normal, k, n_sims, effect, seed=100 + k):.2f}")
        rows.append(row)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Simulate the seed-level test's false-positive rate and power."
    )
    parser.add_argument(
        "--sims", type=int, default=4000, help="simulated comparisons per cell (default 4000)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 10], help="seed counts k")
    args = parser.parse_args(argv)
    print(table(args.seeds, args.sims))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
