"""Collapse diagnostics: flags that say a run learned nothing, so it is never read as a loss's result.

On small or hard data a fine-tuned model can predict the majority class for every text, or stop
at its first validation score; its test macro-F1 then looks like a number, not like a failure.
:func:`check_health` turns a run's test confusion matrix, training class counts and validation
history into ``health/...`` flags (for ``metrics.json`` and sweep reports) and plain-words warnings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from lightning.pytorch.callbacks import Callback

from dicebert.metrics import macro_f1_from_confusion

if TYPE_CHECKING:
    from dicebert.reporting.finish import FinishedRun

log = logging.getLogger("dicebert")

#: The flags :func:`check_health` always writes (1.0 = the problem is there, except the counts).
FLAGS = (
    "health/never_predicted",
    "health/val_never_improved",
    "health/below_majority_baseline",
    "health/majority_baseline_macro_f1",
)


@dataclass
class Health:
    """The ``health/...`` metrics of one run and the warnings to print beside its results table."""

    flags: dict[str, float]
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.warnings


def majority_baseline_macro_f1(test_support: Sequence[int], majority: int) -> float:
    """Test macro-F1 of predicting class ``majority`` (the training split's largest) for every text."""
    support = np.asarray(test_support, dtype=float)
    confusion = np.zeros((len(support), len(support)))
    confusion[:, majority] = support  # every text predicted as the majority class
    return macro_f1_from_confusion(confusion)


def check_health(
    confusion: np.ndarray,
    class_names: Sequence[str],
    train_class_counts: Sequence[int],
    val_history: Sequence[float] | None = None,
) -> Health:
    """Flags and warnings for one run.

    - ``health/never_predicted``: number of test classes with no prediction at all or recall 0;
    - ``health/val_never_improved``: 1 when val macro-F1 never rose above its first value
      (needs at least two validations; 0 otherwise);
    - ``health/below_majority_baseline``: 1 when test macro-F1 is not above that of always
      predicting the training split's majority class (``health/majority_baseline_macro_f1``).
    """
    confusion = np.asarray(confusion, dtype=float)
    names = [str(n) for n in class_names]
    support, predicted = confusion.sum(1), confusion.sum(0)
    recall = np.divide(np.diag(confusion), support, out=np.zeros(len(names)), where=support > 0)
    never = [names[i] for i in range(len(names)) if support[i] > 0 and (predicted[i] == 0 or recall[i] == 0)]
    macro_f1 = macro_f1_from_confusion(confusion)
    majority = int(np.argmax(train_class_counts))
    baseline = majority_baseline_macro_f1(support, majority)
    below = macro_f1 <= baseline + 1e-9
    history = [float(v) for v in (val_history or [])]
    flat = len(history) >= 2 and max(history[1:]) <= history[0]
    flags = {
        "health/never_predicted": float(len(never)),
        "health/val_never_improved": float(flat),
        "health/below_majority_baseline": float(below),
        "health/majority_baseline_macro_f1": baseline,
    }
    warnings = []
    if never:
        warnings.append(
            f"the model never correctly predicts {len(never)} class(es): {', '.join(never)} "
            "(test recall 0); its macro-F1 says little about the loss"
        )
    if flat:
        warnings.append(
            f"val macro-F1 never improved on its first value ({history[0]:.3f}) in {len(history)} "
            "validations: the model stopped learning or never started"
        )
    if below:
        warnings.append(
            f"test macro-F1 {macro_f1:.3f} is not above the {baseline:.3f} of always predicting the "
            f"majority class {names[majority]!r}: the run collapsed"
        )
    if warnings:
        warnings.append(
            "try: model.net.pooling=mean, a larger model.optimizer.lr, more steps "
            "(trainer.max_epochs), loss=weighted_ce, and compare with model=tfidf_lr"
        )
    return Health(flags, warnings)


class ValMacroF1History(Callback):
    """The health diagnostic (``callbacks.health``): val macro-F1 after every validation, then the flags.

    Records val macro-F1 after every validation (sanity checks excluded); when the run finishes,
    :meth:`metrics_record` adds :func:`check_health`'s ``health/...`` flags and logs its warnings.
    """

    def __init__(self, monitor: str = "val/macro_f1") -> None:
        self.monitor = monitor
        self.values: list[float] = []

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        # not on_validation_epoch_end: callbacks run before the module logs that epoch's metrics
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None:
            self.values.append(float(value))

    def state_dict(self) -> dict[str, Any]:  # a resumed run keeps the history of its first part
        return {"values": list(self.values)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.values = list(state_dict.get("values", []))

    def metrics_record(self, run: FinishedRun) -> dict[str, float]:
        """The ``health/...`` flags of the tested run; its warnings go to the log."""
        health = check_health(run.confusion, run.class_names, run.class_counts, self.values)
        for line in health.warnings:
            log.warning(line)
        return health.flags
