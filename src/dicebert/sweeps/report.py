"""The sweep report: summary.csv, cells.csv, differences.csv, report.md and the PNG plots.

:func:`compare_sweep` is what ``scripts/compare_runs.py``, the sweep callback and the notebook
call; the cell table and the paired differences are computed once and shared by every output.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from dicebert.reporting.run_outputs import save_figure
from dicebert.reporting.tables import fmt, markdown_table
from dicebert.sweeps.load import METRICS, Sweep, load_sweep
from dicebert.sweeps.plots import PLOTS, plot_confusion_grid, plot_macro_f1_vs_rho, plot_per_class_f1
from dicebert.sweeps.stats import DIFF_METRICS, cell_table, paired_differences


def render_report(
    sweep: Sweep,
    plots: dict[str, str] | None = None,
    cells: pd.DataFrame | None = None,
    diffs: pd.DataFrame | None = None,
) -> str:
    """The Markdown report: counts, the per-cell table, paired differences, the runs that did not finish.

    ``cells``/``diffs``: :func:`cell_table` and :func:`paired_differences` when already computed.
    """
    runs = sweep.runs
    counts = runs["status"].value_counts()
    method_name = ", ".join(sweep.method_keys) or "method"
    table = cell_table(sweep) if cells is None else cells
    diffs = paired_differences(sweep) if diffs is None else diffs
    out = [f"# Sweep comparison: {', '.join(str(f) for f in sweep.folders)}", ""]
    out.append(
        f"{len(runs)} runs: {counts.get('ok', 0)} finished, {counts.get('failed', 0)} failed, "
        f"{counts.get('incomplete', 0)} incomplete, {counts.get('missing', 0)} missing "
        "(listed at the end; never dropped silently)."
    )
    out += [
        "",
        f"Method = the swept `{method_name}`; cells are method × ρ; each value is the mean ± sample std "
        "over the finished seeds, n = how many. **Bold** = highest mean macro-F1 at that ρ: a ranking of "
        "means, not a significance claim; read it with n and the paired intervals below.",
        "",
        "Tail-F1 = test F1 of the class with the fewest training examples (`train/count/<class>`); "
        "ties (every class at ρ = 1) go to the class whose name sorts last, a fixed but arbitrary "
        "pick, so at ρ = 1 it is one class's F1, not a tail effect. The class is named in the table.",
        "",
        "## Results per ρ",
        "",
    ]
    if table.empty:
        out += ["No finished run: nothing to compare.", ""]
    else:
        header = ["ρ", method_name, "n", *(label for label, _ in METRICS), "tail class"]
        rows = []
        for _, rec in table.iterrows():
            cells = []
            for _, col in METRICS:
                mean, std = rec[f"{col}/mean"], rec[f"{col}/std"]
                text = fmt(mean) if math.isnan(std) else f"{fmt(mean)} ± {fmt(std)}"
                cells.append(f"**{text}**" if col == "test/macro_f1" and rec["best"] else text)
            n_text = str(rec["n"])
            if rec["n_failed"] or rec["n_missing"]:
                n_text += f" (+{rec['n_failed']} failed, +{rec['n_missing']} missing)"
            rows.append([rec["rho"], rec["method"], n_text, *cells, rec["tail_class"] or "–"])
        out += [markdown_table(header, rows), ""]
    out += ["## Difference to the baseline, paired by seed", ""]
    if sweep.baseline is None:
        out += [
            "No baseline: the sweep has no `ce` (loss) or `none` (sampler) method; "
            "pass one with `--baseline <method>`.",
            "",
        ]
    elif diffs.empty:
        out += [f"Nothing to pair with `{sweep.baseline}`.", ""]
    else:
        out += [
            f"Δ = method − `{sweep.baseline}` on the same seed (same split, same subsample), mean over the "
            "paired seeds with a 95% t interval (n − 1 degrees of freedom). With n = 3 seeds the t "
            "quantile is 4.30, so intervals are wide: an interval that contains 0 means no evidence of "
            "a difference at this n, not evidence of none. n < 2: no interval.",
            "",
        ]
        header = ["ρ", method_name, "n pairs", "Δ macro-F1 [95% CI]", "Δ tail-F1 [95% CI]"]
        rows = []
        for _, rec in diffs.iterrows():
            texts = []
            for col in DIFF_METRICS:
                diff, low, high = rec[f"{col}/diff"], rec[f"{col}/ci_low"], rec[f"{col}/ci_high"]
                text = "–" if math.isnan(diff) else f"{diff:+.3f}"
                if not math.isnan(low):
                    text += f" [{low:+.3f}, {high:+.3f}]"
                texts.append(text)
            rows.append([rec["rho"], rec["method"], rec["test/macro_f1/n_pairs"], *texts])
        out += [markdown_table(header, rows), ""]
    if "action" in sweep.runs and (sweep.runs["action"] != "ran").any():  # a resumed sweep
        actions = sweep.runs.loc[sweep.runs["status"] != "missing", "action"].value_counts()
        out += [
            "## Resumed sweep",
            "",
            "In the last invocation (`sweep_resume=true`): "
            + ", ".join(f"{actions.get(a, 0)} {a}" for a in ("skipped", "resumed", "ran"))
            + " (per job: the `action` column of `summary.csv`). Skipped jobs count with the metrics they "
            "finished with; each job is counted once.",
            "",
        ]
    out += ["## Failed, incomplete and missing runs", ""]
    bad = sweep.not_ok
    if bad.empty:
        out += ["None: every run of the sweep finished.", ""]
    else:
        rows = [
            [
                r["job"],
                r["status"],
                r["method"],
                r["rho"],
                r["seed"],
                r["error"].splitlines()[0][:300],
                r["run_dir"],
            ]
            for _, r in bad.iterrows()
        ]
        out += [markdown_table(["job", "status", method_name, "ρ", "seed", "error", "folder"], rows), ""]
    if plots:
        out += ["## Plots", ""]
        out += [f"![{name}]({file})" for name, file in plots.items()]
        out.append("")
    out += [
        "Per-run numbers: `summary.csv` (one row per run, failed and missing included); "
        "per-cell numbers: `cells.csv`; differences: `differences.csv`.",
        "",
    ]
    return "\n".join(out)


def compare_sweep(
    *folders: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    baseline: str | None = None,
) -> Sweep:
    """Load the sweep(s) and write summary.csv, cells.csv, differences.csv, report.md and the PNG plots.

    ``out`` defaults to the (first) sweep folder, next to its runs.
    """
    sweep = load_sweep(*folders, baseline=baseline)
    target = Path(out) if out is not None else sweep.folders[0]
    target.mkdir(parents=True, exist_ok=True)
    cells, diffs = cell_table(sweep), paired_differences(sweep)  # once, for tables, plots and report
    sweep.runs.to_csv(target / "summary.csv", index=False)
    cells.to_csv(target / "cells.csv", index=False)
    diffs.to_csv(target / "differences.csv", index=False)
    plots: dict[str, str] = {}
    if not sweep.ok.empty:
        figures = {
            "macro_f1_vs_rho": plot_macro_f1_vs_rho(sweep, cells=cells),
            "per_class_f1": plot_per_class_f1(sweep),
            "confusion": plot_confusion_grid(sweep),
        }
        for name, fig in figures.items():
            save_figure(fig, target / PLOTS[name])
            plots[name] = PLOTS[name]
    (target / "report.md").write_text(render_report(sweep, plots, cells, diffs))
    return sweep


def status_counts(sweep: Sweep) -> str:
    """``3 finished, 1 failed, 0 incomplete/missing``: the one-line summary the CLI and callback print."""
    counts = sweep.runs["status"].value_counts()
    return (
        f"{counts.get('ok', 0)} finished, {counts.get('failed', 0)} failed, "
        f"{counts.get('incomplete', 0) + counts.get('missing', 0)} incomplete/missing"
    )
