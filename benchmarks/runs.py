"""The benchmark sections that time real ``train.py`` runs in subprocesses (as a user starts them).

Kept apart from :mod:`benchmarks.sections` (in-process measurements): these need the phase clock
(:mod:`benchmarks.clock`), a fresh interpreter per run and the grid's own run folders.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from benchmarks.clock import MARK, between_runs, phases
from benchmarks.common import REPO
from benchmarks.sections import Settings
from dicebert.hardware import detect_cpu
from dicebert.sweeps.throughput import sweep_throughput

#: Where ``--default-run`` keeps its last measurement, reported when the flag is not given.
LAST_DEFAULT_RUN = REPO / "benchmarks" / "last_default_run.json"
#: The last ρ = 100 recipe grid given with ``--rho100-sweep`` (a grid is hours: never run in here).
LAST_RHO100_GRID = REPO / "benchmarks" / "last_rho100_grid.json"


def _env(s: Settings, threads: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
        DICEBERT_ROOT=str(s.work_dir),
        DICEBERT_CACHE=str(s.work_dir / "cache"),
        WANDB_MODE="offline",
        TOKENIZERS_PARALLELISM="false",
    )
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def run_train(s: Settings, overrides: list[str], env: dict[str, str], timeout: float = 900) -> dict[str, Any]:
    """``python -m dicebert.train <overrides>`` with the phase clock: seconds, phases, peak RSS, metrics."""
    run_dir = s.work_dir / "runs" / f"run-{time.time_ns()}"
    command = [
        sys.executable,
        "-m",
        "dicebert.train",
        *overrides,
        "+callbacks.phase_clock._target_=benchmarks.clock.PhaseClock",
        f"hydra.run.dir={run_dir}",
    ]
    started = time.time()
    done = subprocess.run(
        command, env=env, cwd=s.work_dir, capture_output=True, text=True, timeout=timeout, check=False
    )
    ended = time.time()
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"benchmark run failed ({done.returncode}): {' '.join(overrides)}: {tail[0]}")
    found = re.findall(re.escape(MARK) + r"(\{.*\})", done.stdout + done.stderr)
    if not found:
        raise RuntimeError(f"the run printed no phase stamps: {' '.join(overrides)}")
    report = json.loads(found[-1])
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    return {
        "command": "python train.py " + " ".join(overrides),
        "seconds": ended - started,
        "phases": phases(started, ended, report["stamps"]),
        "peak_rss_mb": report["peak_rss_mb"],
        "test_macro_f1": metrics.get("test/macro_f1"),
    }


def measure_startup(s: Settings) -> dict[str, Any]:
    """The default run cut to a few batches per stage: its fixed cost (outside the loops) and peak RSS.

    Every batch of the default data is equally wide, so the peak (weights, AdamW state, the
    largest activations, checkpointing) is reached in the first steps; more epochs add time, not memory.
    Where the fixed cost goes: the imports alone (``import dicebert.train`` in a fresh interpreter,
    less a bare interpreter's start) and W&B's share (the same run with ``logger=csv``, side by side).
    """
    n = s.memory_batches
    limits = [f"trainer.limit_{stage}_batches={n}" for stage in ("train", "val", "test")]
    overrides = [*limits, "trainer.max_epochs=1", *s.run_overrides()]
    result = run_train(s, overrides, _env(s))
    csv_only = run_train(s, [*overrides, "logger=csv"], _env(s))
    bare, imports = (_interpreter_seconds(s, code) for code in ("pass", "import dicebert.train"))
    result["breakdown"] = {
        "imports_s": imports - bare,
        "wandb_s": result["phases"]["outside_loops_s"] - csv_only["phases"]["outside_loops_s"],
        "outside_loops_csv_only_s": csv_only["phases"]["outside_loops_s"],
        "in_sweep_s": _in_sweep_fixed_cost(s, overrides),
    }
    return result


def _in_sweep_fixed_cost(s: Settings, overrides: list[str]) -> float:
    """The same short run as a 2-job sweep (``-m seed=0,1``, basic launcher: one process).

    A sweep pays the interpreter and imports once; each further job pays only what
    :func:`benchmarks.clock.between_runs` measures, the figure that sets a grid's runs per hour.
    """
    folder = s.work_dir / "sweeps" / f"fixed-{time.time_ns()}"
    command = [sys.executable, "-m", "dicebert.train", "-m", *overrides, "seed=0,1"]
    command += ["+callbacks.phase_clock._target_=benchmarks.clock.PhaseClock", f"hydra.sweep.dir={folder}"]
    done = subprocess.run(
        command, env=_env(s), cwd=s.work_dir, capture_output=True, text=True, timeout=900, check=False
    )
    found = re.findall(re.escape(MARK) + r"(\{.*\})", done.stdout + done.stderr)
    runs = sorted((json.loads(line)["stamps"] for line in found), key=lambda st: st["callbacks_built"])
    if done.returncode != 0 or len(runs) != 2:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"the 2-job sweep gave {len(runs)} phase reports ({done.returncode}): {tail[0]}")
    return between_runs(*runs)


def _interpreter_seconds(s: Settings, code: str) -> float:
    """Wall seconds of ``python -c code`` in a fresh interpreter (the fastest of two: imports are cached)."""
    times = []
    for _ in range(2):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=_env(s), cwd=s.work_dir, check=True, timeout=300)
        times.append(time.perf_counter() - started)
    return min(times)


def measure_sweep(s: Settings) -> dict[str, Any]:
    """Runs per hour of a small grid (``-m``), one job at a time and two in parallel (1 thread each)."""
    out: dict[str, Any] = {"grid": [*s.sweep_fixed, *s.sweep_grid]}
    sizes = ["data.limit_per_class=24", "data.max_length=32"] if s.tiny else []
    runs = 1
    for values in s.sweep_grid:
        runs *= len(values.split("=", 1)[1].split(","))
    for name, launcher in (("basic", []), ("parallel", ["hydra/launcher=local_parallel", "threads=1"])):
        folder = s.work_dir / "sweeps" / name
        command = [sys.executable, "-m", "dicebert.train", "-m", *s.sweep_fixed, *s.sweep_grid, *sizes]
        command += [*launcher, f"hydra.sweep.dir={folder}"]
        started = time.perf_counter()
        done = subprocess.run(
            command, env=_env(s, 1 if launcher else None), cwd=s.work_dir, capture_output=True, text=True,
            timeout=900, check=False,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        finished = len(list(folder.glob("*/metrics.json")))
        if done.returncode != 0 or finished != runs:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise RuntimeError(f"the {name} sweep finished {finished}/{runs} runs: {tail[0]}")
        out[f"{name}_s"] = seconds
        out[f"{name}_runs_per_hour"] = runs * 3600 / seconds
    out["runs"] = runs
    out["parallel_speedup"] = out["basic_s"] / out["parallel_s"]
    return out


def default_run(s: Settings, measure: bool) -> dict[str, Any]:
    """``python train.py`` as it ships (4 epochs, CSV + offline W&B): measured, or the last measurement."""
    if not measure:
        if not LAST_DEFAULT_RUN.is_file():
            return {"skipped": "never measured here: pass --default-run (1.5 to 4 min on 2 cores)"}
        return {
            **json.loads(LAST_DEFAULT_RUN.read_text()),
            "source": f"last measured ({LAST_DEFAULT_RUN.name})",
        }
    result = run_train(s, s.run_overrides(), _env(s))
    cpu = detect_cpu()
    result.update(
        measured_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        cpu=cpu.describe(),
        load_average_1min=round(os.getloadavg()[0], 2),
    )
    if not s.tiny:  # a tiny smoke run is not a measurement of the default run
        LAST_DEFAULT_RUN.write_text(json.dumps(result, indent=2) + "\n")
    return {**result, "source": "measured in this run"}


def rho100_grid(folders: list[Path] | None) -> dict[str, Any]:
    """Runs per hour of a finished ``experiment=recipes_rho100`` grid (its folders), or the last one.

    A grid takes hours on a CPU, so the benchmark reads the throughput of one that ran (first job
    start to last result per folder, :func:`dicebert.sweeps.throughput.sweep_throughput`) and keeps it.
    """
    if not folders:
        if not LAST_RHO100_GRID.is_file():
            return {"skipped": "never measured here: pass --rho100-sweep <grid folder(s)>"}
        last = json.loads(LAST_RHO100_GRID.read_text())
        return {**last, "source": f"last measured ({LAST_RHO100_GRID.name})"}
    speed = sweep_throughput(folders)
    if speed is None:
        given = ", ".join(map(str, folders))
        raise RuntimeError(f"no finished run under {given}; pass a recipes_rho100 grid folder")
    launcher = "unknown"
    master = folders[0] / "multirun.yaml"
    if master.is_file():  # the Hydra launcher and its parallelism, as the grid ran
        node = OmegaConf.load(master).hydra.launcher
        launcher = str(node.get("_target_", "unknown")).rsplit(".", 1)[-1]
        launcher += f" n_jobs={node.n_jobs}" if "n_jobs" in node else ""
    result = {
        **speed,
        "launcher": launcher,
        "measured_at": time.strftime(
            "%Y-%m-%d %H:%M UTC", time.gmtime(max(p.stat().st_mtime for p in folders))
        ),
        "cpu": detect_cpu().describe(),
    }
    LAST_RHO100_GRID.write_text(json.dumps(result, indent=2) + "\n")
    return {**result, "source": "read from the given grid"}
