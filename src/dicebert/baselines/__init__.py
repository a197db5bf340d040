"""Reference baselines on the DataModule's own splits, writing the same run outputs as fine-tuning.

``python train.py model=tfidf_lr`` (or ``model=frozen_lr``): the model config has
``baseline: true``, and :func:`run_baseline` replaces the Lightning fit/test. ``metrics.json``
holds the same ``test/...`` keys as a fine-tuned run's, so ``scripts/compare_runs.py`` and sweep
reports put the baselines in the same tables (``model=minilm,tfidf_lr`` in a sweep).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from dicebert.baselines.linear import FrozenEncoderLogisticRegression, TfidfLogisticRegression
from dicebert.metrics import build_confusion_matrix, build_metrics
from dicebert.posthoc import LOGITS_FILE, posthoc_metrics, save_logits
from dicebert.reporting.health import check_health
from dicebert.reporting.run_outputs import (
    build_metrics_record,
    plot_confusion_matrix,
    results_table,
    to_float_dict,
    write_json,
)

__all__ = ["FrozenEncoderLogisticRegression", "TfidfLogisticRegression", "is_baseline", "run_baseline"]

log = logging.getLogger(__name__)


def is_baseline(model_cfg: Any) -> bool:
    """Whether a model config is a baseline (``baseline: true``) rather than a LightningModule."""
    return bool(getattr(model_cfg, "get", lambda *_: False)("baseline", False))


def evaluate(probs: np.ndarray, labels: list[int], class_names: list[str], prefix: str) -> dict[str, float]:
    """The fine-tuned runs' metric collection (:func:`dicebert.metrics.build_metrics`) on these probs."""
    metrics = build_metrics(class_names, prefix)
    metrics.update(torch.as_tensor(probs, dtype=torch.float32), torch.as_tensor(labels))
    return to_float_dict(metrics.compute())


def run_baseline(
    cfg: DictConfig, datamodule: Any, output_dir: str | Path, started: float
) -> dict[str, float]:
    """Fit the baseline of ``cfg.model`` on the set-up ``datamodule``; write the run outputs.

    Writes label_map.json, data_summary.json, logits.npz, confusion_matrix.json/.png and
    metrics.json (last), with ``health/...`` flags and the post-hoc keys, and logs the results
    table; returns the metrics record.
    """
    output_dir = Path(output_dir)
    names = [str(n) for n in datamodule.class_names]
    write_json(output_dir / "label_map.json", dict(enumerate(names)))
    write_json(output_dir / "data_summary.json", datamodule.summary)
    model = instantiate(cfg.model)
    probs = model.fit_predict(datamodule)
    fit_seconds = time.perf_counter() - started
    val = evaluate(probs["val"], datamodule.datasets["val"].labels, names, "val/")
    test_labels = datamodule.datasets["test"].labels
    test = evaluate(probs["test"], test_labels, names, "test/")
    confusion_metric = build_confusion_matrix(len(names))
    confusion_metric.update(torch.as_tensor(probs["test"], dtype=torch.float32), torch.as_tensor(test_labels))
    confusion = confusion_metric.compute().numpy()
    health = check_health(confusion, names, datamodule.class_counts)
    # log-probabilities are logits of these probabilities: the post-hoc keys (per-class AUROC,
    # precision, logit adjustment) come out as for a fine-tuned run
    save_logits(
        output_dir / LOGITS_FILE,
        {
            role: (np.log(np.clip(probs[role], 1e-12, 1.0)), np.asarray(datamodule.datasets[role].labels))
            for role in ("val", "test")
        },
    )
    posthoc = posthoc_metrics(output_dir / LOGITS_FILE, names, datamodule.class_counts)
    record = build_metrics_record(
        test,
        val["val/macro_f1"],
        names,
        datamodule.class_counts,
        extra={
            **health.flags,
            **posthoc,
            "time/fit_seconds": fit_seconds,
            "time/total_seconds": time.perf_counter() - started,
        },
    )
    plot_confusion_matrix(confusion, names, output_dir / "confusion_matrix.png")
    write_json(output_dir / "confusion_matrix.json", {"class_names": names, "matrix": confusion.tolist()})
    write_json(output_dir / "metrics.json", record)  # last: its presence means the run finished
    table = results_table(record, names, title=f"Test results ({model.name} baseline)")
    log.info("\n%s%s\nrun folder: %s", table, "".join(f"\nWARNING: {w}" for w in health.warnings), output_dir)
    return record
