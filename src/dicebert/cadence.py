"""Validation at the end of the training budget, whatever the step cadence leaves out.

The trainer validates every ``trainer.val_check_interval`` training batches, counted across
epochs (``check_val_every_n_epoch: null``), so a corpus whose first epoch is longer than the step
budget is still validated. A budget that is not a multiple of the interval (``max_steps=260`` at
50), or that ends with ``max_epochs`` before the next check, would leave its last weights
unvalidated: the best checkpoint, early stopping and the sweep objective could not see them, and
a short run would measure no ``val/macro_f1`` at all. Lightning has no "validate at the end"
switch; it does validate a batch after which ``trainer.should_stop`` is set (its early-stopping
path), which is what this callback uses on the budget's last batch.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


def is_budget_end(trainer: L.Trainer) -> bool:
    """True on the training budget's last batch (``max_steps`` reached, or ``max_epochs``' last batch)."""
    if trainer.max_steps is not None and trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
        return True
    max_epochs = trainer.max_epochs
    if max_epochs is None or max_epochs < 0:
        return False
    last_batch = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
    return bool(last_batch) and trainer.current_epoch + 1 >= max_epochs


class ValidateAtBudgetEnd(Callback):
    """Make the budget's last batch a validation batch (once; a cadence check there is the same one).

    The Trainer must allow stopping there: ``min_steps``/``min_epochs`` no larger than the budget
    (deferred re-weighting sets ``min_steps = max_steps``, which the last step meets).
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if is_budget_end(trainer):  # training ends here anyway; the flag only adds the validation
            trainer.should_stop = True
