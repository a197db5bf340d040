"""Diagnostics are opt-in callbacks: ``callbacks=minimal`` trains the same model and writes the core record.

Every diagnostic adds its keys through ``metrics_record`` when the run finishes; without them the
run's metrics.json holds the test metrics, best val macro-F1, training counts, the sampled prior
and timings. Baselines end through the same ``finish_run`` and take the same callbacks choice.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dicebert.train import train

CORE = ("test/", "val/best_macro_f1", "train/count/", "train/prior_count/", "time/")
DIAGNOSTIC = ("health/", "posthoc/", "train/presence/", "train/grad_share/", "test/auroc/", "crt/")


def _not_timing(record: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in record.items() if not k.startswith("time/")}


def test_minimal_trains_the_same_model_and_writes_only_the_core_metrics(make_cfg, tmp_path: Path) -> None:
    minimal = train(make_cfg("callbacks=minimal", "data.sampler=inverse", output_dir=tmp_path / "minimal"))
    full = train(make_cfg("data.sampler=inverse", output_dir=tmp_path / "default"))

    assert all(k.startswith(CORE) for k in minimal), sorted(k for k in minimal if not k.startswith(CORE))
    assert json.loads((tmp_path / "minimal" / "metrics.json").read_text()) == pytest.approx(minimal)
    assert (tmp_path / "minimal" / "confusion_matrix.png").is_file()
    assert not (tmp_path / "minimal" / "logits.npz").exists()
    assert any(k.startswith("train/prior_count/") for k in minimal)  # the sampler's prior is core

    names = [k.removeprefix("train/count/") for k in minimal if k.startswith("train/count/")]
    for key in ("health/never_predicted", "posthoc/tau", f"train/presence/{names[0]}"):
        assert key in full
    assert (tmp_path / "default" / "logits.npz").is_file()
    # the diagnostics only observe: the same seed trains and tests the same weights
    shared = set(_not_timing(minimal)) & set(full)
    assert shared == set(_not_timing(minimal))
    assert {k: full[k] for k in shared} == pytest.approx({k: minimal[k] for k in shared}, abs=1e-6)


def test_one_diagnostic_can_be_left_out(make_cfg, tmp_path: Path) -> None:
    record = train(make_cfg("~callbacks.mechanism", "~callbacks.posthoc"))
    assert "health/never_predicted" in record
    assert not any(k.startswith(("train/presence/", "train/grad_share/", "posthoc/")) for k in record)


def test_a_baseline_finishes_like_a_fine_tune(make_cfg, tmp_path: Path) -> None:
    small = ["model=tfidf_lr", "data.source.text_field=title", "data.limit_per_class=40"]
    minimal = train(make_cfg(*small, "callbacks=minimal", fast=False, output_dir=tmp_path / "minimal"))
    assert all(k.startswith(CORE) for k in minimal)
    assert not any(k.startswith(DIAGNOSTIC) for k in minimal)
    full = train(make_cfg(*small, "logger=csv", fast=False, output_dir=tmp_path / "default"))
    assert {"health/never_predicted", "posthoc/tau"} <= set(full)
    assert _not_timing(minimal) == pytest.approx({k: full[k] for k in _not_timing(minimal)})
    run = tmp_path / "default"
    assert (run / "label_map.json").is_file() and (run / "logits.npz").is_file()
    # no Lightning loop logged its scalars: the loggers get the record
    (logged,) = run.glob("csv/**/metrics.csv")
    rows = list(csv.DictReader(logged.open()))
    assert float(rows[-1]["test/macro_f1"]) == pytest.approx(full["test/macro_f1"])
