"""Moved to :mod:`dicebert.sweeps` (load, stats, plots, report, callback); old imports keep working.

Configs and notebooks written before the split name ``dicebert.reporting.compare.SweepCallback``
and import the functions from here; new code imports from :mod:`dicebert.sweeps`.
"""

from dicebert.errors import SweepError
from dicebert.sweeps.callback import GROUP_ENV, SweepCallback
from dicebert.sweeps.load import Sweep, expected_jobs, grid_jobs, load_sweep, newest_sweep, tail_class
from dicebert.sweeps.plots import plot_confusion_grid, plot_macro_f1_vs_rho, plot_per_class_f1
from dicebert.sweeps.report import compare_sweep, render_report
from dicebert.sweeps.stats import cell_table, paired_differences

__all__ = [
    "GROUP_ENV",
    "Sweep",
    "SweepCallback",
    "SweepError",
    "cell_table",
    "compare_sweep",
    "expected_jobs",
    "grid_jobs",
    "load_sweep",
    "newest_sweep",
    "paired_differences",
    "plot_confusion_grid",
    "plot_macro_f1_vs_rho",
    "plot_per_class_f1",
    "render_report",
    "tail_class",
]
