"""The post-hoc diagnostic: the tested weights' val/test logits in ``logits.npz``, and the post-hoc keys.

The test logits are collected while the test loop runs rather than by a second ``trainer.predict``
pass over the test set: the test loop already computed them (``ClassifierModule.test_step``
returns its logits), and the labels come from the same batches, so logits and labels line up even
with ``trainer.limit_test_batches``. Only the val split needs a forward pass, with the weights the
test loaded. :func:`dicebert.posthoc.posthoc_metrics` then adds post-hoc logit adjustment and
per-class AUROC/precision (``posthoc/*``, ``test/auroc/*``, ``test/precision/*``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import torch

from dicebert.posthoc import LOGITS_FILE, posthoc_metrics, save_logits

if TYPE_CHECKING:
    from dicebert.reporting.finish import FinishedRun


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


class PostHocAnalysis(TestLogitsRecorder):
    """``callbacks.posthoc``: save ``logits.npz`` and add the post-hoc keys when the run finishes.

    A baseline hands its logits over in :class:`FinishedRun`; a fine-tuned run uses the recorded
    test logits and one ``trainer.predict`` pass over val. Under DDP each rank sees only its shard,
    so the analysis is single-process only (no keys otherwise).
    """

    def metrics_record(self, run: FinishedRun) -> dict[str, float]:
        splits = dict(run.logits) if run.logits is not None else self._fine_tuned_logits(run)
        if splits is None:
            return {}
        path = run.output_dir / LOGITS_FILE
        save_logits(path, splits)
        return posthoc_metrics(path, run.class_names, run.prior)

    def _fine_tuned_logits(self, run: FinishedRun) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
        test = self.arrays()
        if test is None or not run.single_process:
            return None
        batches = run.trainer.predict(run.module, dataloaders=run.datamodule.val_dataloader())
        val = torch.cat([torch.as_tensor(b).float() for b in batches or []]).cpu().numpy()
        return {"val": (val, np.asarray(run.datamodule.datasets["val"].labels)), "test": test}
