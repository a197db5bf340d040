"""One job of a run or a sweep around a training function: skip or resume, one-line errors, the objective.

What Hydra calls per job is :func:`run_task` with :func:`dicebert.train.train`; it stays out of
``train.py`` so that the run itself reads as orchestration only.
"""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, open_dict

from dicebert.config import print_config_tree
from dicebert.errors import find_user_error, one_line
from dicebert.reporting.run_outputs import write_json
from dicebert.sweeps.resume import RESUME_KEY, JobAction, finished_metrics, prepare_job, requeued

log = logging.getLogger("dicebert")

#: The metric a sweep optimises when ``optimized_metric`` is not set (what the checkpoint monitors).
DEFAULT_OPTIMIZED_METRIC = "val/best_macro_f1"

TrainFn = Callable[[DictConfig], dict[str, float]]


def run_job(cfg: DictConfig, train: TrainFn) -> dict[str, float]:
    """One job of a run or a sweep: decide skip/resume/run from its folder, then ``train(cfg)``.

    With ``sweep_resume=true``, or in a SLURM job that was requeued, a finished job is skipped
    (its metrics returned), an interrupted one resumes from ``last.ckpt`` and any other runs
    afresh (:mod:`dicebert.sweeps.resume`).
    """
    output_dir = Path(cfg.paths.output_dir)
    rank_zero = getattr(rank_zero_only, "rank", 0) == 0  # DDP ranks > 0 share the folder, write nothing
    resume = bool(cfg.get(RESUME_KEY, False)) or requeued()
    action = prepare_job(output_dir, resume) if rank_zero else JobAction.RUN
    if action is JobAction.SKIP:
        log.info("sweep_resume: %s finished before; skipped", output_dir)
        return finished_metrics(output_dir)
    if action is JobAction.RESUME:
        log.info("sweep_resume: resuming %s from checkpoints/last.ckpt", output_dir)
        with open_dict(cfg):
            cfg.ckpt_path, cfg.resume_dir = "last", None
    if rank_zero:
        print_config_tree(cfg, output_dir / "config_tree.log")
    return train(cfg)


def objective(cfg: DictConfig, record: dict[str, float]) -> float | None:
    """The value a sweeper optimises: ``record[cfg.optimized_metric]`` (default ``val/best_macro_f1``).

    None when the run measured no such key (``test=false``, or no checkpoint callback for the val
    metric): a single run does not need it, and Optuna records such a trial as failed.
    """
    name = cfg.get("optimized_metric") or DEFAULT_OPTIMIZED_METRIC
    if record and name not in record:
        log.warning("optimized_metric=%s was not measured by this run (no checkpoint callback?)", name)
    return record.get(name)


def run_task(cfg: DictConfig, train: TrainFn) -> float | None:
    """What Hydra calls per job: errors become one line (or NaN in a sweep); returns :func:`objective`."""
    output_dir = Path(cfg.paths.output_dir)
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        record = run_job(cfg, train)
        return objective(cfg, record)
    except Exception as err:
        user_error = find_user_error(err)
        message = one_line(user_error or err)
        if getattr(rank_zero_only, "rank", 0) == 0:
            write_json(output_dir / "failure.json", {"error": message, "traceback": traceback.format_exc()})
        if torch.cuda.is_available():  # an OOM must not leave the next job of this process short
            torch.cuda.empty_cache()
        if multirun:  # one failed job must not stop the sweep or hide the others' results
            log.error("job failed (recorded in %s): %s", output_dir / "failure.json", message)
            return math.nan
        if user_error is None:
            raise
        raise SystemExit(f"error: {message}") from None
