"""Comparisons a reviewer accepts: Holm over the family, bootstrap intervals in range, no method twice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from dicebert.posthoc import LOGITS_FILE, save_logits
from dicebert.sweeps.load import load_sweep
from dicebert.sweeps.report import render_report
from dicebert.sweeps.stats import holm, identical_methods, paired_bootstrap, paired_differences

CLASSES = ["a", "b", "c"]
COUNTS = {"a": 40.0, "b": 12.0, "c": 4.0}


def test_holm_matches_the_step_down_procedure() -> None:
    # sorted p: 0.01, 0.03, 0.04, 0.5 (m = 4) → 0.04, max(0.04, 0.09), max(0.09, 0.08), 0.5
    adjusted = holm([0.01, 0.04, 0.03, float("nan"), 0.5])
    assert adjusted[[0, 2, 1, 4]] == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert np.isnan(adjusted[3])
    assert holm([0.9, 0.8]).max() == 1.0  # capped


def test_bootstrap_interval_stays_in_range_and_sees_a_real_difference() -> None:
    rng = np.random.default_rng(0)
    seeds = []
    for _ in range(3):
        labels = rng.integers(0, 3, 120)
        good = np.where(rng.random(120) < 0.95, labels, (labels + 1) % 3)
        bad = np.where(rng.random(120) < 0.55, labels, (labels + 1) % 3)
        seeds.append((labels, good, bad, None))
    out = paired_bootstrap(seeds, 3)
    assert 0.3 < out["diff"] < 0.5 and out["ci_low"] > 0.2 and out["p"] < 0.01
    # A near-perfect tail vs a dead tail: the t interval over 3 seeds would pass +1; the bootstrap cannot.
    tail = [(s[0], s[0], np.zeros_like(s[0]), 2) for s in seeds]
    out = paired_bootstrap(tail, 3)
    assert out["ci_high"] <= 1.0 and out["diff"] == pytest.approx(1.0)
    same = paired_bootstrap([(s[0], s[1], s[1], None) for s in seeds], 3)
    assert same["ci_low"] == same["ci_high"] == 0.0 and same["p"] == 1.0


def make_run(
    root: Path,
    num: int,
    loss: str,
    seed: int,
    preds: np.ndarray,
    labels: np.ndarray,
    logits: np.ndarray | None = None,
    extra: dict[str, float] | None = None,
) -> None:
    """A finished job folder with metrics.json and logits.npz consistent with ``preds`` (or ``logits``)."""
    from sklearn.metrics import f1_score

    run = root / str(num)
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"loss={loss}", f"seed={seed}"]))
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "loss": {"name": loss}}))
    per_class = f1_score(labels, preds, labels=[0, 1, 2], average=None, zero_division=0)
    record = {"test/macro_f1": float(per_class.mean()), "val/best_macro_f1": 0.5}
    for i, name in enumerate(CLASSES):
        record[f"test/f1/{name}"] = float(per_class[i])
        record[f"test/recall/{name}"] = float(
            ((preds == i) & (labels == i)).sum() / max((labels == i).sum(), 1)
        )
        record[f"train/count/{name}"] = COUNTS[name]
    record["health/never_predicted"] = float(sum(not (preds == i).any() for i in range(3)))
    record.update(extra or {})
    (run / "metrics.json").write_text(json.dumps(record))
    (run / "label_map.json").write_text(json.dumps(dict(enumerate(CLASSES))))
    logits = np.eye(3)[preds].astype(np.float32) if logits is None else logits
    save_logits(run / LOGITS_FILE, {"val": (logits, labels), "test": (logits, labels)})


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    """ce, logit_adjusted and balanced_softmax (one method twice) and a collapsed focal, 3 seeds each."""
    rng = np.random.default_rng(1)
    num = 0
    for seed in range(3):
        labels = rng.integers(0, 3, 90)
        ce = np.where(rng.random(90) < 0.7, labels, 0)
        adjusted = np.where(rng.random(90) < 0.9, labels, 0)
        for loss, preds in [
            ("ce", ce),
            ("logit_adjusted", adjusted),
            ("balanced_softmax", adjusted),
            ("focal", np.zeros_like(labels)),
        ]:
            make_run(tmp_path, num, loss, seed, preds, labels)
            num += 1
    return tmp_path


def test_one_method_twice_is_flagged_and_the_family_is_holm_corrected(sweep_dir: Path) -> None:
    sweep = load_sweep(sweep_dir)
    assert sweep.baseline == "ce"
    notes = identical_methods(sweep)
    assert notes[("balanced_softmax", "none")].startswith("= logit_adjusted by construction")
    diffs = paired_differences(sweep).set_index("method")
    assert set(diffs["test/macro_f1/interval"]) == {"bootstrap"}
    row = diffs.loc["logit_adjusted"]
    assert row["test/macro_f1/ci_low"] > 0 and row["test/macro_f1/p_holm"] >= row["test/macro_f1/p"]
    assert diffs["test/tail_f1/ci_low"].min() >= -1 and diffs["test/tail_f1/ci_high"].max() <= 1
    report = render_report(sweep)
    assert "= logit_adjusted by construction" in report and "3 of 3 collapsed" in report
    assert "family of all 2 (method, ρ) comparisons" in report  # the twin row is not a test


def write_prior_learning_runs(root: Path, recorded: dict[str, float] | None = None) -> None:
    """``ce`` (τ = 0) and ``logit_adjusted`` (τ = 1) on the same logits over 3 seeds.

    The logits learned the prior, so the tail scores under the head (a threshold failure) until τ = 1
    removes it. ``recorded``: a post-hoc macro-F1 per loss to write instead of the true one (× 1.05 per
    seed), as a run that adjusted with a prior it did not record would have.
    """
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    log_pi = np.log(np.array(list(COUNTS.values())) / sum(COUNTS.values()))
    num = 0
    for seed in range(3):
        labels = rng.integers(0, 3, 90)
        logits = (1.5 * np.eye(3)[labels] + log_pi + rng.normal(0, 0.05, (90, 3))).astype(np.float32)
        for loss, tau in [("ce", 0.0), ("logit_adjusted", 1.0)]:
            adjusted = (logits - tau * log_pi).argmax(1)
            posthoc = f1_score(labels, adjusted, labels=[0, 1, 2], average="macro", zero_division=0)
            if recorded is not None:
                posthoc = recorded[loss] * 1.05**seed
            extra = {"posthoc/tau": tau, "posthoc/test/macro_f1": float(posthoc)}
            make_run(root, num, loss, seed, logits.argmax(1), labels, logits=logits, extra=extra)
            num += 1


def test_posthoc_difference_pairs_each_runs_own_adjusted_predictions(tmp_path: Path) -> None:
    """Same logits, but only one run's τ undoes the prior: Δ post-hoc > 0 with a bootstrap interval.

    Scoring both runs' plain argmax (what the tail and macro-F1 columns use) would make the post-hoc
    interval [0, 0] although the post-hoc macro-F1s differ.
    """
    write_prior_learning_runs(tmp_path)
    row = paired_differences(load_sweep(tmp_path)).set_index("method").loc["logit_adjusted"]
    assert row["test/macro_f1/diff"] == 0.0  # the same logits: the plain predictions agree
    assert row["posthoc/test/macro_f1/interval"] == "bootstrap"
    assert row["posthoc/test/macro_f1/diff"] > 0.2
    assert 0 < row["posthoc/test/macro_f1/ci_low"] <= row["posthoc/test/macro_f1/ci_high"] <= 1
    assert "Δ post-hoc macro-F1" in render_report(load_sweep(tmp_path))


def test_posthoc_interval_falls_back_to_t_when_the_run_did_not_record_its_prior(tmp_path: Path) -> None:
    """A run adjusted with a prior it did not record (its scores cannot be rebuilt) gets no bootstrap.

    Rebuilding its predictions from ``train/count`` would pair other predictions than those it scored:
    the interval would not even hold its own Δ.
    """
    write_prior_learning_runs(tmp_path, recorded={"ce": 0.5, "logit_adjusted": 0.6})
    row = paired_differences(load_sweep(tmp_path)).set_index("method").loc["logit_adjusted"]
    assert row["posthoc/test/macro_f1/interval"] == "t"
    assert row["posthoc/test/macro_f1/diff"] == pytest.approx(0.1 * (1 + 1.05 + 1.05**2) / 3)
    assert (
        row["posthoc/test/macro_f1/ci_low"]
        < row["posthoc/test/macro_f1/diff"]
        < row["posthoc/test/macro_f1/ci_high"]
    )
