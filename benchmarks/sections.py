"""The CPU benchmark's sections besides the Trainer comparison; each returns plain numbers for the JSON.

A section that this CPU cannot run fast returns ``{"skipped": "<reason>"}`` instead of figures.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

from benchmarks.clock import MARK, phases
from benchmarks.common import REPO, StepClock, build, build_module, compose_config, quiet_trainer
from benchmarks.hf_trainer import _ClockCallback
from dicebert.hardware import detect_cpu
from dicebert.sweeps.throughput import sweep_throughput

#: Where ``--default-run`` keeps its last measurement, reported when the flag is not given.
LAST_DEFAULT_RUN = REPO / "benchmarks" / "last_default_run.json"
#: The last ρ = 100 recipe grid given with ``--rho100-sweep`` (a grid is hours: never run in here).
LAST_RHO100_GRID = REPO / "benchmarks" / "last_rho100_grid.json"
MIN_INFORMATIVE_F1 = 0.5  # a model predicting one class of five scores at most 0.2 macro-F1
BF16_F1_TOLERANCE = 0.01


@dataclass
class Settings:
    """Sizes of every section; :meth:`small` shrinks them to check the machinery in seconds."""

    work_dir: Path
    tiny: bool = False
    warmup: int = 3
    steps: int = 12
    rounds: int = 2
    padding_max_length: int = 256
    padding_steps: int = 4
    precision_seeds: tuple[int, ...] = (0, 1, 2)
    precision_epochs: int = 3  # one epoch of ce scored test macro-F1 0.258 here: not learned yet
    deadline: float = math.inf  # time.perf_counter() by which a long section stops early (and says so)
    force_bf16: bool = False
    memory_batches: int = 10
    sweep_grid: tuple[str, ...] = ("loss=ce,dice", "seed=0,1")
    sweep_fixed: tuple[str, ...] = ("model=tiny", "data.imbalance_ratio=100", "trainer.max_epochs=1")
    overrides: list[str] = field(default_factory=list)  # composed into every in-process config

    @classmethod
    def small(cls, work_dir: Path) -> Settings:
        return cls(
            work_dir=work_dir,
            tiny=True,
            warmup=1,
            steps=2,
            rounds=1,
            padding_max_length=64,
            padding_steps=2,
            precision_seeds=(0,),
            precision_epochs=1,
            memory_batches=2,
            sweep_grid=("loss=ce,dice",),
            sweep_fixed=("model=tiny", "data.imbalance_ratio=2", "trainer.max_epochs=1"),
            overrides=["model=tiny", "data.limit_per_class=24", "data.max_length=32"],
        )

    def config(self, *extra: str) -> DictConfig:
        return compose_config([*self.overrides, *extra], self.work_dir / "cache" / "tokens")

    def run_overrides(self) -> list[str]:
        """The subprocess runs' size overrides: tiny sizes when checking the machinery."""
        return ["model=tiny", "data.limit_per_class=24", "data.max_length=32"] if self.tiny else []


def project_samples_per_s(
    cfg: DictConfig, dm: Any, loader: DataLoader, warmup: int, steps: int, precision: str = "32-true"
) -> float:
    """Steady-state training samples/s of the project's module over ``loader``."""
    clock = StepClock(warmup, steps)
    trainer = quiet_trainer(
        max_steps=warmup + steps, max_epochs=-1, precision=precision, callbacks=[_ClockCallback(clock)]
    )
    trainer.fit(build_module(cfg, dm), train_dataloaders=loader)
    return clock.samples_per_s()


# ------------------------------------------------------------------------------------- padding
def _real_fraction(loader: DataLoader) -> float:
    real = total = 0
    for batch in loader:
        real += int(batch["attention_mask"].sum())
        total += batch["attention_mask"].numel()
    return real / total


def measure_padding(s: Settings) -> dict[str, Any]:
    """Headlines padded to max_length (run_classification.py's default) vs per batch vs length-grouped."""
    common = (f"data.max_length={s.padding_max_length}", "data.source.text_field=title")
    cfg = s.config(*common)
    dynamic, _ = build(cfg)
    grouped, _ = build(s.config(*common, "data.group_by_length=true"))
    fixed = DataLoader(
        dynamic.datasets["train"],
        batch_size=dynamic.batch_size,
        sampler=dynamic.train_dataloader().sampler,
        collate_fn=DataCollatorWithPadding(
            dynamic.tokenizer, padding="max_length", max_length=s.padding_max_length
        ),
    )
    loaders = {"fixed": fixed, "dynamic": dynamic.train_dataloader(), "grouped": grouped.train_dataloader()}
    out: dict[str, Any] = {"max_length": s.padding_max_length, "text_field": "title"}
    for name, loader in loaders.items():
        out[f"{name}_real_token_fraction"] = _real_fraction(loader)
        steps = s.padding_steps if name == "fixed" else s.steps
        out[f"{name}_samples_per_s"] = project_samples_per_s(cfg, dynamic, loader, s.warmup, steps)
    out["padding_speedup"] = out["dynamic_samples_per_s"] / out["fixed_samples_per_s"]
    out["grouped_speedup"] = out["grouped_samples_per_s"] / out["fixed_samples_per_s"]
    return out


# ----------------------------------------------------------------------------------- precision
def measure_precision(s: Settings) -> dict[str, Any]:
    """fp32 vs bf16-mixed, same seeds and batches: samples/s and test macro-F1 after whole epochs.

    Trained with ``ce`` for ``precision_epochs`` full epochs, long enough that a model still
    predicting one class (macro-F1 <= 0.2) fails the quality check instead of tying with bf16.
    Seeds that would end past ``s.deadline`` are not started; the output says how many ran.
    """
    cpu = detect_cpu()
    if not cpu.native_bf16 and not s.force_bf16:
        return {"skipped": "skipped: no native bf16", "cpu_detected": cpu.describe()}
    cfg = s.config("loss=ce")
    out: dict[str, Any] = {"loss": "ce", "epochs": s.precision_epochs, "seeds": list(s.precision_seeds)}
    runs: dict[str, list[tuple[float, float]]] = {"fp32": [], "bf16": []}
    per_seed = 0.0
    for done, seed in enumerate(s.precision_seeds):
        seed_started = time.perf_counter()
        if done and seed_started + per_seed > s.deadline:
            out["shortened"] = f"shortened: {done} of {len(s.precision_seeds)} seeds fit the time budget"
            break
        dm, _ = build(cfg, seed=seed)
        for key, precision in (("fp32", "32-true"), ("bf16", "bf16-mixed")):
            module = build_module(cfg, dm, seed=seed)
            trainer = quiet_trainer(precision=precision, max_epochs=s.precision_epochs, callbacks=[])
            started = time.perf_counter()
            trainer.fit(module, train_dataloaders=dm.train_dataloader())
            seconds = time.perf_counter() - started
            samples = len(dm.datasets["train"]) * s.precision_epochs
            f1 = float(
                trainer.test(module, dataloaders=dm.test_dataloader(), verbose=False)[0]["test/macro_f1"]
            )
            runs[key].append((samples / seconds, f1))
        per_seed = time.perf_counter() - seed_started
    for key, values in runs.items():
        out[f"{key}_samples_per_s"] = statistics.median(v[0] for v in values)
        out[f"{key}_test_macro_f1"] = [round(v[1], 4) for v in values]
    out["bf16_speedup"] = out["bf16_samples_per_s"] / out["fp32_samples_per_s"]
    out["quality"] = bf16_verdict(out["fp32_test_macro_f1"], out["bf16_test_macro_f1"])
    return out


def bf16_verdict(fp32: list[float], bf16: list[float]) -> str:
    """same / worse / inconclusive: a run that has not learned (a one-class model) proves nothing."""
    if min(fp32) < MIN_INFORMATIVE_F1:
        return f"inconclusive: fp32 test macro-F1 {min(fp32):.3f} < {MIN_INFORMATIVE_F1} (not learned)"
    spread = max(fp32) - min(fp32) if len(fp32) > 1 else 0.0
    gap = statistics.mean(fp32) - statistics.mean(bf16)
    if gap <= max(spread, BF16_F1_TOLERANCE):
        return (
            f"same: mean F1 gap {gap:+.3f} within the fp32 seed spread {spread:.3f} (or {BF16_F1_TOLERANCE})"
        )
    return f"worse: mean F1 gap {gap:+.3f} beyond the fp32 seed spread {spread:.3f}"


# ------------------------------------------------------------------------ real runs (subprocesses)
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
    }
    return result


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
            return {"skipped": "never measured here: pass --default-run (about 4 min on 2 cores)"}
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
