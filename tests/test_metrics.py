"""One macro-F1 definition on every path: training's torchmetrics, post-hoc, cRT, health, statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from dicebert import crt, posthoc
from dicebert.metrics import build_metrics, macro_f1, macro_f1_from_confusion
from dicebert.reporting import health

NAMES = ["a", "b", "c", "d", "e"]


def _case() -> tuple[np.ndarray, np.ndarray]:
    """Class d is predicted but absent from the labels; class e is neither present nor predicted."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 120)
    preds = np.where(rng.random(120) < 0.7, labels, rng.integers(0, 4, 120))
    assert 3 in preds and 3 not in labels and 4 not in preds
    return labels, preds


def test_macro_f1_is_torchmetrics_macro_f1_with_absent_classes() -> None:
    labels, preds = _case()
    collection = build_metrics(NAMES, prefix="test/")
    logits = torch.nn.functional.one_hot(torch.tensor(preds), 5).float()
    collection.update(logits, torch.tensor(labels))
    training = float(collection.compute()["test/macro_f1"])
    assert macro_f1(labels, preds, 5) == pytest.approx(training, abs=1e-6)
    # the rule: d (a false-positive-only class) scores 0 and counts, e (no F1 at all) leaves the mean
    per_class = f1_score(labels, preds, labels=[0, 1, 2, 3], average=None, zero_division=0)
    assert per_class[3] == 0
    assert macro_f1(labels, preds, 5) == pytest.approx(per_class.mean())
    # what the post-hoc path computed before: e scored 0 and pulled the mean down
    assert f1_score(labels, preds, labels=list(range(5)), average="macro", zero_division=0) < training


def test_every_path_scores_with_the_one_definition() -> None:
    labels, preds = _case()
    assert posthoc.macro_f1 is macro_f1
    assert health.macro_f1_from_confusion is macro_f1_from_confusion
    head = torch.nn.Linear(5, 5, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(5))
    x = torch.nn.functional.one_hot(torch.tensor(preds), 5).float()
    assert crt._macro_f1(head, x, torch.tensor(labels), 5) == pytest.approx(macro_f1(labels, preds, 5))
    # health's majority baseline: every text predicted as a class absent from the test labels
    support = np.bincount(labels, minlength=5)
    expected = macro_f1(labels, np.full_like(labels, 3), 5)
    assert health.majority_baseline_macro_f1(support, 3) == pytest.approx(expected)
    assert expected == 0.0
