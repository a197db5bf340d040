"""Collect the test logits while the test loop runs, for ``logits.npz`` (post-hoc analysis).

A callback rather than a second ``trainer.predict`` pass over the test set: the test loop already
computed them (``ClassifierModule.test_step`` returns its logits), and the labels come from the same
batches, so logits and labels line up even with ``trainer.limit_test_batches``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch


class TestLogitsRecorder(L.Callback):
    """Keeps ``(logits, labels)`` of the last test epoch, in loader order."""

    def __init__(self) -> None:
        self._logits: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._logits, self._labels = [], []

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if isinstance(outputs, torch.Tensor):
            self._logits.append(outputs.detach().float().cpu())
            self._labels.append(batch["labels"].detach().cpu())

    def arrays(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(logits [N, C], labels [N])`` or None when the test step returned no logits."""
        if not self._logits:
            return None
        return torch.cat(self._logits).numpy(), torch.cat(self._labels).numpy()
