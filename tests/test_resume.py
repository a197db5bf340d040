"""Resumable sweeps (issue 12): a SIGKILLed grid, an interrupted Optuna search, a SLURM requeue."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from dicebert.sweeps.resume import ACTION_FILE, JobAction, config_differences, decide, prepare_job
from tests.helpers.cli import run_train

# Three epochs of 7 steps each, so an interrupted job has a last.ckpt from an epoch end to resume from.
TINY = [
    "debug=fast",
    "data.limit_per_class=24",
    "trainer.max_epochs=3",
    "callbacks.early_stopping.patience=10",
]
GRID = ["-m", "loss=ce,dice,focal", "seed=0"]


def killer(step: int, job: str, marker: Path) -> list[str]:
    return [
        "+callbacks.killer._target_=tests.helpers.callbacks.KillOnceInJob",
        f"+callbacks.killer.step={step}",
        f"+callbacks.killer.job={job}",
        f"+callbacks.killer.marker={marker}",
    ]


def test_decide_reads_the_job_folder(tmp_path: Path) -> None:
    job = tmp_path / "0"
    assert decide(job) is JobAction.RUN  # never started
    (job / "checkpoints").mkdir(parents=True)
    (job / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert decide(job) is JobAction.RESUME  # interrupted
    (job / "failure.json").write_text("{}")
    assert decide(job) is JobAction.RUN  # failed: start again
    assert prepare_job(job, resume=True) is JobAction.RUN
    assert not (job / "failure.json").exists() and not (job / "checkpoints").exists()
    assert json.loads((job / ACTION_FILE).read_text())["action"] == "ran"
    (job / "metrics.json").write_text("{}")
    assert prepare_job(job, resume=True) is JobAction.SKIP
    assert prepare_job(tmp_path / "1", resume=False) is JobAction.RUN
    assert not (tmp_path / "1" / ACTION_FILE).exists()  # a plain run records nothing


def test_config_differences_name_the_changed_keys() -> None:
    old = OmegaConf.create({"seed": 0, "trainer": {"max_epochs": 3}, "hydra": {"x": 1}})
    new = OmegaConf.create({"seed": 0, "trainer": {"max_epochs": 4}, "sweep_resume": True, "hydra": {"x": 2}})
    assert config_differences(old, new) == ["trainer.max_epochs"]


def _summary(sweep: Path) -> dict[str, dict[str, str]]:
    with open(sweep / "summary.csv") as handle:
        return {row["job"]: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same grid, never interrupted (the killer's marker exists, so it never fires)."""
    tmp = tmp_path_factory.mktemp("reference")
    marker = tmp / "marker"
    marker.write_text("never kill\n")
    done = run_train([*GRID, *TINY, *killer(8, "1", marker), f"hydra.sweep.dir={tmp}/sweep"], tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "sweep"


@pytest.mark.slow
def test_sigkilled_sweep_resumes_to_the_uninterrupted_result(tmp_path: Path, reference: Path) -> None:
    sweep, marker = tmp_path / "sweep", tmp_path / "marker"
    args = [*GRID, *TINY, *killer(8, "1", marker), f"hydra.sweep.dir={sweep}"]
    killed = run_train(args, tmp_path)
    assert killed.returncode == -9, killed.stderr[-2000:]  # SIGKILL in the middle of job 1's epoch 1
    assert (sweep / "0" / "metrics.json").is_file()
    assert (sweep / "1" / "checkpoints" / "last.ckpt").is_file() and not (
        sweep / "1" / "metrics.json"
    ).exists()
    assert not (sweep / "2").exists()
    finished_before = (sweep / "0" / "metrics.json").stat().st_mtime_ns

    resumed = run_train([*args, "sweep_resume=true"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    actions = {j: json.loads((sweep / j / ACTION_FILE).read_text())["action"] for j in "012"}
    assert actions == {"0": "skipped", "1": "resumed", "2": "ran"}  # only the unfinished work ran
    assert (sweep / "0" / "metrics.json").stat().st_mtime_ns == finished_before  # not re-run, not rewritten

    got, want = _summary(sweep), _summary(reference)
    assert sorted(got) == ["0", "1", "2"]  # no job counted twice
    assert [got[j]["action"] for j in "012"] == ["skipped", "resumed", "ran"]
    for job in "012":
        assert got[job]["status"] == "ok"
        for key, value in want[job].items():
            if key.startswith("test/") or key.startswith("val/"):
                assert float(got[job][key]) == pytest.approx(float(value), abs=1e-6), (job, key)


@pytest.mark.slow
def test_resume_with_a_changed_config_is_refused_before_anything_runs(
    tmp_path: Path, reference: Path
) -> None:
    before = {p: p.stat().st_mtime_ns for p in reference.glob("*/metrics.json")}
    changed = [a.replace("trainer.max_epochs=3", "trainer.max_epochs=4") for a in TINY]
    marker = tmp_path / "m"
    done = run_train(
        [*GRID, *changed, *killer(8, "1", marker), f"hydra.sweep.dir={reference}", "sweep_resume=true"],
        tmp_path,
    )
    assert done.returncode != 0
    line = done.stderr.strip().splitlines()[-1]
    assert "job 0" in line and "trainer.max_epochs" in line and "sweep_resume=true" in line, done.stderr[
        -2000:
    ]
    assert {p: p.stat().st_mtime_ns for p in reference.glob("*/metrics.json")} == before
    assert not list(reference.glob(f"*/{ACTION_FILE}"))


@pytest.mark.slow
def test_resume_of_a_folder_without_jobs_is_refused(tmp_path: Path) -> None:
    done = run_train([*GRID, *TINY, f"hydra.sweep.dir={tmp_path}/empty", "sweep_resume=true"], tmp_path)
    assert done.returncode != 0
    assert "holds no jobs of an earlier sweep" in done.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_interrupted_optuna_search_resumes_to_the_configured_trial_count(tmp_path: Path) -> None:
    import optuna

    sweep, marker = tmp_path / "opt", tmp_path / "marker"
    args = [
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=3",
        "loss=ce",
        *TINY,
        "trainer.max_epochs=2",
        *killer(3, "1", marker),
        f"hydra.sweep.dir={sweep}",
    ]
    killed = run_train(args, tmp_path)
    assert killed.returncode == -9, killed.stderr[-2000:]  # trial 1 dies while RUNNING

    again = run_train(args, tmp_path)  # without sweep_resume=true the old study is not extended
    assert again.returncode != 0 and "add sweep_resume=true" in again.stderr.strip().splitlines()[-1]

    resumed = run_train([*args, "sweep_resume=true"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    study = optuna.load_study(study_name="hparams_search-ce", storage=f"sqlite:///{sweep}/optuna.db")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3  # exactly the configured total
    assert states.count(optuna.trial.TrialState.FAIL) == 1  # the interrupted trial, marked failed
    assert study.trials[2].params == study.trials[1].params  # ... and proposed again first
    assert sorted(p.parent.name for p in sweep.glob("*/metrics.json")) == ["0", "2", "3"]  # none reused


@pytest.mark.slow
def test_slurm_signal_saves_a_checkpoint_that_the_requeued_job_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [
        *TINY,
        "+callbacks.requeue_checkpoint.always=true",
        "+callbacks.signal._target_=tests.helpers.callbacks.SignalAtStep",
        "+callbacks.signal.step=2",  # mid epoch 0: no epoch-end last.ckpt exists yet
        f"hydra.run.dir={run}",
    ]
    first = run_train(args, tmp_path)
    assert first.returncode != 0 and "checkpoint saved" in first.stderr, first.stderr[-2000:]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3  # saved at the batch boundary after the signal
    assert not (run / "metrics.json").exists()

    requeued = run_train(args, tmp_path, env={"SLURM_RESTART_COUNT": "1"})
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    assert json.loads((run / ACTION_FILE).read_text())["action"] == "resumed"
    assert "skipped the 3 batches of epoch 0" in requeued.stdout, requeued.stdout[-3000:]
    assert "your dataloader is not resumable" not in requeued.stderr  # answered: no misleading warning

    # Resumed mid-epoch, it ends with the metrics of the run that was never interrupted.
    plain = run_train([*TINY, f"hydra.run.dir={tmp_path}/plain"], tmp_path)
    assert plain.returncode == 0, plain.stderr[-3000:]
    want = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    got = json.loads((run / "metrics.json").read_text())
    for key, value in want.items():
        if not key.startswith("time/"):
            assert got[key] == pytest.approx(value, abs=1e-6), key
