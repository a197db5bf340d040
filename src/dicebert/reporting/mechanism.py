"""Why a loss loses a rare class: how often each class is in a training batch, and its share of the gradient.

Ratio-of-probability losses (the Dice family) see a class only in batches that contain it, and
their gradient for a class whose probability is already small shrinks with p(1−p). These two
numbers, per class over the whole fit, make that mechanism visible in ``metrics.json`` and in sweep
reports instead of leaving it to guesswork:

- ``train/presence/<class>``: the fraction of training batches holding at least one example;
- ``train/grad_share/<class>``: the class's share of Σ|∂loss/∂logit| over all training steps
  (the logit column of that class, every example of the batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from dicebert.reporting.finish import FinishedRun


class ClassSignalMonitor(L.Callback):
    """``callbacks.mechanism``: batch presence and logit-gradient mass per class, over the whole fit."""

    def __init__(self) -> None:
        self._hook: Any = None
        self.batches = 0
        self.present: Tensor | None = None
        self.grad_mass: Tensor | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        head = getattr(getattr(pl_module, "net", None), "head", None)
        if isinstance(head, nn.Module):  # the classifier's head: its output is the logits
            self._hook = head.register_forward_hook(self._on_logits)

    def _on_logits(self, module: nn.Module, inputs: Any, logits: Tensor) -> None:
        if not (module.training and logits.requires_grad):
            return  # validation/test forwards: no gradient to measure

        def record(grad: Tensor) -> None:
            mass = grad.detach().float().abs().sum(0).cpu()
            self.grad_mass = mass if self.grad_mass is None else self.grad_mass + mass

        logits.register_hook(record)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int
    ) -> None:
        num_classes = len(pl_module.class_names)  # type: ignore[arg-type]
        seen = torch.bincount(batch["labels"].detach().cpu(), minlength=num_classes) > 0
        self.present = seen.float() if self.present is None else self.present + seen.float()
        self.batches += 1

    def state_dict(self) -> dict[str, Any]:  # a resumed run keeps the counts of its first part
        return {"batches": self.batches, "present": self.present, "grad_mass": self.grad_mass}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.batches = int(state_dict.get("batches", 0))
        self.present, self.grad_mass = state_dict.get("present"), state_dict.get("grad_mass")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def metrics(self, class_names: Sequence[str]) -> dict[str, float]:
        """``train/presence/<class>`` and ``train/grad_share/<class>``; empty before any training step."""
        out: dict[str, float] = {}
        if self.present is not None and self.batches:
            out.update(
                {
                    f"train/presence/{c}": float(v) / self.batches
                    for c, v in zip(class_names, self.present, strict=True)
                }
            )
        if self.grad_mass is not None and float(self.grad_mass.sum()) > 0:
            share = self.grad_mass / self.grad_mass.sum()
            out.update({f"train/grad_share/{c}": float(v) for c, v in zip(class_names, share, strict=True)})
        return out

    def metrics_record(self, run: FinishedRun) -> dict[str, float]:
        """:meth:`metrics` for the finished run (empty for a baseline: it took no training step)."""
        return self.metrics(run.class_names)
