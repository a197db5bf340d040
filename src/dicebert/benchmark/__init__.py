"""Side-by-side speed measurements of the project against the write-up's loop (issue 6).

``scripts/benchmark.py`` (CPU, all items) and ``scripts/gpu_benchmark.py`` (bert-base on a GPU)
are thin wrappers around :mod:`dicebert.benchmark.runner` and :mod:`dicebert.benchmark.gpu`.
Nothing is imported here, so the GPU script needs only torch and transformers.
"""
