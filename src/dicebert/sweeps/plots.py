"""Sweep figures: macro-F1 against ρ, per-class F1 heat maps, the confusion-matrix grid.

Drawn on :class:`matplotlib.figure.Figure` objects, never through pyplot: importing or calling
these switches no backend (a notebook keeps its own and displays the returned figure), and a
figure needs no closing. Confusion matrices use the run's own renderer (``draw_confusion``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dicebert.reporting.run_outputs import draw_confusion
from dicebert.sweeps.load import Sweep, rho_sort_key
from dicebert.sweeps.stats import cell_table

#: Plot name → file name in the sweep folder.
PLOTS = {
    "macro_f1_vs_rho": "macro_f1_vs_rho.png",
    "per_class_f1": "per_class_f1.png",
    "confusion": "confusion_matrices.png",
}


def plot_macro_f1_vs_rho(
    sweep: Sweep, metric: str = "test/macro_f1", cells: pd.DataFrame | None = None
) -> Figure:
    """One line per method: mean over seeds at each ρ, error bars ±1 std (none where n = 1).

    ``cells``: the sweep's :func:`~dicebert.sweeps.stats.cell_table` when already computed.
    """
    table = cell_table(sweep) if cells is None else cells
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    numeric = all(rho_sort_key(r)[0] == 0 for r in sweep.rhos)
    positions = {r: (float(r) if numeric else i) for i, r in enumerate(sweep.rhos)}
    log_x = numeric and all(p > 0 for p in positions.values()) and len(positions) > 1
    for k, method in enumerate(sweep.methods):
        rows = table[(table["method"] == method) & (table["n"] > 0)] if not table.empty else table
        if rows.empty:
            continue
        shift = 0.04 * (k - (len(sweep.methods) - 1) / 2)  # side by side, so error bars stay readable
        x = [positions[r] * math.exp(shift) if log_x else positions[r] + shift for r in rows["rho"]]
        ax.errorbar(
            x,
            rows[f"{metric}/mean"],
            yerr=rows[f"{metric}/std"].fillna(0.0),
            # the colour cycle repeats after 10 methods: marker and line style keep lines apart
            marker="osD^v<>pPX*h"[k % 12],
            linestyle=("-", "--", ":")[(k // 10) % 3],
            capsize=3,
            label=method,
        )
    if log_x:
        ax.set_xscale("log")
    ax.set_xticks(list(positions.values()), list(positions))
    ax.minorticks_off()
    ax.set_xlabel("imbalance ratio ρ (head / tail training size)")
    ax.set_ylabel(f"{metric} (mean ± std over seeds)")
    ax.set_title(f"{metric} vs ρ")
    ax.grid(alpha=0.3)
    ax.legend(title=", ".join(sweep.method_keys) or "method", fontsize=8)
    fig.tight_layout()
    return fig


def plot_per_class_f1(sweep: Sweep) -> Figure:
    """Heat map per ρ: method × class, mean test F1 over seeds; the tail class is marked."""
    rhos, classes = sweep.rhos, sweep.class_names
    ok = sweep.ok
    fig = Figure(
        figsize=(1.0 * max(len(classes), 2) * max(len(rhos), 1) + 2.5, 0.45 * len(sweep.methods) + 2.2)
    )
    axes = fig.subplots(1, max(len(rhos), 1), squeeze=False)
    for ax, rho in zip(axes[0], rhos, strict=False):
        at_rho = ok[ok["rho"] == rho]
        values = np.full((len(sweep.methods), len(classes)), np.nan)
        for i, method in enumerate(sweep.methods):
            runs = at_rho[at_rho["method"] == method]
            for j, name in enumerate(classes):
                col = f"test/f1/{name}"
                if col in runs and runs[col].notna().any():
                    values[i, j] = float(runs[col].astype(float).mean())
        ax.imshow(values, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        tails = set(at_rho["tail_class"].dropna())
        ax.set_xticks(
            range(len(classes)), [f"{c}*" if c in tails else c for c in classes], rotation=45, ha="right"
        )
        ax.set_yticks(range(len(sweep.methods)), sweep.methods)
        ax.set_title(f"ρ = {rho}")
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                if not np.isnan(values[i, j]):
                    color = "black" if values[i, j] > 0.6 else "white"
                    ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=8, color=color)
    fig.suptitle("test F1 per class (mean over seeds; * = tail class)")
    fig.tight_layout()
    return fig


def plot_confusion_grid(sweep: Sweep) -> Figure:
    """Method × ρ grid of test confusion matrices, counts summed over seeds, colour = row recall."""
    rhos, methods, n = sweep.rhos, sweep.methods, max(len(sweep.class_names), 1)
    size = 0.45 * n + 1.2
    fig = Figure(figsize=(size * len(rhos) + 1, size * len(methods) + 1))
    axes = fig.subplots(len(methods), len(rhos), squeeze=False)
    for i, method in enumerate(methods):
        for j, rho in enumerate(rhos):
            ax = axes[i][j]
            matrix = sweep.confusion.get((method, rho))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"ρ = {rho}", fontsize=9)
            if j == 0:
                ax.set_ylabel(method, fontsize=9)
            if matrix is None:
                ax.text(
                    0.5, 0.5, "no finished run", ha="center", va="center", fontsize=8, transform=ax.transAxes
                )
                continue
            draw_confusion(ax, matrix, fontsize=6, annotate=n <= 8)
    fig.suptitle("test confusion (rows true, columns predicted; counts summed over seeds)", fontsize=10)
    fig.text(0.5, 0.005, "classes: " + ", ".join(sweep.class_names), ha="center", fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    return fig
