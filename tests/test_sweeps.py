"""A real multirun (2 losses × 3 ρ × 2 seeds, tiny model), its aggregation, the notebook on it,
the launcher/Optuna configs, and the dashboards each run logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from dicebert.losses import LOSSES
from dicebert.reporting.dashboards import log_run_outputs
from dicebert.sweeps.callback import GROUP_ENV, SweepCallback
from dicebert.sweeps.load import load_sweep
from dicebert.sweeps.stats import cell_table, paired_differences
from dicebert.sweeps.throughput import sweep_throughput
from dicebert.train import train
from tests.helpers.cli import run_train

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL = ["debug=fast", "callbacks=none"]  # the shared tiny run, without checkpoints


def run_cli(args: list[str], tmp: Path, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    return run_train(args, tmp, timeout=timeout)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python train.py -m experiment=loss_vs_imbalance` cut down to 12 jobs; ρ = 0.5 fails on purpose."""
    tmp = tmp_path_factory.mktemp("multirun")
    done = run_cli(
        [
            "-m",
            "experiment=loss_vs_imbalance",
            "loss=ce,dice",
            "data.imbalance_ratio=1,4,0.5",
            "seed=0,1",
            *SMALL,
            f"hydra.sweep.dir={tmp}/sweep",
        ],
        tmp,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "sweep"


@pytest.mark.slow
def test_multirun_keeps_going_past_failed_jobs(sweep_dir: Path) -> None:
    jobs = sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    assert len(jobs) == 12
    finished = [j for j in jobs if (j / "metrics.json").is_file()]
    failed = [j for j in jobs if (j / "failure.json").is_file()]
    assert len(finished) == 8 and len(failed) == 4
    for job in failed:
        assert "data.imbalance_ratio=0.5" in (job / ".hydra" / "overrides.yaml").read_text()
        error = json.loads((job / "failure.json").read_text())["error"]
        assert error.startswith("DataError") and "imbalance_ratio must be >= 1" in error


@pytest.mark.slow
def test_the_sweep_writes_its_own_comparison(sweep_dir: Path) -> None:
    """The experiment's callback: one command from grid to report."""
    for name in ["summary.csv", "cells.csv", "report.md", "macro_f1_vs_rho.png", "confusion_matrices.png"]:
        assert (sweep_dir / name).is_file(), name
    report = (sweep_dir / "report.md").read_text()
    assert "12 runs: 8 finished, 4 failed" in report
    assert report.count("DataError: data.imbalance_ratio must be >= 1") == 4
    speed = sweep_throughput([sweep_dir])
    assert speed is not None and speed["runs"] == 8  # the failed jobs are not throughput
    assert 0 < speed["wall_s"] < 3600
    assert speed["runs_per_hour"] == pytest.approx(8 * 3600 / speed["wall_s"], rel=0.01)
    assert f"{speed['runs_per_hour']:.1f} runs/hour" in report


def test_throughput_spans_each_folder_and_leaves_out_skipped_jobs(tmp_path: Path) -> None:
    """Two folders run one after the other: their wall times add, the idle gap between them does not."""
    for folder, start, jobs in (("a", 1000.0, [(0, 60), (10, 100)]), ("b", 5000.0, [(0, 50), (0, 20)])):
        for num, (begin, end) in enumerate(jobs):
            job = tmp_path / folder / str(num)
            (job / ".hydra").mkdir(parents=True)
            (job / ".hydra" / "config.yaml").write_text("{}")
            (job / "metrics.json").write_text("{}")
            os.utime(job / ".hydra" / "config.yaml", (start + begin, start + begin))
            os.utime(job / "metrics.json", (start + end, start + end))
    skipped = tmp_path / "b" / "1"
    (skipped / "job_action.json").write_text(json.dumps({"action": "skipped"}))
    speed = sweep_throughput([tmp_path / "a", tmp_path / "b"])
    assert speed == {"runs": 3, "wall_s": 150.0, "runs_per_hour": 3 * 3600 / 150, "folders": 2}
    assert sweep_throughput([tmp_path / "a" / "0"]) is None  # no finished job below it


@pytest.mark.slow
def test_aggregation_rows_and_n_per_cell(sweep_dir: Path) -> None:
    sweep = load_sweep(sweep_dir)
    assert sweep.method_keys == ["loss"] and sweep.baseline == "ce" and sweep.methods == ["ce", "dice"]
    assert len(sweep.runs) == 12
    table = cell_table(sweep).set_index(["rho", "method"])
    assert sorted(table.index) == sorted((r, m) for r in ("0.5", "1", "4") for m in ("ce", "dice"))
    for rho in ("1", "4"):
        for method in ("ce", "dice"):
            cell = table.loc[(rho, method)]
            assert cell["n"] == 2 and cell["seeds"] == "0 1" and cell["n_failed"] == 0
            assert 0.0 <= cell["test/macro_f1/mean"] <= 1.0
    for method in ("ce", "dice"):
        assert table.loc[("0.5", method), "n"] == 0 and table.loc[("0.5", method), "n_failed"] == 2
    assert table.loc[("4", "ce"), "tail_class"] != ""
    diffs = paired_differences(sweep).set_index("rho")
    assert diffs.loc["4", "test/macro_f1/n_pairs"] == 2 and diffs.loc["0.5", "test/macro_f1/n_pairs"] == 0
    # the script reads the same folder into the same rows
    done = subprocess.run(
        [sys.executable, "scripts/compare_runs.py", str(sweep_dir), "--out", str(sweep_dir / "again")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "8 finished, 4 failed" in done.stdout
    assert (sweep_dir / "again" / "summary.csv").read_text() == (sweep_dir / "summary.csv").read_text()


@pytest.mark.slow
def test_jobs_are_tagged_with_their_sweep(sweep_dir: Path) -> None:
    cfg = OmegaConf.load(sweep_dir / "0" / ".hydra" / "config.yaml")
    assert cfg.task_name == "loss_vs_imbalance"
    assert cfg.tags == ["${task_name}", "${loss.name}", "rho=${data.imbalance_ratio}", "seed=${seed}"]


@pytest.mark.slow
def test_notebook_runs_on_the_sweep(sweep_dir: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    path = REPO_ROOT / "notebooks" / "compare_losses.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "stored outputs in git"
    os.environ["DICEBERT_SWEEP_DIR"] = str(sweep_dir)
    try:
        NotebookClient(
            nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        ).execute()
    finally:
        del os.environ["DICEBERT_SWEEP_DIR"]
    text = json.dumps(nb)
    assert str(sweep_dir) in text and "image/png" in text
    assert "data.imbalance_ratio must be" in text  # the failed runs are shown too


@pytest.mark.slow
def test_a_bad_choice_in_a_sweep_list_runs_nothing(tmp_path: Path) -> None:
    done = run_cli(
        ["-m", "experiment=loss_vs_imbalance", "loss=ce,nope", *SMALL, f"hydra.sweep.dir={tmp_path}/s"],
        tmp_path,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "nope" in last and "dice_ce" in last
    assert not any(p.name.isdigit() for p in (tmp_path / "s").glob("*"))


def test_sweep_callback_refuses_bad_choices_in_the_sweep_config(make_cfg) -> None:
    """A typo inside an experiment's or Optuna's params is refused before any job, in one line."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from dicebert.train import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=loss_vs_imbalance"], return_hydra_config=True)
        cfg.hydra.sweeper.params.loss = "ce,focal,nope"
        with pytest.raises(SystemExit, match=r"^error: unknown loss 'nope'; .*; nothing was run"):
            SweepCallback().on_multirun_start(cfg)
        cfg.hydra.sweeper.params.loss = "choice(ce, dice)"  # Optuna's spelling, all valid
        SweepCallback().on_multirun_start(cfg)
        assert os.environ[GROUP_ENV].startswith("loss_vs_imbalance-")
        os.environ.pop(GROUP_ENV, None)
    GlobalHydra.instance().clear()


def test_the_grid_covers_every_registered_loss_but_ldam_and_aliases(make_cfg) -> None:
    cfg = make_cfg("experiment=loss_vs_imbalance", fast=False)
    params = cfg.hydra.sweeper.params
    # balanced_softmax is logit_adjusted at τ = 1: one method, one row
    assert sorted(params.loss.split(",")) == sorted(set(LOSSES) - {"ldam", "balanced_softmax"})
    assert params["data.imbalance_ratio"] == "1,10,100" and params.seed == "0,1,2"
    assert cfg.hydra.callbacks.dicebert_sweep._target_ == "dicebert.sweeps.callback.SweepCallback"


def test_sampler_experiment_composes(make_cfg) -> None:
    cfg = make_cfg("experiment=sampler_vs_imbalance", fast=False)
    assert cfg.loss.name == "ce"
    assert cfg.hydra.sweeper.params["data.sampler"] == "none,inverse,sqrt,effective_number"
    assert "sampler=none" in cfg.tags and cfg.hydra.callbacks.dicebert_sweep.baseline == "none"


@pytest.mark.parametrize(
    ("launcher", "target"),
    [
        ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
        ("local_parallel", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
        ("joblib", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
    ],
)
def test_launchers_compose(make_cfg, launcher: str, target: str) -> None:
    cfg = make_cfg("experiment=loss_vs_imbalance", f"hydra/launcher={launcher}", fast=False)
    assert cfg.hydra.launcher._target_ == target
    if launcher == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.timeout_min == 60
        assert cfg.hydra.launcher.submitit_folder.endswith("/.submitit/%j")
    if launcher == "local_parallel":
        assert cfg.hydra.launcher.n_jobs == 2


@pytest.mark.parametrize("search", ["optuna", "optuna_focal", "optuna_dice_ce", "optuna_tversky"])
def test_optuna_configs_compose(make_cfg, search: str) -> None:
    cfg = make_cfg(f"hparams_search={search}", fast=False)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.dicebert_sweepers.resumable_optuna.ResumableOptunaSweeper"
    assert str(sweeper.storage).endswith("/optuna.db")  # the study lives in the sweep folder: resumable
    assert sweeper.direction == "maximize" and "model.optimizer.lr" in sweeper.params
    if search == "optuna_focal":
        assert cfg.loss.name == "focal" and "loss.gamma" in sweeper.params


@pytest.mark.slow
def test_optuna_search_runs_and_reads_the_val_metric(tmp_path: Path) -> None:
    done = run_cli(
        [
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=2",
            "loss=ce",
            *(o for o in SMALL if o != "callbacks=none"),  # the checkpoint callback gives the val metric
            "data.imbalance_ratio=2",
            "trainer.limit_train_batches=2",
            f"hydra.sweep.dir={tmp_path}/opt",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = yaml.safe_load((tmp_path / "opt" / "optimization_results.yaml").read_text())
    best = result["best_value"]
    values = [
        json.loads((tmp_path / "opt" / j / "metrics.json").read_text())["val/best_macro_f1"] for j in "01"
    ]
    assert best == pytest.approx(max(values))


def test_several_loggers_compose(make_cfg) -> None:
    cfg = make_cfg("logger=[csv,tensorboard,wandb]", fast=False)
    assert set(cfg.logger) == {"csv", "tensorboard", "wandb"}


def test_wandb_group_is_the_sweep(make_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    assert make_cfg("logger=wandb", fast=False).logger.wandb.group == "train"  # a single run: its task
    monkeypatch.setenv(GROUP_ENV, "loss_vs_imbalance-2025-01-01_00-00-00_000000")
    cfg = make_cfg(
        "experiment=loss_vs_imbalance", "logger=wandb", "loss=focal", "data.imbalance_ratio=10", fast=False
    )
    wandb_cfg = OmegaConf.to_container(cfg.logger.wandb, resolve=True)
    assert wandb_cfg["group"] == "loss_vs_imbalance-2025-01-01_00-00-00_000000"
    assert wandb_cfg["job_type"] == "focal" and wandb_cfg["offline"] is True
    assert wandb_cfg["tags"] == ["loss_vs_imbalance", "focal", "rho=10", "seed=0"]


def test_each_run_logs_per_class_tables_to_wandb(make_cfg) -> None:
    import wandb

    cfg = make_cfg("logger=[csv,wandb]", "callbacks=none", "trainer.limit_train_batches=2")
    record = train(cfg)
    assert wandb.run is None  # closed: the next job of an in-process sweep gets its own run
    out = Path(cfg.paths.output_dir)
    (run,) = (out / "wandb").glob("offline-run-*")
    tables = list(run.glob("files/media/table/test/per_class_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    assert table["columns"] == ["class", "train_count", "test_f1", "test_recall"]
    rows = {r[0]: r for r in table["data"]}
    assert set(rows) == {"business", "entertainment", "politics", "sports", "tech"}
    for name, row in rows.items():
        assert row[1] == record[f"train/count/{name}"] and row[2] == pytest.approx(record[f"test/f1/{name}"])
    assert list(run.glob("files/media/table/test/confusion_matrix_table_*.table.json"))
    assert list(run.glob("files/media/images/test/confusion_matrix_image_*.png"))


class FakeWriter:
    """What TensorBoardLogger.experiment (a SummaryWriter) offers; records the calls."""

    def __init__(self) -> None:
        self.figures: dict[str, Any] = {}
        self.texts: dict[str, str] = {}

    def add_figure(self, tag: str, figure: Any, close: bool = True) -> None:
        self.figures[tag] = figure

    def add_text(self, tag: str, text: str) -> None:
        self.texts[tag] = text

    def flush(self) -> None:
        pass


class FakeTensorBoardLogger:
    def __init__(self) -> None:
        self.experiment = FakeWriter()


def test_tensorboard_gets_figures_and_the_table(tmp_path: Path) -> None:
    names = ["a", "b"]
    record = {"test/macro_f1": 0.5, "test/f1/a": 0.8, "test/f1/b": 0.2, "test/recall/a": 0.9}
    record |= {"test/recall/b": 0.1, "train/count/a": 50.0, "train/count/b": 5.0}
    tb = FakeTensorBoardLogger()
    log_run_outputs([tb], record, names, np.array([[9, 1], [4, 1]]), tmp_path)
    assert set(tb.experiment.figures) == {"test/per_class", "test/confusion_matrix"}
    confusion = tb.experiment.figures["test/confusion_matrix"]
    assert [t.get_text() for t in confusion.axes[0].texts] == ["9", "1", "4", "1"]  # drawn, not a PNG
    assert "b" in tb.experiment.texts["test/results"] and "0.2000" in tb.experiment.texts["test/results"]
    assert not list(tmp_path.iterdir())  # the dashboard writes no file of its own
