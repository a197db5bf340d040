"""Test-only Lightning callbacks, loaded by the training subprocesses from the repository root."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L


class KillAtStep(L.Callback):
    """SIGKILL this process at a given global step: a hard crash that no handler can soften."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int
    ) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class RecordSampler(L.Callback):
    """Write, per rank, what fed training (public DataLoader attributes only) and what it drew.

    Recorded: the loader's batch sampler and sampler classes, the class counts drawn over the
    whole fit and in epoch 0 alone, and the share of real (unpadded) tokens in epoch 0.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.labels: Counter[int] = Counter()
        self.epoch0_examples = 0
        self.epoch0_tokens = [0, 0]  # real, padded-to

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int
    ) -> None:
        self.labels.update(batch["labels"].tolist())
        if trainer.current_epoch == 0:
            self.epoch0_examples += len(batch["labels"])
            self.epoch0_tokens[0] += int(batch["attention_mask"].sum())
            self.epoch0_tokens[1] += batch["attention_mask"].numel()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loader = trainer.train_dataloader
        batches = loader.batch_sampler
        grouped = batches is not None and type(batches).__name__ != "BatchSampler"
        sampler = batches.sampler if grouped else loader.sampler
        self.out_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "batch_sampler": type(batches).__name__,
            "sampler": type(sampler).__name__,
            "labels": dict(self.labels),
            "epoch0_examples": self.epoch0_examples,
            "epoch0_real_token_share": self.epoch0_tokens[0] / max(self.epoch0_tokens[1], 1),
            "world_size": trainer.world_size,
        }
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


class KillOnceInJob(L.Callback):
    """SIGKILL the sweep at a global step of the job whose folder ends with ``job``, once per ``marker``.

    The marker file (outside the sweep) makes the kill happen only in the first invocation, so the
    resumed invocation can run the very same config (a changed config would be refused).
    """

    def __init__(self, step: int, job: str | int, marker: str) -> None:
        self.step, self.job, self.marker = step, str(job), Path(marker)  # Hydra reads `1` as an int

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int
    ) -> None:
        from hydra.core.hydra_config import HydraConfig

        here = Path(HydraConfig.get().runtime.output_dir).name
        if here == self.job and trainer.global_step == self.step and not self.marker.exists():
            self.marker.write_text("killed\n")
            os.kill(os.getpid(), signal.SIGKILL)


class SignalAtStep(L.Callback):
    """Send this process a signal at a global step, as SLURM does before pre-empting a job."""

    def __init__(self, step: int, signal_name: str = "SIGUSR2") -> None:
        self.step, self.signum = step, signal.Signals[signal_name]

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int
    ) -> None:
        if trainer.global_step == self.step and not os.environ.get("SLURM_RESTART_COUNT"):
            os.kill(os.getpid(), self.signum)
