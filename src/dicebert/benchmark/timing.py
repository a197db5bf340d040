"""Timing helpers: a Lightning step timer, a plain-loop timer and peak memory."""

from __future__ import annotations

import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import lightning as L


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def peak_rss_mb() -> float:
    """This program's peak resident memory, MiB: VmHWM on Linux, ru_maxrss elsewhere.

    Not ru_maxrss on Linux: it survives exec, so a run started by a 3 GB parent would report the
    parent's size (fork copies its page tables) instead of its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class StepTimer(L.Callback):
    """Per-step times inside ``trainer.fit``, so the framework is timed where it runs.

    ``compute``: on_train_batch_start → on_train_batch_end (forward, backward, clip, step, logging).
    ``period``: on_train_batch_end → next on_train_batch_end, which also holds fetching and
    collating the next batch and every hook in between: the figure comparable to a plain loop's
    full iteration. The first ``warmup`` steps are dropped (allocator, optimizer state).
    """

    def __init__(self, warmup: int = 0) -> None:
        self.warmup = warmup
        self.compute: list[float] = []
        self.period: list[float] = []
        self.samples: list[int] = []
        self._start = 0.0
        self._last_end: float | None = None
        self._step = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_end = None  # the gap across an epoch boundary holds validation: not a step

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, *_: Any
    ) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *_: Any
    ) -> None:
        now = time.perf_counter()
        if self._step >= self.warmup:
            self.compute.append(now - self._start)
            if self._last_end is not None:
                self.period.append(now - self._last_end)
            self.samples.append(len(batch["labels"]))
        self._last_end = now
        self._step += 1


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 2, min_seconds: float = 0.0) -> float:
    """Median seconds per call of ``fn`` after ``warmup`` calls (at least ``repeats`` timed calls)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - started < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return median(times)
