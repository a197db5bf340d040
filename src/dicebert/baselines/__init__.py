"""Reference baselines on the DataModule's own splits, writing the same run outputs as fine-tuning.

``python train.py model=tfidf_lr`` (or ``model=frozen_lr``): the model config has
``baseline: true``, and :func:`run_baseline` replaces the Lightning fit/test, then ends through the
same :func:`~dicebert.reporting.finish.finish_run` with the same diagnostics. ``metrics.json``
holds the same ``test/...`` keys as a fine-tuned run's, so ``scripts/compare_runs.py`` and sweep
reports put the baselines in the same tables (``model=minilm,tfidf_lr`` in a sweep).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from dicebert.baselines.linear import FrozenEncoderLogisticRegression, TfidfLogisticRegression
from dicebert.metrics import build_confusion_matrix, build_metrics
from dicebert.reporting.finish import FinishedRun, finish_run
from dicebert.reporting.run_outputs import to_float_dict

__all__ = ["FrozenEncoderLogisticRegression", "TfidfLogisticRegression", "is_baseline", "run_baseline"]


def is_baseline(model_cfg: Any) -> bool:
    """Whether a model config is a baseline (``baseline: true``) rather than a LightningModule."""
    return bool(getattr(model_cfg, "get", lambda *_: False)("baseline", False))


def evaluate(probs: np.ndarray, labels: list[int], class_names: list[str], prefix: str) -> dict[str, float]:
    """The fine-tuned runs' metric collection (:func:`dicebert.metrics.build_metrics`) on these probs."""
    metrics = build_metrics(class_names, prefix)
    metrics.update(torch.as_tensor(probs, dtype=torch.float32), torch.as_tensor(labels))
    return to_float_dict(metrics.compute())


def run_baseline(
    cfg: DictConfig,
    datamodule: Any,
    callbacks: Sequence[Any] = (),
    loggers: Sequence[Any] = (),
    started: float | None = None,
) -> dict[str, float]:
    """Fit the baseline of ``cfg.model`` on the set-up ``datamodule``; finish it as a fine-tuned run.

    Its test probabilities give the confusion matrix and test metrics, val macro-F1 stands for the
    best validation score, and log-probabilities are the logits the diagnostics read (post-hoc
    adjustment, per-class AUROC and precision come out as for a fine-tuned run);
    :func:`dicebert.reporting.finish.finish_run` writes the rest. Returns the metrics record.
    """
    started = time.perf_counter() if started is None else started
    names = [str(n) for n in datamodule.class_names]
    model = instantiate(cfg.model)
    probs = model.fit_predict(datamodule)
    fit_seconds = time.perf_counter() - started
    val = evaluate(probs["val"], datamodule.datasets["val"].labels, names, "val/")
    test_labels = datamodule.datasets["test"].labels
    test = evaluate(probs["test"], test_labels, names, "test/")
    confusion_metric = build_confusion_matrix(len(names))
    confusion_metric.update(torch.as_tensor(probs["test"], dtype=torch.float32), torch.as_tensor(test_labels))
    run = FinishedRun(
        Path(cfg.paths.output_dir),
        datamodule,
        confusion_metric.compute().numpy(),
        logits={
            role: (np.log(np.clip(probs[role], 1e-12, 1.0)), np.asarray(datamodule.datasets[role].labels))
            for role in ("val", "test")
        },
    )
    title = f"Test results ({model.name} baseline)"
    return finish_run(run, test, val["val/macro_f1"], callbacks, loggers, started, fit_seconds, title)
