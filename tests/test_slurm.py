"""Sweeps on a real SLURM cluster: the README's ``python train.py -m hydra/launcher=slurm ...`` end to end.

A session fixture starts munged, slurmctld and slurmd on localhost (:mod:`tests.helpers.slurm_cluster`).
The tests skip only where Debian's ``slurm-wlm``/``munge`` binaries are missing, and never under CI
(``CI=true``), where a missing binary fails them. Compared with the same grid run locally: every
number a run records, except wall-clock timings (``time/*`` keys, the report's throughput line)
and the folder paths; ``action`` differs only where a job was requeued (``resumed``).

Without an accounting database (slurmdbd) ``sacct`` answers nothing, so submitit learns that a job
ended only from its result file: the submitting command of a sweep whose jobs were cancelled waits
until it is stopped, as a user stops it with Ctrl-C.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.cli import REPO_ROOT, run_train
from tests.helpers.slurm_cluster import PARTITION, SlurmCluster, find_binaries, start_cluster

pytestmark = pytest.mark.slurm

# Two epochs of 7 steps; validation (and last.ckpt) at each epoch's end; 1 thread: 2 jobs share 2 CPUs.
TINY = ["debug=fast", "data.limit_per_class=24", "trainer.max_epochs=2", "threads=1"]
GRID = ["-m", "loss=ce,dice", "seed=0,1"]
# The launcher as a user sets it for their cluster; timeout_min well above signal_delay_s + 10 min, so
# submitit reads the warning signal as a pre-emption, not as a time-out.
SLURM = [
    "hydra/launcher=slurm",
    f"hydra.launcher.partition={PARTITION}",
    "hydra.launcher.gpus_per_node=null",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=30",
]
HOLD_STEP = 9  # mid epoch 1: the signal's checkpoint lands after 3 of its 7 batches


def hold(job: str, marker: Path) -> list[str]:
    return [
        "+callbacks.hold._target_=tests.helpers.preempt.HoldForSignal",
        f"+callbacks.hold.step={HOLD_STEP}",
        f"+callbacks.hold.job={job}",
        f"+callbacks.hold.marker={marker}",
    ]


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    binaries, missing = find_binaries()
    if missing:
        reason = f"SLURM binaries not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the SLURM tests: {reason}")
        pytest.skip(reason)
    cluster = start_cluster(tmp_path_factory.mktemp("slurm"), binaries)
    yield cluster
    cluster.stop()


def _env(tmp: Path, cluster: SlurmCluster) -> dict[str, str]:
    """What ``run_train`` gives a run, plus the cluster's SLURM_CONF (inherited by the jobs)."""
    env = {
        **os.environ,
        **cluster.env,
        "DICEBERT_CACHE": str(tmp / "cache"),
        "WANDB_MODE": "offline",
        "HF_HUB_OFFLINE": "1",
        "DICEBERT_ROOT": str(tmp),
    }
    env.pop("DICEBERT_SWEEP_GROUP", None)
    return env


def _start_sweep(args: list[str], tmp: Path, cluster: SlurmCluster) -> subprocess.Popen[str]:
    log = open(tmp / "submit.log", "w")  # noqa: SIM115 (closed by the process's end, read by _diagnose)
    return subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=REPO_ROOT,
        env=_env(tmp, cluster),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _diagnose(cluster: SlurmCluster, sweep: Path, tmp: Path) -> str:
    """The scheduler's logs, the submitting command's tail and each job's submitit stderr."""
    parts = [cluster.logs()]
    submit = tmp / "submit.log"
    if submit.is_file():
        parts.append(f"--- {submit}\n{submit.read_text(errors='replace')[-3000:]}")
    for err in sorted(sweep.glob(".submitit/*/*_log.err")):
        parts.append(f"--- {err}\n{err.read_text(errors='replace')[-2000:]}")
    return "\n".join(parts)


def _wait_for(path: Path, process: subprocess.Popen[str], timeout_s: float, why: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{why}: no {path} (sweep exit code {process.poll()})")
        time.sleep(0.5)


def _summary(sweep: Path) -> dict[str, dict[str, str]]:
    with open(sweep / "summary.csv") as handle:
        return {row["job"]: row for row in csv.DictReader(handle)}


def _metrics(run: Path) -> dict[str, float]:
    return {
        k: v for k, v in json.loads((run / "metrics.json").read_text()).items() if not k.startswith("time/")
    }


def _same_numbers(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """Keys whose values differ (numbers to 1e-9, the rest exactly)."""
    bad = []
    for key in sorted(want.keys() | got.keys()):
        a, b = got.get(key), want.get(key)
        try:
            if abs(float(a) - float(b)) <= 1e-9 or (a == b):  # type: ignore[arg-type]
                continue
        except (TypeError, ValueError):
            if a == b:
                continue
        bad.append(f"{key}: {a!r} != {b!r}")
    return bad


@pytest.fixture(scope="module")
def local_grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The grid run by Hydra's basic launcher in this process's machine: the reference."""
    tmp = tmp_path_factory.mktemp("local")
    done = run_train([*GRID, *TINY, f"hydra.sweep.dir={tmp}/sweep"], tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "sweep"


@pytest.fixture(scope="module")
def slurm_grid(slurm: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The grid submitted to SLURM; job 1 is pre-empted (USR2, as SLURM warns) in the middle of epoch 1."""
    tmp = tmp_path_factory.mktemp("on_slurm")
    sweep, marker = tmp / "sweep", tmp / "held"
    started = time.monotonic()
    process = _start_sweep([*GRID, *TINY, *SLURM, *hold("1", marker), f"hydra.sweep.dir={sweep}"], tmp, slurm)
    try:
        _wait_for(
            marker, process, 180, "job 1 never reached its pre-emption point\n" + _diagnose(slurm, sweep, tmp)
        )
        job_id = marker.read_text().strip()
        # Once. This SLURM delivers the signal but may answer "Job can not be altered now, try again
        # later", and scancel then retries every ~5 s: a retry would pre-empt the requeued job again.
        with contextlib.suppress(subprocess.TimeoutExpired):
            slurm.command("scancel", "--signal=USR2", job_id, timeout_s=3)
        code = process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    return {
        "sweep": sweep,
        "preempted": job_id,
        "code": code,
        "seconds": time.monotonic() - started,
        "diagnose": _diagnose(slurm, sweep, tmp),
    }


def test_every_job_of_the_grid_runs_under_slurm(slurm: SlurmCluster, slurm_grid: dict[str, Any]) -> None:
    sweep, diagnose = slurm_grid["sweep"], slurm_grid["diagnose"]
    assert slurm_grid["code"] == 0, diagnose
    ids = {}
    for job in "0123":
        hydra_cfg = yaml.safe_load((sweep / job / ".hydra" / "hydra.yaml").read_text())
        ids[job] = str(hydra_cfg["hydra"]["job"]["id"])  # submitit's <array job>_<task>, set inside the job
        info = slurm.job(ids[job])
        assert info.get("JobState") == "COMPLETED" and info.get("ExitCode") == "0:0", (info, diagnose)
        assert info.get("NodeList") == "localhost" and info.get("Partition") == PARTITION, info
        assert (sweep / ".submitit" / ids[job] / f"{ids[job]}_0_result.pkl").is_file(), diagnose
    assert len({i.split("_")[0] for i in ids.values()}) == 1, ids  # one array job: one sbatch for the grid
    assert sorted(i.split("_")[1] for i in ids.values()) == ["0", "1", "2", "3"], ids


def test_slurm_grid_equals_the_local_grid(slurm_grid: dict[str, Any], local_grid: Path) -> None:
    sweep, diagnose = slurm_grid["sweep"], slurm_grid["diagnose"]
    assert slurm_grid["code"] == 0, diagnose
    for job in "0123":
        bad = _same_numbers(_metrics(sweep / job), _metrics(local_grid / job))
        assert not bad, f"job {job} metrics.json differs from the local run: {bad[:5]}\n{diagnose}"
    got, want = _summary(sweep), _summary(local_grid)
    assert sorted(got) == sorted(want) == ["0", "1", "2", "3"]
    excluded = {"sweep", "run_dir", "action", "overrides"}  # overrides: + the hold callback
    for job in got:
        a = {k: v for k, v in got[job].items() if k not in excluded and not k.startswith("time/")}
        b = {k: v for k, v in want[job].items() if k not in excluded and not k.startswith("time/")}
        bad = _same_numbers(a, b)
        assert not bad, f"summary.csv row {job}: {bad[:5]}"
    assert [got[j]["action"] for j in "0123"] == ["ran", "resumed", "ran", "ran"]

    def report(folder: Path) -> str:
        text = (folder / "report.md").read_text().replace(str(folder), "<sweep>")
        return re.sub(r" Throughput: [^\n]*", "", text)  # wall time and runs/hour

    resumed = "## Resumed sweep\n\nIn the last invocation (`sweep_resume=true`): 0 skipped, 1 resumed, 3 ran"
    assert resumed in report(sweep)  # the one section the local report lacks
    assert re.sub(r"## Resumed sweep\n\n[^\n]*\n\n", "", report(sweep)) == report(local_grid)


def test_preempted_job_saves_is_requeued_and_resumes(slurm: SlurmCluster, slurm_grid: dict[str, Any]) -> None:
    sweep, diagnose = slurm_grid["sweep"], slurm_grid["diagnose"]
    info = slurm.job(slurm_grid["preempted"])
    assert info.get("Restarts") == "1" and info.get("JobState") == "COMPLETED", (info, diagnose)
    log = (sweep / "1" / "train.log").read_text()
    saved = log.index("signal SIGUSR2: saved")  # RequeueCheckpoint, at the batch after the signal
    resumed = log.index("resuming", saved)  # the requeued job: SLURM_RESTART_COUNT=1
    assert "skipped the 3 batches of epoch 1" in log[resumed:], log[-3000:]
    err = next(sweep.glob(".submitit/*_1/*_log.err")).read_text()
    assert "this job is preempted" in err, err[-3000:]
    assert json.loads((sweep / "1" / "job_action.json").read_text())["action"] == "resumed"


def test_cancelled_sweep_resumes_skipping_finished_jobs(
    slurm: SlurmCluster, local_grid: Path, tmp_path: Path
) -> None:
    sweep, marker = tmp_path / "sweep", tmp_path / "held"
    # One job at a time: job 0 finishes, job 1 is cancelled in the middle of epoch 1.
    args = ["-m", "loss=ce,dice", "seed=0", *TINY, *SLURM, "hydra.launcher.array_parallelism=1"]
    args += [*hold("1", marker), f"hydra.sweep.dir={sweep}"]
    process = _start_sweep(args, tmp_path, slurm)
    try:
        _wait_for(marker, process, 180, "job 1 never started\n" + _diagnose(slurm, sweep, tmp_path))
        job_id = marker.read_text().strip()
        slurm.command("scancel", job_id.split("_")[0])  # the whole array: job 1 running, none pending
        deadline = time.monotonic() + 60
        while slurm.job(job_id).get("JobState") != "CANCELLED" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert slurm.job(job_id).get("JobState") == "CANCELLED", _diagnose(slurm, sweep, tmp_path)
    finally:
        process.send_signal(signal.SIGINT)  # the user's Ctrl-C: the submitting command stops waiting
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    assert (sweep / "0" / "metrics.json").is_file() and not (sweep / "1" / "metrics.json").exists()
    finished_before = (sweep / "0" / "metrics.json").stat().st_mtime_ns

    done = run_train([*args, "sweep_resume=true"], tmp_path, env=slurm.env)
    diagnose = _diagnose(slurm, sweep, tmp_path) + f"\n--- resume\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    assert done.returncode == 0, diagnose
    actions = {j: json.loads((sweep / j / "job_action.json").read_text())["action"] for j in "01"}
    assert actions == {"0": "skipped", "1": "resumed"}, diagnose  # job 1 from its epoch-0 last.ckpt
    assert (sweep / "0" / "metrics.json").stat().st_mtime_ns == finished_before
    # (ce, seed 0) and (dice, seed 0) of the local grid. Job 1 resumed from its epoch-end last.ckpt:
    # its test, val and post-hoc numbers are the uninterrupted run's; the training diagnostics
    # (train/presence, train/grad_share, health/val_never_improved) are not restored exactly there.
    compared = ("test/", "val/", "posthoc/")
    for job, local in (("0", "0"), ("1", "2")):
        got, want = _metrics(sweep / job), _metrics(local_grid / local)
        bad = _same_numbers(
            {k: v for k, v in got.items() if k.startswith(compared)},
            {k: v for k, v in want.items() if k.startswith(compared)},
        )
        assert not bad, f"job {job}: {bad[:5]}\n{diagnose}"
