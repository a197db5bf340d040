"""Post-hoc analysis of a finished run from its saved validation and test logits (no retraining).

- **Post-hoc logit adjustment** (Menon et al., ICLR 2021): predict ``argmax(logits − τ·log π)``
  with π the class prior the model was trained on (the sampler's effective distribution) and τ
  chosen on the validation split's macro-F1. It separates a *threshold* failure (the right class
  ranks high but loses the argmax to a head class: adjustment recovers it) from a *ranking* failure
  (it does not).
- **Per-class ranking and precision**: one-vs-rest AUROC and precision per class, so a tail class
  with F1 0 but AUROC 0.95 is visibly a threshold problem.

The keys join ``metrics.json`` (``posthoc/*``, ``test/auroc/<class>``, ``test/precision/<class>``),
so sweep reports compare them like any other metric. ``python -m dicebert.posthoc <run folder>...``
recomputes them for finished runs that saved ``logits.npz``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, precision_score, roc_auc_score

from dicebert.atomic import atomic_path
from dicebert.metrics import macro_f1
from dicebert.priors import log_prior, run_prior
from dicebert.reporting.run_outputs import write_json

LOGITS_FILE = "logits.npz"
#: τ grid: 0 (no adjustment) to 3 in steps of 0.25; τ = 1 is the Bayes-optimal shift for a balanced error.
TAUS: tuple[float, ...] = tuple(np.round(np.arange(0.0, 3.01, 0.25), 2))


def save_logits(path: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write ``{split}_logits`` and ``{split}_labels`` arrays (float32 / int64), atomically."""
    arrays: dict[str, np.ndarray] = {}
    for split, (logits, labels) in splits.items():
        arrays[f"{split}_logits"] = np.asarray(logits, dtype=np.float32)
        arrays[f"{split}_labels"] = np.asarray(labels, dtype=np.int64)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        save: Any = np.savez_compressed  # numpy's stub reads **arrays as its allow_pickle flag
        save(handle, **arrays)


def adjusted_predictions(logits: np.ndarray, tau: float, log_pi: np.ndarray) -> np.ndarray:
    """Post-hoc logit adjustment's predictions: argmax of logits − τ·log π."""
    return np.asarray((logits - tau * log_pi).argmax(1))


def tune_tau(
    logits: np.ndarray, labels: np.ndarray, log_pi: np.ndarray, taus: Sequence[float] = TAUS
) -> float:
    """The τ with the best validation macro-F1; ties go to the smallest τ (the least change)."""
    num_classes = logits.shape[1]
    scores = [macro_f1(labels, adjusted_predictions(logits, tau, log_pi), num_classes) for tau in taus]
    return float(taus[int(np.argmax(scores))])


def posthoc_metrics(
    logits_file: Path, class_names: Sequence[str], class_counts: Sequence[float]
) -> dict[str, float]:
    """Post-hoc adjusted test metrics (τ tuned on val) plus per-class test AUROC and precision."""
    data = np.load(logits_file)
    val_logits, val_labels = data["val_logits"], data["val_labels"]
    test_logits, test_labels = data["test_logits"], data["test_labels"]
    log_pi = log_prior(class_counts, len(class_names))
    tau = tune_tau(val_logits, val_labels, log_pi)
    adjusted = adjusted_predictions(test_logits, tau, log_pi)
    indices = list(range(len(class_names)))
    per_class_f1 = f1_score(test_labels, adjusted, labels=indices, average=None, zero_division=0)
    plain = test_logits.argmax(1)
    precision = precision_score(test_labels, plain, labels=indices, average=None, zero_division=0)
    shifted = test_logits - test_logits.max(1, keepdims=True)  # softmax, stably
    probs = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
    out: dict[str, float] = {
        "posthoc/tau": tau,
        "posthoc/test/macro_f1": macro_f1(test_labels, adjusted, len(class_names)),
        "posthoc/test/accuracy": float((adjusted == test_labels).mean()),
    }
    for i, name in enumerate(class_names):
        out[f"posthoc/test/f1/{name}"] = float(per_class_f1[i])
        out[f"test/precision/{name}"] = float(precision[i])
        positives = test_labels == i
        if 0 < positives.sum() < len(positives):  # undefined otherwise: no key, never a made-up 0.5
            out[f"test/auroc/{name}"] = float(roc_auc_score(positives, probs[:, i]))
    return out


def update_run(run_dir: Path) -> dict[str, float]:
    """Recompute the post-hoc keys of one finished run and merge them into its ``metrics.json``."""
    metrics_path, logits_path = run_dir / "metrics.json", run_dir / LOGITS_FILE
    if not metrics_path.is_file() or not logits_path.is_file():
        raise FileNotFoundError(
            f"{run_dir} lacks metrics.json or {LOGITS_FILE}; pass a finished run folder of this version"
        )
    record = json.loads(metrics_path.read_text())
    class_names = json.loads((run_dir / "label_map.json").read_text())
    names = [class_names[str(i)] for i in range(len(class_names))]
    record.update(posthoc_metrics(logits_path, names, run_prior(record, names)))
    write_json(metrics_path, record)
    return record


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dicebert.posthoc RUN [RUN ...]``: add post-hoc keys to finished runs (or sweep folders)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="run folders, or sweep folders holding runs")
    args = parser.parse_args(argv)
    runs = [p.parent for f in args.folders for p in sorted(f.glob("**/" + LOGITS_FILE))]
    if not runs:
        print(f"error: no {LOGITS_FILE} under {', '.join(map(str, args.folders))}", file=sys.stderr)
        return 1
    for run in runs:
        try:
            record = update_run(run)
        except (FileNotFoundError, KeyError, ValueError) as err:
            print(f"skipped {run}: {err}", file=sys.stderr)
            continue
        print(
            f"{run}: tau={record['posthoc/tau']:.2f} macro_f1 {record.get('test/macro_f1', float('nan')):.4f}"
            f" -> {record['posthoc/test/macro_f1']:.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
