"""Statistics of a sweep: per-cell mean ± std over seeds, and differences to the baseline paired by seed.

Differences are paired by seed because the same seed gives the same split and the same subsample,
so a paired interval removes the data noise that an unpaired one would count twice. One interval
function (:func:`paired_interval`) is the seam where multiple-comparison corrections or bootstrap
intervals plug in: every difference of the report goes through it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from dicebert.sweeps.load import METRICS, Sweep

#: The metrics whose difference to the baseline the report shows.
DIFF_METRICS = ["test/macro_f1", "test/tail_f1"]


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


def paired_interval(diff: np.ndarray, confidence: float = 0.95) -> dict[str, float]:
    """Mean of paired differences, t interval (n − 1 df): ``n_pairs``, ``diff``, ``ci_low``, ``ci_high``.

    n < 2: no interval (NaN). All differences equal: a zero-width interval at the mean.
    """
    n = len(diff)
    mean = float(diff.mean()) if n else math.nan
    low = high = math.nan
    if n >= 2:
        sem = float(stats.sem(diff))
        if sem > 0:
            low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
        else:
            low = high = mean
    return {"n_pairs": n, "diff": mean, "ci_low": float(low), "ci_high": float(high)}


def paired_differences(sweep: Sweep, confidence: float = 0.95) -> pd.DataFrame:
    """Method − baseline per ρ, paired by seed, with a t interval over the paired seeds (n − 1 df).

    Seeds that finished for only one of the two are left out of the pair (and counted in
    ``n_pairs``); repeated runs of one seed are averaged first. With n pairs < 2 there is no
    interval. With n = 3 the t quantile is 4.30, so the interval is wide: that is the honest answer.
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
                pairs = pd.merge(
                    other.groupby("seed")[col].mean().rename("m"),
                    base.groupby("seed")[col].mean().rename("b"),
                    left_index=True,
                    right_index=True,
                ).dropna()
                diff = (pairs["m"].astype(float) - pairs["b"].astype(float)).to_numpy()
                rec.update({f"{col}/{k}": v for k, v in paired_interval(diff, confidence).items()})
            records.append(rec)
    return pd.DataFrame(records)
