"""Deferred re-weighting (DRW) as a training protocol, not only a loss option.

DRW (Cao et al. 2019) trains without class weights and switches them on late (``loss.drw_start``,
e.g. at 75 % of the steps); the paper evaluates the model at the end of the re-weighted phase.
Two of this template's defaults undo that unless told otherwise: early stopping can end the run
before the weights switch on, and best-on-validation checkpointing can test weights validated
before the switch. Both made `weighted_ce_drw` give exactly `ce`'s numbers on BBC at ρ = 100.
:class:`SelectAfterReweighting` (``callbacks.drw_selection``) handles both, and only for a loss
with a ``drw_start``: any other loss trains as if it were not there.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

log = logging.getLogger(__name__)


def hold_early_stopping(trainer: Any) -> dict[str, int]:
    """Make early stopping wait for the whole budget; return the minimum set (empty: nothing to hold).

    DRW is defined over the whole schedule, so the run trains its whole budget
    (``min_steps`` = ``trainer.max_steps``, else ``min_epochs`` = ``trainer.max_epochs``).
    """
    if not any(isinstance(c, EarlyStopping) for c in trainer.callbacks):
        return {}
    if trainer.max_steps > 0:
        trainer.fit_loop.epoch_loop.min_steps = trainer.max_steps
        return {"min_steps": trainer.max_steps}
    if trainer.max_epochs is not None and trainer.max_epochs > 0:
        trainer.fit_loop.min_epochs = trainer.max_epochs
        return {"min_epochs": trainer.max_epochs}
    return {}


class SelectAfterReweighting(Callback):
    """For a loss with ``drw_start``: train the whole budget, select the best checkpoint after the switch.

    At fit start, early stopping is held off until the budget's end (:func:`hold_early_stopping`).
    When the loss's deferred weights switch on, best-checkpoint selection restarts: the tested
    weights are then the best validated ones *of the re-weighted phase* (a pre-switch checkpoint
    is the unweighted model, i.e. plain CE). Lightning's ``ModelCheckpoint`` has no "select from
    step N on" option, so its documented best-k attributes are reset here, and the stale best file
    is removed (the run folder keeps one ``best-*.ckpt``). The flag is saved in checkpoints, so a
    run resumed after the switch does not restart selection a second time.
    """

    def __init__(self) -> None:
        self.loss: Any = None  # the module's loss, when it has a drw_start
        self.restarted = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        loss = getattr(pl_module, "loss_fn", None)  # ClassifierModule's loss
        drw_start = getattr(loss, "drw_start", None)
        if stage != "fit" or drw_start is None:
            return
        self.loss = loss
        held = hold_early_stopping(trainer)
        if held:
            log.info("loss.drw_start=%s: early stopping held off until %s", drw_start, held)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        # After the batch: the module sets the loss's progress in on_train_batch_start, which runs
        # after the callbacks' hook of the same name.
        if self.loss is None or self.restarted or not getattr(self.loss, "weights_active", False):
            return
        self.restarted = True
        for checkpoint in trainer.checkpoint_callbacks:
            if not isinstance(checkpoint, ModelCheckpoint) or not checkpoint.monitor:
                continue  # the resume point (last.ckpt) selects nothing
            stale = list(checkpoint.best_k_models)
            checkpoint.best_k_models = {}
            checkpoint.kth_best_model_path = checkpoint.best_model_path = ""
            checkpoint.best_model_score = None
            checkpoint.kth_value = torch.tensor(-torch.inf if checkpoint.mode == "max" else torch.inf)
            for path in stale:
                trainer.strategy.remove_checkpoint(path)
        log.info("deferred re-weighting on from step %d: checkpoint selection restarts", trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        return {"restarted": self.restarted}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.restarted = bool(state_dict.get("restarted", False))
