"""The Hydra callback of every sweep: check the grid up front, group W&B runs, write the report.

Configured once in ``conf/hydra/default.yaml`` (``hydra.callbacks.dicebert_sweep``), so
``python train.py -m experiment=...`` is the one command: the comparison lands in the sweep folder.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dicebert.config import check_group_choices
from dicebert.errors import DicebertError
from dicebert.sweeps.grid import grid_jobs, sweep_arguments
from dicebert.sweeps.report import compare_sweep, status_counts
from dicebert.sweeps.resume import RESUME_KEY, check_resumable

if TYPE_CHECKING:
    from hydra.core.config_loader import ConfigLoader

log = logging.getLogger(__name__)

#: Environment variable through which a sweep names the W&B group of its jobs (conf/logger/wandb.yaml).
GROUP_ENV = "DICEBERT_SWEEP_GROUP"


def _hydra_loader() -> ConfigLoader | None:
    """The running Hydra's config loader (its search path included); None outside a Hydra run."""
    from hydra.core.global_hydra import GlobalHydra

    hydra = GlobalHydra.instance()
    return hydra.config_loader() if hydra.is_initialized() else None


class SweepCallback(Callback):
    """Hydra callback for sweeps (``hydra.callbacks`` in the experiment configs).

    - before any job: :func:`~dicebert.config.check_group_choices` on the sweeper's params and the
      command line (a typo in a sweep list costs nothing);
    - with ``sweep_resume=true``: refuses, in one line, a job whose folder recorded another config
      (:func:`~dicebert.sweeps.resume.check_resumable`);
    - names the W&B group ``<task_name>-<sweep folder name>`` through ``$DICEBERT_SWEEP_GROUP``;
    - after each job: closes a W&B run a failed job left open, so the next job in this process
      starts its own run instead of appending to that one;
    - after the sweep: writes the comparison next to it (``compare: false`` to skip), paired with
      ``baseline`` when the sweep ran it.
    """

    def __init__(self, compare: bool = True, baseline: str | None = None) -> None:
        self.compare = compare
        self.baseline = baseline
        self._previous_group: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_group_choices(sweep_arguments(config), _hydra_loader())
        except DicebertError as err:
            raise SystemExit(f"error: {err}; nothing was run") from None
        if config.get(RESUME_KEY):  # a grid's jobs must be the jobs in their folders (Optuna: its sweeper)
            jobs = grid_jobs(config)
            try:
                if jobs is not None:
                    check_resumable(config, jobs)
            except DicebertError as err:
                raise SystemExit(f"error: {err}; nothing was run") from None
        sweep_dir = Path(str(config.hydra.sweep.dir))
        self._previous_group = os.environ.get(GROUP_ENV)
        os.environ[GROUP_ENV] = f"{config.task_name}-{sweep_dir.name}"

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus

        from dicebert.reporting.dashboards import finish_wandb

        value = getattr(job_return, "_return_value", None)
        failed = job_return.status != JobStatus.COMPLETED or (isinstance(value, float) and math.isnan(value))
        finish_wandb(exit_code=1 if failed else 0)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._previous_group is None:
            os.environ.pop(GROUP_ENV, None)
        else:
            os.environ[GROUP_ENV] = self._previous_group
        if not self.compare:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:  # part of an experiment's grid (`recipe=dice,dice_cover`) may lack its baseline: unpaired
            sweep = compare_sweep(sweep_dir, default_baseline=self.baseline)
        except Exception as err:  # the runs are on disk; a report problem must not hide them
            log.error("could not write the sweep comparison for %s: %s", sweep_dir, err)
            return
        log.info("sweep comparison: %s (%s)", sweep_dir / "report.md", status_counts(sweep))
