"""Save a resumable checkpoint when SLURM warns of pre-emption or time-out (submitit requeues the job).

Its own module so that reading sweeps (``dicebert.sweeps.resume``, the report) needs no Lightning import.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L

log = logging.getLogger(__name__)


class RequeueCheckpoint(L.Callback):
    """Save ``checkpoints/last.ckpt`` when SLURM warns of pre-emption or time-out, then hand over.

    submitit asks SLURM for a warning signal (``USR2`` by default, ``SUBMITIT_PREEMPT_SIGNAL``
    changes it) and requeues the job from its own handler. This callback chains in front of that
    handler: the signal only sets a flag (a handler must not save in the middle of an optimizer
    step); at the next batch boundary the checkpoint is written atomically and the previous handler
    (submitit's requeue) runs. The requeued job then finds ``last.ckpt`` and resumes
    (:func:`dicebert.sweeps.resume.decide`, active when ``SLURM_RESTART_COUNT`` > 0). Outside SLURM
    it does nothing unless ``always=True`` (tests).
    """

    def __init__(self, signal_name: str | None = None, always: bool = False) -> None:
        name = signal_name or os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
        self.signum = signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
        self.always = always
        self._pending: int | None = None
        self._previous: Any = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or not (self.always or "SLURM_JOB_ID" in os.environ):
            return
        self._previous = signal.signal(self.signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._pending = signum

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self._pending is None:
            return
        signum, self._pending = self._pending, None
        path = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        for callback in trainer.checkpoint_callbacks:  # the run's own checkpoint folder
            dirpath = getattr(callback, "dirpath", None)
            if dirpath:
                path = Path(dirpath) / "last.ckpt"
        trainer.save_checkpoint(path)
        log.warning("signal %s: saved %s for the requeued job", signal.Signals(signum).name, path)
        previous = self._previous
        if callable(previous):
            previous(signum, None)  # submitit: requeue this job and exit
        raise SystemExit(
            f"signal {signal.Signals(signum).name}: checkpoint saved to {path}; requeue to resume"
        )

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
            self._previous = None
