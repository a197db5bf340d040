"""Deferred re-weighting (DRW) as a training protocol, not only a loss option.

DRW (Cao et al. 2019) trains without class weights and switches them on late (``loss.drw_start``,
e.g. at 75 % of the steps); the paper evaluates the model at the end of the re-weighted phase.
Two of this template's defaults undo that unless told otherwise: early stopping can end the run
before the weights switch on, and best-on-validation checkpointing can test weights validated
before the switch. Both made `weighted_ce_drw` give exactly `ce`'s numbers on BBC at ρ = 100.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def hold_early_stopping(loss: Any, trainer_cfg: DictConfig, callbacks: list[Any]) -> dict[str, int]:
    """Trainer minimums that keep early stopping from ending a deferred re-weighting run early.

    DRW is defined over the whole schedule, so with ``loss.drw_start`` the run trains its whole
    budget (``trainer.min_steps`` = ``max_steps``, else ``min_epochs`` = ``max_epochs``).
    """
    if getattr(loss, "drw_start", None) is None or not any(isinstance(c, EarlyStopping) for c in callbacks):
        return {}
    max_steps, max_epochs = int(trainer_cfg.get("max_steps") or -1), int(trainer_cfg.get("max_epochs") or -1)
    held = {"min_steps": max_steps} if max_steps > 0 else {"min_epochs": max_epochs} if max_epochs > 0 else {}
    if held:
        log.info("loss.drw_start=%s: early stopping held off until %s", loss.drw_start, held)
    return held


class SelectAfterReweighting(Callback):
    """Restart best-checkpoint selection when the loss's deferred weights switch on.

    The tested weights are then the best validated ones *of the re-weighted phase*: a pre-switch
    checkpoint is the unweighted model, i.e. plain CE. Lightning's ``ModelCheckpoint`` has no
    "select from step N on" option, so its documented best-k attributes are reset here, and the
    stale best file is removed (the run folder keeps one ``best-*.ckpt``). The flag is saved in
    checkpoints, so a run resumed after the switch does not restart selection a second time.
    """

    def __init__(self, loss: Any) -> None:
        self.loss = loss
        self.restarted = False

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        # After the batch: the module sets the loss's progress in on_train_batch_start, which runs
        # after the callbacks' hook of the same name.
        if self.restarted or not getattr(self.loss, "weights_active", False):
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
