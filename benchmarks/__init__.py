"""Speed measurements of the template, kept outside the installed package.

``scripts/benchmark.py`` (CPU: the project against the transformers ``Trainer``, bf16, sweep
throughput, per-run fixed cost, memory) and ``scripts/gpu_benchmark.py`` (bert-base samples/s and
MFU) are thin command lines over :mod:`benchmarks.cpu` and :mod:`benchmarks.gpu`. Every model and
data module here is built from the product's Hydra configs (``conf/``) and classes.
"""
