"""Post-hoc logit adjustment and per-class ranking metrics from saved logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from dicebert.posthoc import LOGITS_FILE, main, posthoc_metrics, save_logits, tune_tau

CLASSES = ["head", "mid", "tail"]
COUNTS = [100.0, 30.0, 3.0]


def threshold_failure(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits that rank the true class first once the prior is removed, but lose the argmax to the head.

    The classifier scores ``s = one_hot(y)·2 + noise`` and then adds ``log π`` (what a model trained on
    the long-tailed prior learns): the tail's true score is high, but its prior is 3.5 nats lower.
    """
    labels = rng.integers(0, 3, size=n)
    scores = 2.0 * np.eye(3)[labels] + rng.normal(0, 0.5, size=(n, 3))
    log_prior = np.log(np.asarray(COUNTS) / sum(COUNTS))
    return (scores + log_prior).astype(np.float32), labels


def test_adjustment_recovers_a_threshold_failure(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    val, test = threshold_failure(rng, 300), threshold_failure(rng, 600)
    path = tmp_path / LOGITS_FILE
    save_logits(path, {"val": val, "test": test})
    out = posthoc_metrics(path, CLASSES, COUNTS)
    plain = f1_score(test[1], test[0].argmax(1), average=None, labels=[0, 1, 2], zero_division=0)
    assert plain[2] < 0.2  # the tail is almost never predicted before adjustment
    assert out["posthoc/tau"] == pytest.approx(1.0, abs=0.26)  # the shift that undoes the learnt prior
    assert out["posthoc/test/f1/tail"] > 0.9
    assert out["posthoc/test/macro_f1"] > f1_score(test[1], test[0].argmax(1), average="macro") + 0.2
    assert out["test/auroc/tail"] > 0.98  # it was a threshold problem, not a ranking problem
    assert set(out) >= {f"test/precision/{c}" for c in CLASSES}


def test_tau_ties_keep_the_smallest_shift() -> None:
    logits = np.array([[3.0, 0.0], [0.0, 3.0]])
    assert tune_tau(logits, np.array([0, 1]), np.log(np.array([0.5, 0.5]))) == 0.0


def test_auroc_is_omitted_when_the_test_split_lacks_a_class(tmp_path: Path) -> None:
    labels = np.array([0, 0, 1, 1])
    logits = np.eye(3)[labels].astype(np.float32)
    save_logits(tmp_path / LOGITS_FILE, {"val": (logits, labels), "test": (logits, labels)})
    out = posthoc_metrics(tmp_path / LOGITS_FILE, CLASSES, COUNTS)
    assert "test/auroc/tail" not in out and out["test/auroc/head"] == 1.0


def test_cli_merges_the_keys_into_a_finished_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "sweep" / "0"
    rng = np.random.default_rng(1)
    save_logits(run / LOGITS_FILE, {"val": threshold_failure(rng, 90), "test": threshold_failure(rng, 90)})
    (run / "label_map.json").write_text(json.dumps({str(i): c for i, c in enumerate(CLASSES)}))
    record = {"test/macro_f1": 0.5, **{f"train/count/{c}": n for c, n in zip(CLASSES, COUNTS, strict=True)}}
    (run / "metrics.json").write_text(json.dumps(record))
    assert main([str(tmp_path / "sweep")]) == 0
    merged = json.loads((run / "metrics.json").read_text())
    assert merged["test/macro_f1"] == 0.5 and "posthoc/test/macro_f1" in merged
    assert "tau=" in capsys.readouterr().out
    assert main([str(tmp_path / "nothing")]) == 1


def test_a_run_saves_the_logits_it_was_tested_with(make_cfg) -> None:
    """logits.npz holds the test loop's own logits (no second pass): they reproduce the test accuracy."""
    from dicebert.train import train

    cfg = make_cfg()
    record = train(cfg)
    data = np.load(Path(cfg.paths.output_dir) / LOGITS_FILE)
    test_logits, test_labels = data["test_logits"], data["test_labels"]
    accuracy = float((test_logits.argmax(1) == test_labels).mean())
    assert accuracy == pytest.approx(record["test/accuracy"], abs=1e-6)
    assert data["val_logits"].shape == (len(data["val_labels"]), test_logits.shape[1])
    assert 0.0 <= record["posthoc/tau"] <= 3.0 and "posthoc/test/macro_f1" in record


def test_a_covered_run_records_the_prior_it_adjusted_with(make_cfg) -> None:
    """``data.cover_classes=true`` changes the class mix the model sees: metrics.json records that prior,
    so ``python -m dicebert.posthoc`` rebuilds the run's own post-hoc scores."""
    from dicebert.posthoc import update_run
    from dicebert.priors import effective_class_counts
    from dicebert.train import train

    cfg = make_cfg("data.cover_classes=true", "data.imbalance_ratio=6", "data.limit_per_class=40")
    record = train(cfg)
    names = json.loads((Path(cfg.paths.output_dir) / "label_map.json").read_text())
    names = [names[str(i)] for i in range(len(names))]
    counts = [record[f"train/count/{n}"] for n in names]
    expected = effective_class_counts(counts, "none", cover_batch_size=cfg.data.batch_size)
    assert [record[f"train/prior_count/{n}"] for n in names] == pytest.approx(expected)
    assert expected != pytest.approx(counts)  # the covered mix is not the raw counts
    again = update_run(Path(cfg.paths.output_dir))
    assert again["posthoc/test/macro_f1"] == pytest.approx(record["posthoc/test/macro_f1"], abs=1e-9)
