"""A callback that times a real ``train.py`` run's phases and prints them, with its peak memory, at exit.

Added to a run from the command line, so the run is exactly the user's (no wrapper program)::

    PYTHONPATH=. python -m dicebert.train +callbacks.phase_clock._target_=benchmarks.clock.PhaseClock

The parent process knows when it started the run; the wall-clock stamps printed here let it split
the run into: start-up (interpreter, imports, config, data, model: everything before the Trainer
holds its callbacks), set-up to the first training step, the training loop (with validation),
the test, and the tail (run outputs, loggers' shutdown, interpreter exit).
"""

from __future__ import annotations

import atexit
import json
import time
from typing import Any

import lightning as L

from benchmarks.common import peak_rss_mb

MARK = "DICEBERT_PHASES="


class PhaseClock(L.Callback):
    """Wall-clock stamps (``time.time()``) of a run's phase boundaries; printed as one JSON line at exit."""

    def __init__(self) -> None:
        self.stamps: dict[str, float] = {"callbacks_built": time.time()}
        atexit.register(self.report)

    def _stamp(self, name: str) -> None:
        self.stamps.setdefault(name, time.time())

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stamp("fit_start")

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: Any) -> None:
        self._stamp("first_step")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stamps["train_end"] = time.time()

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stamp("test_start")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stamps["test_end"] = time.time()

    def report(self) -> None:
        self.stamps["atexit"] = time.time()
        print(MARK + json.dumps({"stamps": self.stamps, "peak_rss_mb": peak_rss_mb()}), flush=True)


def phases(started: float, ended: float, stamps: dict[str, float]) -> dict[str, float]:
    """Seconds per phase from the parent's start/end times and the child's stamps (missing: skipped)."""
    order = [
        ("startup_s", "callbacks_built"),
        ("setup_to_first_step_s", "first_step"),
        ("train_loop_s", "train_end"),
        ("before_test_s", "test_start"),
        ("test_loop_s", "test_end"),
        ("outputs_s", "atexit"),
    ]
    out: dict[str, float] = {}
    previous = started
    for name, stamp in order:
        if stamp in stamps:
            out[name] = stamps[stamp] - previous
            previous = stamps[stamp]
    out["exit_s"] = ended - previous
    out["total_s"] = ended - started
    out["outside_loops_s"] = out["total_s"] - out.get("train_loop_s", 0.0) - out.get("test_loop_s", 0.0)
    return out


def between_runs(first: dict[str, float], second: dict[str, float]) -> float:
    """Seconds outside the loops per run when two runs share a process (a sweep's jobs).

    From the first run's last test batch to the second run's first training step (the first run's
    outputs, Hydra's next job, the second run's data, model and logger), plus the second run's
    pause between training and testing: what each further job of a sweep pays, imports excluded.
    """
    return (second["first_step"] - first["test_end"]) + (second["test_start"] - second["train_end"])
