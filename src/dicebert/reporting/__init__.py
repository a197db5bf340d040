"""One run's outputs: metrics.json, health flags, confusion figure, the results table, dashboards.

Many runs (a sweep) are :mod:`dicebert.sweeps`.
"""
