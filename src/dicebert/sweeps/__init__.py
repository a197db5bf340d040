"""Many runs: a Hydra sweep folder from its job folders to a report you can put in a paper.

- :mod:`~dicebert.sweeps.grid`: the job grid a sweep meant to run (``multirun.yaml``), override lookups;
- :mod:`~dicebert.sweeps.load`: every job folder (finished, failed, killed, never started) as a row;
- :mod:`~dicebert.sweeps.stats`: per-cell mean ± std over seeds, paired differences to a baseline;
- :mod:`~dicebert.sweeps.plots`: macro-F1 vs ρ, per-class F1, the confusion-matrix grid;
- :mod:`~dicebert.sweeps.report`: summary.csv, cells.csv, differences.csv, report.md (``compare_sweep``);
- :mod:`~dicebert.sweeps.callback`: the Hydra callback that runs all of it when a sweep ends.

Nothing is imported here, so a training run that only needs one submodule loads only that one.
"""
