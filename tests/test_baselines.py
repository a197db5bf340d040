"""Baselines: fitted on the DataModule's own training split, same metrics.json keys, in compare_runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from dicebert.baselines import TfidfLogisticRegression, is_baseline
from dicebert.errors import ConfigError
from dicebert.sweeps.load import load_sweep
from dicebert.train import train

SMALL = ["data.source.text_field=title", "data.limit_per_class=40", "data.imbalance_ratio=10"]


def _as_job(cfg: DictConfig, job_dir: Path, overrides: list[str]) -> None:
    """Give a run folder the .hydra/ files a multirun job has, for compare_runs."""
    (job_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    plain = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(plain, dict)
    plain.pop("hydra", None)
    (job_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(plain)))
    (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))


def test_tfidf_baseline_fits_the_datamodules_training_split(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg("model=tfidf_lr", *SMALL, fast=False)
    assert is_baseline(cfg.model) and not is_baseline(make_cfg().model)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    model = instantiate(cfg.model)
    probs = model.fit_predict(datamodule)
    train_texts = datamodule.tables["train"]["text"]
    assert len(model.vectorizer.vocabulary_) > 0
    assert model.classifier.n_features_in_ == len(model.vectorizer.vocabulary_)
    # exactly the subsampled split: the vocabulary is that of these texts and no other
    vocab = TfidfLogisticRegression().vectorizer.fit(train_texts).vocabulary_
    assert set(vocab) == set(model.vectorizer.vocabulary_)
    assert probs["test"].shape == (len(datamodule.tables["test"]), datamodule.num_classes)
    with pytest.raises(ConfigError, match="balanced or null"):
        TfidfLogisticRegression(class_weight="inverse")


def test_baselines_write_the_same_keys_and_compare_runs_aggregates_them(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    tuned_cfg = make_cfg(*SMALL, output_dir=sweep / "0")
    tuned = train(tuned_cfg)
    _as_job(tuned_cfg, sweep / "0", ["model=tiny"])
    for job, model in (("1", "tfidf_lr"), ("2", "frozen_lr")):
        cfg = make_cfg(f"model={model}", *SMALL, "data.max_length=32", fast=False, output_dir=sweep / job)
        record = train(cfg)
        _as_job(cfg, sweep / job, [f"model={model}"])
        written = json.loads((sweep / job / "metrics.json").read_text())
        assert written == pytest.approx(record)
        # train/presence, train/grad_share: batch-training mechanics, undefined for a closed-form fit
        shared = ("test/", "val/", "train/count/")
        missing = {k for k in tuned if k.startswith(shared)} - set(record)
        assert not missing, f"{model} lacks {sorted(missing)}"
        assert {"health/never_predicted", "health/below_majority_baseline"} <= set(record)
        assert (sweep / job / "confusion_matrix.json").is_file()
        assert json.loads((sweep / job / "data_summary.json").read_text())["class_counts"]["train"]
    loaded = load_sweep(sweep)
    ok = loaded.ok
    assert set(ok["method"]) == {"tiny", "tfidf_lr", "frozen_lr"}
    assert ok["test/macro_f1"].notna().all()


def test_health_flags_fire_on_a_collapsed_baseline_and_not_on_a_healthy_one(
    make_cfg: Callable[..., DictConfig],
) -> None:
    collapsed = train(
        make_cfg("model=tfidf_lr", *SMALL, "model.C=0.0001", "model.class_weight=null", fast=False)
    )
    assert collapsed["health/below_majority_baseline"] == 1
    assert collapsed["health/never_predicted"] >= 1
    balanced = ["data.source.text_field=title", "data.limit_per_class=150", "data.imbalance_ratio=2"]
    healthy = train(make_cfg("model=tfidf_lr", *balanced, fast=False))
    assert healthy["health/below_majority_baseline"] == 0
    assert healthy["health/never_predicted"] == 0
