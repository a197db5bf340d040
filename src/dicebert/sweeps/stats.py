"""Statistics of a sweep: per-cell mean ± std over seeds, and differences to the baseline paired by seed.

Differences are paired by seed because the same seed gives the same split and the same subsample,
so a paired interval removes the data noise that an unpaired one would count twice. One interval
function (:func:`paired_interval`) is the seam where multiple-comparison corrections or bootstrap
intervals plug in: every difference of the report goes through it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from dicebert.posthoc import LOGITS_FILE, adjusted_predictions, macro_f1
from dicebert.priors import log_prior, run_prior
from dicebert.sweeps.load import METRICS, Sweep

#: The metrics whose difference to the baseline the report shows. Post-hoc macro-F1 pairs each
#: method's adjusted predictions with the baseline's: "within x points of the best" needs its interval.
DIFF_METRICS = ["test/macro_f1", "test/tail_f1", "posthoc/test/macro_f1"]


def cell_table(sweep: Sweep) -> pd.DataFrame:
    """Per method × ρ: run counts by status, mean/std over finished seeds of every report metric, best flag.

    ``best`` marks the highest mean macro-F1 at each ρ. It is a ranking of means, not a claim that
    the difference is real: read it with ``n`` and the paired intervals of :func:`paired_differences`.
    """
    records = []
    for rho in sweep.rhos:
        for method in sweep.methods:
            cell = sweep.runs[(sweep.runs["rho"] == rho) & (sweep.runs["method"] == method)]
            if cell.empty:
                continue
            done = cell[cell["status"] == "ok"]
            rec: dict[str, Any] = {
                "rho": rho,
                "method": method,
                "n": len(done),
                "n_failed": int((cell["status"] == "failed").sum()),
                "n_missing": int(cell["status"].isin(["missing", "incomplete"]).sum()),
                "n_collapsed": int(done["collapsed"].sum()) if "collapsed" in done else 0,
                "seeds": " ".join(str(s) for s in sorted(done["seed"].dropna().astype(int))),
                "tail_class": ", ".join(sorted(done["tail_class"].dropna().unique())),
            }
            for _, col in METRICS:
                values = pd.to_numeric(done[col], errors="coerce").dropna() if col in done else pd.Series()
                rec[f"{col}/mean"] = float(values.mean()) if len(values) else math.nan
                rec[f"{col}/std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            records.append(rec)
    table = pd.DataFrame(records)
    if table.empty:
        return table
    best = table.groupby("rho")["test/macro_f1/mean"].transform("max")
    table["best"] = table["test/macro_f1/mean"].notna() & (table["test/macro_f1/mean"] == best)
    return table


def tail_class_table(sweep: Sweep, col: str = "test/macro_f1") -> pd.DataFrame:
    """Per ρ × method × tail class: mean and n of ``col`` over the finished seeds with that tail.

    Only for a ρ whose runs have more than one tail class (``data.class_order=rotate``): it shows
    whether a method's mean is carried by the classes that happen to be easy tails.
    """
    done = sweep.ok.dropna(subset=["tail_class"])
    records = []
    for rho, at_rho in done.groupby("rho", sort=False):
        if at_rho["tail_class"].nunique() < 2:
            continue
        for (method, tail), cell in at_rho.groupby(["method", "tail_class"], sort=False):
            values = pd.to_numeric(cell[col], errors="coerce").dropna()
            records.append(
                {"rho": rho, "method": method, "tail_class": tail, "n": len(values), "mean": values.mean()}
            )
    return pd.DataFrame(records, columns=["rho", "method", "tail_class", "n", "mean"])


def paired_interval(diff: np.ndarray, confidence: float = 0.95) -> dict[str, Any]:
    """Mean of paired differences, t interval (n − 1 df) clipped to [−1, 1], the range of a difference.

    Also the two-sided paired t-test p-value. n < 2: no interval, no p. All differences equal: a
    zero-width interval at the mean and p = 1 if that mean is 0 (the report says "identical").
    """
    n = len(diff)
    mean = float(diff.mean()) if n else math.nan
    low = high = p = math.nan
    if n >= 2:
        sem = float(stats.sem(diff))
        if sem > 0:
            low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
            p = float(stats.ttest_1samp(diff, 0.0).pvalue)
        else:
            low = high = mean
            p = 1.0 if mean == 0 else 0.0
    low, high = max(float(low), -1.0), min(float(high), 1.0)
    return {"n_pairs": n, "diff": mean, "ci_low": low, "ci_high": high, "p": p, "interval": "t"}


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


def _f1_replicates(
    weights: np.ndarray, labels: np.ndarray, preds: np.ndarray, num_classes: int
) -> np.ndarray:
    """Per-class F1 of each bootstrap replicate, ``[n_boot, C]``; ``weights[b, i]``: draws of example i."""
    out = np.zeros((weights.shape[0], num_classes))
    for c in range(num_classes):
        tp = weights @ ((labels == c) & (preds == c))
        fp = weights @ ((labels != c) & (preds == c))
        fn = weights @ ((labels == c) & (preds != c))
        denom = 2 * tp + fp + fn
        out[:, c] = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return out


def paired_bootstrap(
    seeds: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, int | None]],
    num_classes: int,
    n_boot: int = 2000,
    confidence: float = 0.95,
    rng_seed: int = 0,
) -> dict[str, float]:
    """Mean over seeds of F1(a) − F1(b): percentile interval and two-sided p, over seeds and test examples.

    ``seeds``: per paired seed ``(labels, preds_a, preds_b, class_index)``; ``class_index`` None is
    macro-F1, else that class's F1 (the seed's tail). Each replicate draws seeds with replacement
    (training noise) and, within each, test examples with replacement (test-set noise), the same
    examples for both methods. A percentile interval of F1 differences never leaves [−1, 1].
    """
    rng = np.random.default_rng(rng_seed)
    k = len(seeds)
    per_seed = np.empty((k, n_boot))
    point = np.empty(k)
    for s, (labels, pa, pb, cls) in enumerate(seeds):
        n = len(labels)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
        full = np.ones((1, n))

        def score(
            w: np.ndarray, preds: np.ndarray, labels: np.ndarray = labels, cls: int | None = cls
        ) -> np.ndarray:
            f1 = _f1_replicates(w, labels, preds, num_classes)
            return f1.mean(axis=1) if cls is None else f1[:, cls]

        per_seed[s] = score(weights, pa) - score(weights, pb)
        point[s] = float((score(full, pa) - score(full, pb))[0])
    draws = per_seed[rng.integers(0, k, size=(n_boot, k)), np.arange(n_boot)[:, None]].mean(axis=1)
    alpha = 1 - confidence
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    tail = min((draws <= 0).mean(), (draws >= 0).mean())
    p = 1.0 if np.all(draws == 0) else max(min(1.0, 2 * tail), 1.0 / n_boot)  # never a p of exactly 0
    return {"diff": float(point.mean()), "ci_low": float(low), "ci_high": float(high), "p": float(p)}


def _test_predictions(row: pd.Series, col: str) -> tuple[np.ndarray, np.ndarray, int | None] | None:
    """(labels, predictions, class index) of one run for ``col``'s bootstrap; None without its inputs.

    Predictions are the argmax of the saved test logits, or for ``posthoc/*`` the run's own
    post-hoc adjusted ones (its τ and prior from metrics.json). The class index is the run's tail
    for ``test/tail_f1`` and None (macro-F1) otherwise.
    """
    folder = Path(str(row["run_dir"]))
    if not (folder / LOGITS_FILE).is_file() or not (folder / "label_map.json").is_file():
        return None
    data = np.load(folder / LOGITS_FILE)
    names = json.loads((folder / "label_map.json").read_text())
    logits = data["test_logits"]
    index = None
    if col == "test/tail_f1":
        found = [int(i) for i, name in names.items() if name == row.get("tail_class")]
        if not found:
            return None
        index = found[0]
    if not col.startswith("posthoc/"):
        return data["test_labels"], logits.argmax(1), index
    tau = pd.to_numeric(row.get("posthoc/tau"), errors="coerce")
    if pd.isna(tau):
        return None
    ordered = [names[str(i)] for i in range(len(names))]
    try:
        log_pi = log_prior(run_prior(row, ordered), len(ordered))
    except (KeyError, ValueError):  # no training counts in the row: the t interval stays
        return None
    labels, adjusted = data["test_labels"], adjusted_predictions(logits, float(tau), log_pi)
    scored = macro_f1(labels, adjusted, len(names))
    if not math.isclose(scored, float(row.get("posthoc/test/macro_f1", math.nan)), abs_tol=1e-6):
        return None  # not the predictions the run scored (a prior it did not record): the t interval stays
    return labels, adjusted, index


def _bootstrap_pairs(
    other: pd.DataFrame, base: pd.DataFrame, col: str, num_classes: int
) -> dict[str, float] | None:
    """The paired bootstrap of ``col`` when every paired seed saved its inputs (:func:`_test_predictions`)."""
    pairs = []
    for seed in sorted(set(other["seed"].dropna()) & set(base["seed"].dropna())):
        a = _test_predictions(other[other["seed"] == seed].iloc[0], col)
        b = _test_predictions(base[base["seed"] == seed].iloc[0], col)
        if a is None or b is None or not np.array_equal(a[0], b[0]):
            return None  # not the same test split (or no logits): the t interval stays
        pairs.append((a[0], a[1], b[1], a[2]))
    if len(pairs) < 2:
        return None
    return paired_bootstrap(pairs, num_classes)


def paired_differences(sweep: Sweep, confidence: float = 0.95) -> pd.DataFrame:
    """Method − baseline per ρ, paired by seed; bootstrap (or t) intervals; Holm over the family.

    Seeds that finished for only one of the two are left out of the pair (and counted in
    ``n_pairs``); repeated runs of one seed are averaged first. When every paired run saved its
    test logits, the interval and p-value come from :func:`paired_bootstrap` (seeds and test
    examples), otherwise from the t distribution over seeds (clipped to [−1, 1]). The family for
    Holm's correction is every (method, ρ) comparison with the baseline in this report, per metric,
    less the rows that repeat an earlier method (:func:`identical_methods`).
    """
    if sweep.baseline is None:
        return pd.DataFrame()
    ok = sweep.ok
    records = []
    for rho in sweep.rhos:
        at_rho = ok[ok["rho"] == rho]
        base = at_rho[at_rho["method"] == sweep.baseline]
        for method in sweep.methods:
            if method == sweep.baseline:
                continue
            other = at_rho[at_rho["method"] == method]
            if not ((sweep.runs["rho"] == rho) & (sweep.runs["method"] == method)).any():
                continue  # no such cell at all (a folder added for other ρ); failed cells stay, n = 0
            rec: dict[str, Any] = {"rho": rho, "method": method, "baseline": sweep.baseline}
            for col in DIFF_METRICS:
                if col not in ok:  # not measured by these runs (post-hoc needs saved logits): "–"
                    rec.update({f"{col}/{k}": v for k, v in paired_interval(np.array([])).items()})
                    continue
                pairs = pd.merge(
                    other.groupby("seed")[col].mean().rename("m"),
                    base.groupby("seed")[col].mean().rename("b"),
                    left_index=True,
                    right_index=True,
                ).dropna()
                diff = (pairs["m"].astype(float) - pairs["b"].astype(float)).to_numpy()
                result = paired_interval(diff, confidence)
                boot = _bootstrap_pairs(other, base, col, len(sweep.class_names)) if len(diff) >= 2 else None
                if boot is not None and not np.all(diff == 0):
                    # Δ stays the metrics' own mean difference; the bootstrap gives its uncertainty.
                    result.update(
                        ci_low=boot["ci_low"], ci_high=boot["ci_high"], p=boot["p"], interval="bootstrap"
                    )
                rec.update({f"{col}/{k}": v for k, v in result.items()})
            records.append(rec)
    table = pd.DataFrame(records)
    if table.empty:
        return table
    # A row that is another method again (identical on every seed) is not a second test: out of the family.
    twins = identical_methods(sweep)
    table["same_as"] = [twins.get((m, r), "") for m, r in zip(table["method"], table["rho"], strict=True)]
    for col in DIFF_METRICS:
        if f"{col}/p" in table:
            table.loc[table["same_as"] != "", f"{col}/p"] = math.nan
            table[f"{col}/p_holm"] = holm(table[f"{col}/p"].to_numpy(dtype=float))
    return table


def identical_methods(sweep: Sweep) -> dict[tuple[str, str], str]:
    """``(method, ρ) → note`` for a method whose finished runs equal an earlier method's on every seed.

    "by construction" when the loss registry says the two losses are one method at the runs'
    training counts (e.g. ``logit_adjusted`` at τ = 1 and ``balanced_softmax``; every prior-based
    loss and ``ce`` at ρ = 1); "identical results" when the numbers agree without that proof.
    Such rows are one method counted twice: the report says so instead of counting two confirmations.
    """
    from dicebert.losses.equivalence import equivalent

    notes: dict[tuple[str, str], str] = {}
    ok = sweep.ok
    score_cols = [c for c in ok.columns if c.startswith("test/f1/") or c == "test/macro_f1"]
    for rho in sweep.rhos:
        at_rho = ok[ok["rho"] == rho]
        for i, method in enumerate(sweep.methods):
            runs = at_rho[at_rho["method"] == method].set_index("seed")[score_cols].astype(float)
            for earlier in sweep.methods[:i]:
                if (earlier, rho) in notes:
                    continue  # compare with the first of a group only
                ref = at_rho[at_rho["method"] == earlier].set_index("seed")[score_cols].astype(float)
                seeds = runs.index.intersection(ref.index)
                if (
                    runs.empty
                    or len(seeds) == 0
                    or not np.allclose(runs.loc[seeds], ref.loc[seeds], atol=1e-12)
                ):
                    continue
                counts = [float(at_rho.iloc[0][f"train/count/{c}"]) for c in sweep.class_names]
                try:
                    same = sweep.method_keys == ["loss"] and equivalent(earlier, None, method, None, counts)
                except Exception:  # not a registered loss name: results alone
                    same = False
                notes[(method, rho)] = f"= {earlier} " + (
                    "by construction" if same else "(identical results)"
                )
                break
    return notes
