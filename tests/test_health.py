"""Collapse diagnostics: the flags fire on collapsed predictions and stay quiet on healthy ones."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dicebert.metrics import macro_f1_from_confusion
from dicebert.reporting.health import ValMacroF1History, check_health, majority_baseline_macro_f1

NAMES = ["head", "mid", "tail"]
TRAIN_COUNTS = [100, 30, 10]


def test_flags_fire_on_a_model_that_predicts_the_majority_class_only() -> None:
    collapsed = np.array([[50, 0, 0], [30, 0, 0], [20, 0, 0]])
    health = check_health(collapsed, NAMES, TRAIN_COUNTS, val_history=[0.22, 0.22, 0.21])
    assert health.flags["health/never_predicted"] == 2
    assert health.flags["health/val_never_improved"] == 1
    assert health.flags["health/below_majority_baseline"] == 1
    assert health.flags["health/majority_baseline_macro_f1"] == pytest.approx((2 * 0.5 / 1.5) / 3)
    text = "\n".join(health.warnings)
    assert "mid, tail" in text and "never improved" in text and "majority class 'head'" in text
    assert not health.ok


def test_flags_stay_quiet_on_a_healthy_model() -> None:
    healthy = np.array([[45, 3, 2], [4, 24, 2], [2, 3, 15]])
    health = check_health(healthy, NAMES, TRAIN_COUNTS, val_history=[0.4, 0.6, 0.7])
    assert health.flags["health/never_predicted"] == 0
    assert health.flags["health/val_never_improved"] == 0
    assert health.flags["health/below_majority_baseline"] == 0
    assert health.ok and health.warnings == []


def test_a_class_predicted_but_never_right_counts_and_one_validation_is_no_verdict() -> None:
    wrong_tail = np.array([[45, 3, 2], [4, 24, 2], [10, 10, 0]])
    health = check_health(wrong_tail, NAMES, TRAIN_COUNTS, val_history=[0.5])
    assert health.flags["health/never_predicted"] == 1  # tail is predicted 4 times, never correctly
    assert health.flags["health/val_never_improved"] == 0
    assert "tail" in health.warnings[0]


def test_macro_f1_and_majority_baseline_match_torchmetrics() -> None:
    from torchmetrics.functional.classification import multiclass_f1_score

    rng = np.random.default_rng(0)
    target = rng.integers(0, 3, 200)
    preds = np.where(rng.random(200) < 0.6, target, rng.integers(0, 3, 200))
    confusion = np.zeros((3, 3), dtype=int)
    np.add.at(confusion, (target, preds), 1)
    expected = multiclass_f1_score(torch.tensor(preds), torch.tensor(target), 3, average="macro")
    assert macro_f1_from_confusion(confusion) == pytest.approx(float(expected), abs=1e-6)
    always_one = multiclass_f1_score(
        torch.ones(200, dtype=torch.long), torch.tensor(target), 3, average="macro"
    )
    assert majority_baseline_macro_f1(confusion.sum(1), 1) == pytest.approx(float(always_one), abs=1e-6)


def test_val_history_callback_records_real_validations_only() -> None:
    history = ValMacroF1History()
    for value, sanity in ((0.1, True), (0.3, False), (0.5, False)):
        trainer = SimpleNamespace(
            sanity_checking=sanity, callback_metrics={"val/macro_f1": torch.tensor(value)}
        )
        history.on_validation_end(trainer, None)
    assert history.values == pytest.approx([0.3, 0.5])
    restored = ValMacroF1History()
    restored.load_state_dict(history.state_dict())
    assert restored.values == history.values
