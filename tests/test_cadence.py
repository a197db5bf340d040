"""Validation on a step cadence: a training split longer than the budget still selects a checkpoint."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from dicebert.job import objective
from dicebert.train import train


def validated_steps(run: Path) -> list[int]:
    """The optimizer steps after which a val/macro_f1 was recorded (CSV logger).

    Lightning logs a validation that runs inside the training loop under the step count before the
    batch it follows (it increments after the validation), hence the + 1.
    """
    with open(run / "csv" / "metrics.csv", newline="") as handle:
        return [int(row["step"]) + 1 for row in csv.DictReader(handle) if row.get("val/macro_f1")]


def test_default_trainer_validates_on_a_step_cadence(make_cfg) -> None:
    cfg = make_cfg(fast=False)
    assert cfg.trainer.check_val_every_n_epoch is None  # counted across epochs, not per epoch
    assert cfg.trainer.val_check_interval == 50 and cfg.trainer.max_steps == 250
    assert cfg.trainer.min_epochs is None  # else the budget-end validation waits for an epoch end
    assert cfg.callbacks.validate_at_budget_end._target_ == "dicebert.cadence.ValidateAtBudgetEnd"


def test_a_split_longer_than_the_budget_is_validated_and_feeds_the_objective(make_cfg, tmp_path) -> None:
    """8 batches per epoch, a 7-step budget: checks at steps 3 and 6 on the cadence, 7 at the end."""
    cfg = make_cfg(
        "data.batch_size=2",
        "trainer.max_epochs=-1",
        "trainer.max_steps=7",
        "trainer.check_val_every_n_epoch=null",
        "trainer.val_check_interval=3",
    )
    record = train(cfg)
    run = tmp_path / "run"
    assert validated_steps(run) == [3, 6, 7]
    assert math.isfinite(record["val/best_macro_f1"])
    assert objective(cfg, record) == record["val/best_macro_f1"]  # the sweep objective is measured
    assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1


def test_without_the_callback_the_budget_end_goes_unvalidated(make_cfg, tmp_path: Path) -> None:
    """What the budget-end callback adds: the same run without it never validates its last 1 step."""
    cfg = make_cfg(
        "data.batch_size=2",
        "trainer.max_epochs=-1",
        "trainer.max_steps=7",
        "trainer.check_val_every_n_epoch=null",
        "trainer.val_check_interval=3",
        "~callbacks.validate_at_budget_end",
    )
    train(cfg)
    assert validated_steps(tmp_path / "run") == [3, 6]


@pytest.mark.parametrize("epochs", [1, 2])
def test_an_epoch_budget_validates_its_last_batch(make_cfg, tmp_path: Path, epochs: int) -> None:
    """max_epochs ends the run before the first step-cadence check: the end is still validated."""
    record = train(
        make_cfg(
            f"trainer.max_epochs={epochs}",
            "trainer.check_val_every_n_epoch=null",
            "trainer.val_check_interval=50",
        )
    )
    steps = validated_steps(tmp_path / "run")
    assert len(steps) == 1 and steps[0] > 0
    assert math.isfinite(record["val/best_macro_f1"])
