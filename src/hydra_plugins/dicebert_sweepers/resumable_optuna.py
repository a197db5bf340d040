"""Optuna sweeper whose study lives in the sweep folder and resumes towards its total trial count.

The plugin's own sweeper (hydra-optuna-sweeper 1.3) already loads an existing study, but then runs
``n_trials`` *more* trials, restarts job numbers at 0 (overwriting folders) and leaves trials that
were running when the process died in RUNNING forever. Here, with ``sweep_resume=true``:

- trials left RUNNING are marked FAIL and their parameters re-enqueued (proposed again first);
- only ``n_trials`` minus the COMPLETE trials are run;
- job numbers continue after the existing trials, so no folder is overwritten.

Without ``sweep_resume=true`` a study that already has trials is refused, so an old folder is never
extended by accident.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

log = logging.getLogger(__name__)

try:  # the optuna extra; Hydra scans this module on every command, so its absence must stay silent
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:  # pragma: no cover - exercised only without the extra
    OptunaSweeper = None  # type: ignore[assignment,misc]


if OptunaSweeper is not None:

    class ResumableOptunaSweeper(OptunaSweeper):
        """:class:`OptunaSweeper` plus resume (see the module docstring)."""

        def setup(
            self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
        ) -> None:
            super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
            self._resume = bool(config.get("sweep_resume", False))
            self._sweep_dir = Path(str(config.hydra.sweep.dir))

        def sweep(self, arguments: list[str]) -> None:
            impl: Any = self.sweeper
            if impl.storage is not None and impl.study_name is not None:
                self._sweep_dir.mkdir(parents=True, exist_ok=True)  # the SQLite file lives in it
                self._continue_study(impl)
            return super().sweep(arguments)

        def _continue_study(self, impl: Any) -> None:
            import optuna
            from optuna.trial import TrialState

            try:
                study = optuna.load_study(study_name=impl.study_name, storage=impl.storage)
            except KeyError:
                return  # a new study
            trials = study.get_trials(deepcopy=False)
            if not trials:
                return
            if not self._resume:
                raise SystemExit(  # one line, no traceback: the fix is in the message
                    f"error: {self._sweep_dir} already holds Optuna study {impl.study_name!r} "
                    f"with {len(trials)} trials; "
                    "add sweep_resume=true to continue it, or choose a new hydra.sweep.dir"
                )
            interrupted = [t for t in trials if t.state == TrialState.RUNNING]
            for trial in interrupted:
                study._storage.set_trial_state(trial._trial_id, TrialState.FAIL)
                study.enqueue_trial(dict(trial.params))
            complete = sum(t.state == TrialState.COMPLETE for t in trials)
            total = int(impl.n_trials)
            impl.n_trials = max(0, total - complete)
            impl.job_idx = len(trials)  # job folders continue after the existing trials'
            log.info(
                "resuming study %r: %d of %d trials complete, %d interrupted (re-proposed), %d to run",
                impl.study_name,
                complete,
                total,
                len(interrupted),
                impl.n_trials,
            )
