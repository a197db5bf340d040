"""Comparisons a reviewer accepts: seed-level tests, one Holm family per report, an MDD, no method twice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from dicebert.errors import SweepError
from dicebert.posthoc import LOGITS_FILE, save_logits
from dicebert.sweeps.inference import holm, mdd, seed_test, sign_flip_p, t_power
from dicebert.sweeps.load import load_sweep
from dicebert.sweeps.report import compare_sweep, render_report
from dicebert.sweeps.stats import best_on_validation, identical_methods, paired_differences

CLASSES = ["a", "b", "c"]
COUNTS = {"a": 40.0, "b": 12.0, "c": 4.0}


def test_holm_matches_the_step_down_procedure() -> None:
    # sorted p: 0.01, 0.03, 0.04, 0.5 (m = 4) → 0.04, max(0.04, 0.09), max(0.09, 0.08), 0.5
    adjusted = holm([0.01, 0.04, 0.03, float("nan"), 0.5])
    assert adjusted[[0, 2, 1, 4]] == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert np.isnan(adjusted[3])
    assert holm([0.9, 0.8]).max() == 1.0  # capped


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


def test_one_method_twice_is_flagged_and_the_family_spans_every_metric(sweep_dir: Path) -> None:
    sweep = load_sweep(sweep_dir)
    assert sweep.baseline == "ce"
    notes = identical_methods(sweep)
    assert notes[("balanced_softmax", "none")].startswith("= logit_adjusted by construction")
    diffs = paired_differences(sweep).set_index("method")
    # focal collapsed on every seed: its comparisons use the sign-flip test, the others the t-test
    assert diffs.loc["focal", "test/macro_f1/test"] == "sign-flip"
    assert diffs.loc["logit_adjusted", "test/macro_f1/test"] == "t"
    # 2 comparisons (the twin row is not a test) × 2 metrics with values (no post-hoc in these runs)
    assert set(diffs["family_size"]) == {4}
    p = diffs[[c for c in diffs.columns if c.endswith("/p")]].to_numpy(dtype=float)
    expected = holm(p.ravel()).reshape(p.shape)
    holm_cols = [c for c in diffs.columns if c.endswith("/p_holm")]
    np.testing.assert_allclose(diffs[holm_cols].to_numpy(dtype=float), expected, equal_nan=True)
    row = diffs.loc["logit_adjusted"]
    assert row["test/macro_f1/ci_low"] < row["test/macro_f1/diff"] < row["test/macro_f1/ci_high"]
    assert row["test/macro_f1/diff"] > 0 and row["test/macro_f1/p_holm"] >= row["test/macro_f1/p"]
    assert row["test/macro_f1/mdd"] == pytest.approx(mdd(row["test/macro_f1/sd"], 3, 0.05 / 4))
    assert np.isinf(diffs.loc["focal", "test/macro_f1/mdd"])  # 3 seeds: the sign flip cannot reject
    report = render_report(sweep)
    assert "= logit_adjusted by construction" in report and "3 of 3 collapsed" in report
    assert "Holm's correction over all 4 tests" in report


def test_seed_test_uses_t_or_sign_flip_and_never_returns_p_zero() -> None:
    diff = [0.10, 0.05, 0.20]  # sd 0.076376, mean 0.116667: t = 2.646 on 2 df
    t = seed_test(diff)
    assert t["test"] == "t" and t["p_t"] == pytest.approx(0.1181, abs=1e-3)
    assert t["p_signflip"] == pytest.approx(0.25)  # all 3 positive: 2 of 8 patterns reach it
    robust = seed_test(diff, robust=True)
    assert robust["test"] == "sign-flip" and robust["p"] == pytest.approx(0.25)
    same = seed_test([0.02, 0.02, 0.02, 0.02])  # no t statistic: the exact sign-flip p, not 0
    assert same["test"] == "sign-flip" and same["p"] == pytest.approx(2 / 16)
    assert seed_test([0.0, 0.0, 0.0])["p"] == 1.0
    # the sign flip is exact: with ten seeds of mixed signs it matches full enumeration by hand
    d = np.array([0.03, -0.01, 0.02, 0.04, -0.02, 0.01, 0.05, 0.00, 0.02, -0.03])
    patterns = np.array(np.meshgrid(*[[-1, 1]] * 10)).reshape(10, -1).T
    assert sign_flip_p(d) == pytest.approx(np.mean(np.abs(patterns @ d) >= abs(d.sum()) - 1e-12))


def test_mdd_is_the_difference_found_with_80_percent_power() -> None:
    value = mdd(0.03, 10)
    assert t_power(value, 0.03, 10) == pytest.approx(0.8, abs=1e-6)
    assert mdd(0.03, 3) > mdd(0.03, 5) > value  # fewer seeds, larger bound
    assert mdd(0.03, 10, alpha=0.05 / 33) > value  # a stricter family level, larger bound
    assert np.isinf(mdd(0.03, 5, test="sign-flip")) and np.isfinite(mdd(0.03, 6, test="sign-flip"))


def test_the_best_baseline_is_chosen_on_validation(sweep_dir: Path) -> None:
    for run in sweep_dir.glob("*[0-9]"):
        record = json.loads((run / "metrics.json").read_text())
        loss = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["loss"]["name"]
        record["val/best_macro_f1"] = {"ce": 0.9, "focal": 0.2}.get(loss, 0.5)  # ce best on validation
        (run / "metrics.json").write_text(json.dumps(record))
    sweep = load_sweep(sweep_dir)
    assert best_on_validation(sweep) == "ce"  # although logit_adjusted is best on test
    on_test = sweep.runs.groupby("method")["test/macro_f1"].mean()
    assert on_test["ce"] < on_test["logit_adjusted"] == on_test.max()
    compare_sweep(sweep_dir, baseline="best-val")
    report = (sweep_dir / "report.md").read_text()
    assert "`ce` (best mean validation macro-F1" in report
    for path in sweep_dir.glob("*/metrics.json"):
        record = json.loads(path.read_text())
        path.write_text(json.dumps({k: v for k, v in record.items() if "val/" not in k}))
    with pytest.raises(SweepError, match="recorded val/best_macro_f1"):
        best_on_validation(load_sweep(sweep_dir))


def test_a_results_folder_is_recompared_from_its_summary_csv(sweep_dir: Path, tmp_path: Path) -> None:
    """docs/results keeps summary.csv, not the runs: comparing it again gives the same tables."""
    compare_sweep(sweep_dir, out=tmp_path / "first")
    compare_sweep(tmp_path / "first", out=tmp_path / "again")
    for name in ("cells.csv", "differences.csv"):
        first = (tmp_path / "first" / name).read_text()
        assert (tmp_path / "again" / name).read_text() == first
    # from the tables on (the header names the folders; throughput needs the run folders' times)
    first_report, again = ((tmp_path / d / "report.md").read_text() for d in ("first", "again"))
    assert again[again.index("## Results per ρ") :] == first_report[first_report.index("## Results per ρ") :]
