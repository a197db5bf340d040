"""Resume from a checkpoint written mid-epoch on exactly the batches the interrupted run had left.

A pre-emption signal (``RequeueCheckpoint``) or a validation on the step cadence saves ``last.ckpt``
in the middle of an epoch. Lightning restores the step counters, but the training DataLoader does
not save its position, so the resumed epoch would start its batches again from the first. The
samplers draw from (seed, epoch) only (:mod:`dicebert.data.sampling`), so the position is
recovered by drawing, and discarding, the batches the interrupted run had already trained on.
Creating the DataLoader's iterator also draws a seed from torch's global RNG, which the
interrupted run did not do at that point: the checkpoint's RNG states are applied once more after
the skip, so dropout masks continue as they would have.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import lightning as L

from dicebert.checkpointing import restore_rng_states

log = logging.getLogger(__name__)


def _set_epoch(loader: Any, epoch: int) -> None:
    """What Lightning does before each epoch (sampler, batch sampler and its sampler)."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    for obj in (getattr(loader, "sampler", None), batch_sampler, getattr(batch_sampler, "sampler", None)):
        set_epoch = getattr(obj, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)


class ResumeMidEpoch(L.Callback):
    """On a restart mid-epoch, skip the epoch's batches already trained on and re-apply the saved RNG.

    Not needed (and inactive) for a checkpoint written at an epoch's end, where the next epoch
    starts fresh anyway. Uses the fit loop's data fetcher, which Lightning does not expose publicly:
    ``tests/test_resume.py`` checks that a resumed run still equals the uninterrupted one.
    """

    def __init__(self) -> None:
        self._rng_states: dict[str, Any] | None = None

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._rng_states = checkpoint.get("rng_states")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loop = trainer.fit_loop
        # Batches trained on in this epoch (a save in on_train_batch_end has not counted its batch completed).
        done = int(loop.epoch_loop.batch_progress.current.processed)  # type: ignore[attr-defined]
        fetcher, combined = getattr(loop, "_data_fetcher", None), getattr(loop, "_combined_loader", None)
        if not loop.restarted_mid_epoch or not 0 < done < trainer.num_training_batches:
            return
        if fetcher is None or combined is None:
            log.warning("cannot skip the %d batches already trained on: Lightning's fit loop changed", done)
            return
        for loader in combined.flattened:  # the epoch's draws, before the first one is taken
            _set_epoch(loader, trainer.current_epoch)
        iterator = fetcher.iterator  # below the fetcher, whose count Lightning already advanced by `done`
        for _ in range(done):
            next(iterator)
        if self._rng_states is not None:
            restore_rng_states(self._rng_states)
        # Lightning's warning that a mid-epoch resume "can cause unreliable results" is answered here.
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before")
        epoch = trainer.current_epoch
        log.info("resumed mid-epoch: skipped the %d batches of epoch %d already trained on", done, epoch)
