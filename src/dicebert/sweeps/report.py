"""The sweep report: summary.csv, cells.csv, differences.csv, report.md and the PNG plots.

:func:`compare_sweep` is what ``scripts/compare_runs.py``, the sweep callback and the notebook
call; the cell table and the paired differences are computed once and shared by every output.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dicebert.reporting.run_outputs import save_figure
from dicebert.reporting.tables import fmt, markdown_table
from dicebert.sweeps.load import MAIN_METRICS, RARE_METRICS, Sweep, load_sweep
from dicebert.sweeps.plots import PLOTS, plot_confusion_grid, plot_macro_f1_vs_rho, plot_per_class_f1
from dicebert.sweeps.stats import (
    DIFF_METRICS,
    best_on_validation,
    cell_table,
    identical_methods,
    paired_differences,
    tail_class_table,
)
from dicebert.sweeps.throughput import sweep_throughput

#: ``--baseline best-val``: the method with the best mean validation macro-F1 (never chosen on test).
BEST_ON_VALIDATION = "best-val"


def _mean_std(rec: pd.Series, col: str, bold: bool = False) -> str:
    mean, std = rec.get(f"{col}/mean", math.nan), rec.get(f"{col}/std", math.nan)
    text = fmt(mean) if math.isnan(std) else f"{fmt(mean)} ± {fmt(std)}"
    return f"**{text}**" if bold else text


def _diff_text(rec: pd.Series, col: str) -> str:
    """``+0.012 [−0.004, +0.030]``; ``identical`` for a zero difference on every seed."""
    diff, low, high = rec[f"{col}/diff"], rec[f"{col}/ci_low"], rec[f"{col}/ci_high"]
    if math.isnan(diff):
        return "–"
    if not math.isnan(low) and low == high == diff == 0:
        return "identical (0 on every seed)"
    text = f"{diff:+.3f}"
    if not math.isnan(low):
        text += f" [{low:+.3f}, {high:+.3f}]"
    return text


def _test_text(rec: pd.Series, col: str) -> str:
    """The p of record after Holm, its test, and the minimum detectable difference."""
    p = rec.get(f"{col}/p_holm", math.nan)
    if p is None or math.isnan(p):
        return "–"
    test = "sign-flip" if rec.get(f"{col}/test") == "sign-flip" else "t"
    mdd = rec.get(f"{col}/mdd", math.nan)
    bound = "∞" if mdd == math.inf else ("–" if math.isnan(mdd) else f"{mdd:.3f}")
    return f"{_p_text(p)} ({test}; MDD {bound})"


def _p_text(p: float) -> str:
    if p is None or math.isnan(p):
        return "–"
    return f"**{p:.3f}**" if p < 0.05 else f"{p:.3f}"


def _tail_class_section(sweep: Sweep) -> list[str]:
    """Macro-F1 per tail class (rotated tails): empty when every run of a ρ has the same tail."""
    table = tail_class_table(sweep)
    if table.empty:
        return []
    out = [
        "### Macro-F1 by tail class",
        "",
        "With the tail rotated over seeds (`data.class_order=rotate`), the mean over the seeds that "
        "made each class the tail (n in brackets): a method whose mean rests on the easy tails shows "
        "it here.",
        "",
    ]
    method_name = ", ".join(sweep.method_keys) or "method"
    for rho, at_rho in table.groupby("rho", sort=False):
        tails = sorted(at_rho["tail_class"].unique())
        rows = []
        for method, cell in at_rho.groupby("method", sort=False):
            by_tail = cell.set_index("tail_class")
            rows.append(
                [rho, method]
                + [
                    f"{fmt(by_tail.loc[t, 'mean'])} ({by_tail.loc[t, 'n']})" if t in by_tail.index else "–"
                    for t in tails
                ]
            )
        out += [markdown_table(["ρ", method_name, *(f"tail = {t}" for t in tails)], rows), ""]
    return out


def _validation_line(sweep: Sweep) -> str:
    """Which class mix chose the checkpoints and post-hoc τ: natural or long-tailed validation."""
    flags = sweep.runs.get("val_imbalance")
    long_tailed = 0 if flags is None else int(flags.fillna(False).astype(bool).sum())
    if long_tailed == 0:
        return (
            "Validation (checkpoint selection, post-hoc τ, cRT step): the natural class mix of the data, "
            "not the training split's long tail."
        )
    return (
        f"Validation (checkpoint selection, post-hoc τ, cRT step): long-tailed like the training split "
        f"(`data.val_imbalance=true`) in {long_tailed} of {len(sweep.runs)} runs, natural in the others."
    )


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
    speed = sweep_throughput(sweep.folders)
    if speed is not None:
        out[-1] += (
            f" Throughput: {speed['runs']} finished runs in {speed['wall_s'] / 60:.1f} min of wall time "
            f"(first job start to last result, per folder) = {speed['runs_per_hour']:.1f} runs/hour."
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
        _validation_line(sweep),
        "",
        "## Results per ρ",
        "",
    ]
    if table.empty:
        out += ["No finished run: nothing to compare.", ""]
    else:
        notes = identical_methods(sweep)
        header = ["ρ", method_name, "n", *(label for label, _ in MAIN_METRICS), "tail class", "note"]
        rows, rare_rows = [], []
        for _, rec in table.iterrows():
            n_text = str(rec["n"])
            if rec["n_failed"] or rec["n_missing"]:
                n_text += f" (+{rec['n_failed']} failed, +{rec['n_missing']} missing)"
            note = notes.get((rec["method"], rec["rho"]), "")
            if rec.get("n_collapsed"):
                note = "; ".join(filter(None, [note, f"{rec['n_collapsed']} of {rec['n']} collapsed"]))
            main = [
                _mean_std(rec, col, bold=col == "test/macro_f1" and rec["best"]) for _, col in MAIN_METRICS
            ]
            rows.append([rec["rho"], rec["method"], n_text, *main, rec["tail_class"] or "–", note or "–"])
            rare_rows.append(
                [rec["rho"], rec["method"], rec["n"], *(_mean_std(rec, c) for _, c in RARE_METRICS)]
            )
        out += [markdown_table(header, rows), ""]
        out += [
            'Note: "= X by construction" marks a row that is method X again (the loss registry proves the '
            'two losses identical at these training counts); "identical results" marks equal numbers on '
            "every seed without that proof. Such a row is one method counted twice, not a second "
            'confirmation. "collapsed": runs that never predict a class or do not beat the '
            "majority-class baseline (`health/*` in metrics.json); their scores are not the loss's result.",
            "",
            "### Rare classes, ranking and post-hoc logit adjustment",
            "",
            "Precision and recall of the rarest and second-rarest training class; tail AUROC (one-vs-rest "
            "ranking of the tail: a tail-F1 near 0 with a high AUROC is a threshold failure that post-hoc "
            "adjustment can fix, a low AUROC is a ranking failure); the share of training batches that "
            "hold a tail example and the tail logit's share of the loss gradient (the mechanism by which "
            "a batch-level loss starves a rare class); post-hoc logit adjustment "
            "(argmax of logits − τ·log prior, τ tuned on validation macro-F1, no retraining); cRT "
            "(runs with `crt=balanced`: a fresh linear head re-trained with class-balanced sampling on the "
            "frozen encoder's features, step chosen on validation macro-F1).",
            "",
            markdown_table(["ρ", method_name, "n", *(label for label, _ in RARE_METRICS)], rare_rows),
            "",
        ]
    out += _tail_class_section(sweep)
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
        family = int(diffs["family_size"].iloc[0])
        chosen = (
            " (best mean validation macro-F1 of the sweep, chosen on validation, never on test)"
            if sweep.baseline_rule == "best-val"
            else ""
        )
        out += [
            f"Baseline: `{sweep.baseline}`{chosen}. Δ = method − baseline on the same seed (same split, "
            "same subsample), mean over the paired seeds, with a 95 % t interval over seeds (n − 1 df, "
            "clipped to [−1, 1]). The test of record is seed-level: the paired t-test, or the exact "
            "sign-flip test where a paired run collapsed (normality doubtful); both are calibrated by "
            "simulation at 3, 5 and 10 seeds (docs/sweeps.md). "
            f"p Holm: Holm's correction over all {family} tests of this report (every metric, method "
            "and ρ; rows that repeat another method are left out); only p Holm < 0.05 is a difference "
            "this report supports. MDD: the true difference the test finds with 80 % power at the "
            f"family's strictest level (α = 0.05/{family}) given the observed spread of the per-seed "
            "differences; a difference without support is a bound, not an equality: it may be as large "
            "as the MDD. ∞: with this few seeds the sign-flip test cannot reach that level. "
            '"identical": equal on every paired seed. n < 2: no test. Post-hoc: each run\'s own '
            "post-hoc adjusted macro-F1 (its τ tuned on its validation split).",
            "",
        ]
        header = [
            "ρ",
            method_name,
            "n pairs",
            "Δ macro-F1 [95% CI]",
            "p Holm (test; MDD)",
            "Δ tail-F1 [95% CI]",
            "p Holm (test; MDD)",
            "Δ post-hoc macro-F1 [95% CI]",
            "p Holm (test; MDD)",
        ]
        rows = []
        for _, rec in diffs.iterrows():
            texts: list[str] = []
            for col in DIFF_METRICS:
                texts += [_diff_text(rec, col), _test_text(rec, col)]
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
    methods: Sequence[str] | None = None,
    default_baseline: str | None = None,
) -> Sweep:
    """Load the sweep(s) and write summary.csv, cells.csv, differences.csv, report.md and the PNG plots.

    ``out`` defaults to the (first) sweep folder, next to its runs; ``baseline="best-val"`` compares
    every method with the one of best mean validation macro-F1; the other options: :func:`load_sweep`.
    """
    best_val = baseline == BEST_ON_VALIDATION
    sweep = load_sweep(
        *folders, baseline=None if best_val else baseline, methods=methods, default_baseline=default_baseline
    )
    if best_val:
        best = best_on_validation(sweep)
        order = [best, *(m for m in sweep.methods if m != best)]
        sweep = dataclasses.replace(sweep, baseline=best, methods=order, baseline_rule=BEST_ON_VALIDATION)
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
        }
        if sweep.confusion:  # a sweep read from summary.csv has no matrices: the figure stays as it was
            figures["confusion"] = plot_confusion_grid(sweep)
        for name, fig in figures.items():
            save_figure(fig, target / PLOTS[name])
            plots[name] = PLOTS[name]
        if "confusion" not in plots and (target / PLOTS["confusion"]).is_file():
            plots["confusion"] = PLOTS["confusion"]
    (target / "report.md").write_text(render_report(sweep, plots, cells, diffs))
    return sweep


def status_counts(sweep: Sweep) -> str:
    """``3 finished, 1 failed, 0 incomplete/missing``: the one-line summary the CLI and callback print."""
    counts = sweep.runs["status"].value_counts()
    return (
        f"{counts.get('ok', 0)} finished, {counts.get('failed', 0)} failed, "
        f"{counts.get('incomplete', 0) + counts.get('missing', 0)} incomplete/missing"
    )
