"""A callback that holds a SLURM job at a training step until the scheduler's signal reaches it.

The SLURM tests pre-empt or cancel a *running* job at a known point: the job of the sweep whose
folder is named ``job`` writes ``marker`` (its SLURM job id) when it reaches ``step`` and then waits,
for at most ``wait_s``, until a warning signal arrives. The signal is observed by wrapping, not
replacing, the handler installed at that moment (``RequeueCheckpoint``'s, which chains to
submitit's), so the code under test reacts as it would without this helper. It holds once per
marker: a requeued or resumed job runs the same config straight through.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L


class HoldForSignal(L.Callback):
    """In job ``job``, write ``marker`` at ``step`` and wait there until ``signal_name`` arrives (once)."""

    def __init__(
        self, step: int, job: str | int, marker: str, signal_name: str = "SIGUSR2", wait_s: float = 120.0
    ) -> None:
        self.step, self.job, self.marker, self.wait_s = step, str(job), Path(marker), wait_s
        self.signum = signal.Signals[signal_name]

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int
    ) -> None:
        if trainer.global_step != self.step or self.marker.exists():
            return
        if Path(trainer.default_root_dir).name != self.job:
            return
        arrived: list[int] = []
        previous = signal.getsignal(self.signum)

        def observe(signum: int, frame: FrameType | None) -> None:
            arrived.append(signum)
            if callable(previous):
                previous(signum, frame)

        signal.signal(self.signum, observe)
        array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
        # <array>_<task> names this task alone; a task's own job id can equal the array's id (all tasks).
        self.marker.write_text(f"{array}_{task}\n" if array else f"{os.environ.get('SLURM_JOB_ID', '')}\n")
        deadline = time.monotonic() + self.wait_s
        while not arrived and time.monotonic() < deadline:
            time.sleep(0.1)
        signal.signal(self.signum, previous)
