"""Statistics of a sweep: per-cell mean ± std over seeds, and differences to a baseline paired by seed.

Differences are paired by seed because the same seed gives the same split and the same subsample.
Each comparison is tested at the seed level (:mod:`dicebert.sweeps.inference`: paired t, or the
exact sign-flip test where a collapsed run makes normality doubtful), and the whole report is one
Holm family: every comparison of every metric at every ρ. Each comparison also carries its minimum
detectable difference, so that "no difference" reads as a bound.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from dicebert.errors import SweepError
from dicebert.sweeps.inference import ALPHA, holm, mdd, seed_test
from dicebert.sweeps.load import METRICS, Sweep

#: The metrics whose difference to the baseline the report tests (one Holm family over all of them).
#: Post-hoc macro-F1 is each run's own adjusted score: "within x points of the best" needs its interval.
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


def paired_differences(sweep: Sweep, confidence: float = 0.95) -> pd.DataFrame:
    """Method − baseline per ρ and metric, paired by seed; seed-level tests; one Holm family.

    Seeds that finished for only one of the two are left out of the pair (``n_pairs`` counts the
    rest); repeated runs of one seed are averaged first. The test of record is the paired t-test,
    or the sign-flip test when a paired run collapsed (``collapsed`` in summary.csv). The family
    for Holm's correction is every (metric, method, ρ) comparison of this report with a p-value,
    less the rows that repeat an earlier method (:func:`identical_methods`); ``family_size`` says
    how many. ``<metric>/mdd`` is the true difference the test would find with 80 % power at the
    family's strictest level α/m and the observed spread of the per-seed differences.
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
                if col not in ok:  # not measured by these runs (e.g. post-hoc needs saved logits): "–"
                    rec.update({f"{col}/{k}": v for k, v in seed_test([]).items()})
                    continue
                pairs = pd.merge(
                    _per_seed(other, col).rename(columns={col: "m", "collapsed": "cm"}),
                    _per_seed(base, col).rename(columns={col: "b", "collapsed": "cb"}),
                    left_index=True,
                    right_index=True,
                ).dropna(subset=["m", "b"])
                diff = (pairs["m"] - pairs["b"]).to_numpy(dtype=float)
                robust = bool((pairs["cm"] | pairs["cb"]).any())
                rec.update({f"{col}/{k}": v for k, v in seed_test(diff, robust, confidence).items()})
            records.append(rec)
    table = pd.DataFrame(records)
    if table.empty:
        return table
    # A row that is another method again (identical on every seed) is not a second test: out of the family.
    twins = identical_methods(sweep)
    table["same_as"] = [twins.get((m, r), "") for m, r in zip(table["method"], table["rho"], strict=True)]
    p_cols = [f"{col}/p" for col in DIFF_METRICS]
    table.loc[table["same_as"] != "", p_cols] = math.nan
    family = table[p_cols].to_numpy(dtype=float)
    adjusted = holm(family.ravel()).reshape(family.shape)
    m = int(np.isfinite(family).sum())
    table["family_size"] = m
    for j, col in enumerate(DIFF_METRICS):
        table[f"{col}/p_holm"] = adjusted[:, j]
        table[f"{col}/mdd"] = [
            mdd(sd, int(n), ALPHA / max(m, 1), test=test) if np.isfinite(p) else math.nan
            for sd, n, test, p in zip(
                table[f"{col}/sd"], table[f"{col}/n_pairs"], table[f"{col}/test"], family[:, j], strict=True
            )
        ]
    return table


def _per_seed(runs: pd.DataFrame, col: str) -> pd.DataFrame:
    """Per seed: the mean of ``col`` over its runs and whether any of them collapsed."""
    frame = pd.DataFrame(
        {
            "seed": runs["seed"],
            col: pd.to_numeric(runs[col], errors="coerce"),
            "collapsed": runs["collapsed"].astype(bool) if "collapsed" in runs else False,
        }
    )
    return frame.groupby("seed").agg({col: "mean", "collapsed": "any"})


def best_on_validation(sweep: Sweep, col: str = "val/best_macro_f1") -> str:
    """The method with the highest mean validation score over its finished runs (every ρ together).

    The "against the best" report's baseline: picking it on test would make the comparison with
    it a winner's-curse test.
    """
    if col not in sweep.ok or sweep.ok[col].isna().all():
        raise SweepError(f"no run of this sweep recorded {col}; pass --baseline <method> instead")
    means = sweep.ok.assign(v=pd.to_numeric(sweep.ok[col], errors="coerce")).groupby("method")["v"].mean()
    return str(means.idxmax())


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
