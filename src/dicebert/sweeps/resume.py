"""Resumable sweeps: each job decides from its own folder whether to skip, resume or run.

Hydra numbers the jobs of a grid by expanding the same sweep lists in the same order, so re-running
the sweep command with ``hydra.sweep.dir=<old folder> sweep_resume=true`` gives every job its old
folder back. Hydra has no resume of its own (hydra#1407, #3328), so the decision lives here:

- ``metrics.json`` present (written last, atomically): the job finished → **skipped**, its metrics
  still counted by the report;
- ``checkpoints/last.ckpt`` present, no ``metrics.json``, no ``failure.json``: interrupted →
  **resumed** from that checkpoint (exact: it carries the RNG and sampler state);
- otherwise (failed, or never started) → **run** from scratch.

Before any job runs, :func:`check_resumable` composes every job's config of the new invocation and
refuses, in one line naming the keys, a job whose folder recorded a different config. A SLURM job
that submitit requeues after pre-emption or time-out takes the same path: ``RequeueCheckpoint``
(:mod:`dicebert.sweeps.requeue`) saves ``last.ckpt`` when the signal arrives, and the requeued job
resumes from it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dicebert.errors import ResumeError

log = logging.getLogger(__name__)

#: Top-level config key that switches resuming on (``sweep_resume=true``); ignored when comparing configs.
RESUME_KEY = "sweep_resume"
#: What each job did in the latest invocation, read by the sweep report.
ACTION_FILE = "job_action.json"


class JobAction(str, Enum):
    """What one job does in this invocation."""

    RUN = "ran"
    RESUME = "resumed"
    SKIP = "skipped"


def requeued() -> bool:
    """True in a SLURM job that SLURM restarted (pre-emption, or a time-out that submitit requeued)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0


def decide(output_dir: Path) -> JobAction:
    """The action for one job folder, from what an earlier invocation left there."""
    if (output_dir / "metrics.json").is_file():
        return JobAction.SKIP
    if (output_dir / "checkpoints" / "last.ckpt").is_file() and not (output_dir / "failure.json").exists():
        return JobAction.RESUME
    return JobAction.RUN


def prepare_job(output_dir: Path, resume: bool) -> JobAction:
    """Decide, clear what a failed or half-started attempt left, and record the action for the report."""
    action = decide(output_dir) if resume else JobAction.RUN
    if resume and action is JobAction.RUN:
        # A failed or killed-before-first-checkpoint attempt: its failure note and any stale checkpoint
        # (a failed run's best-*.ckpt) must not be read as this attempt's.
        (output_dir / "failure.json").unlink(missing_ok=True)
        shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
    if resume:
        output_dir.mkdir(parents=True, exist_ok=True)
        record = {"action": action.value, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (output_dir / ACTION_FILE).write_text(json.dumps(record) + "\n")
    return action


def finished_metrics(output_dir: Path) -> dict[str, float]:
    """The metrics a skipped job finished with."""
    return dict(json.loads((output_dir / "metrics.json").read_text()))


def read_action(job_dir: Path) -> str:
    """``ran``/``resumed``/``skipped`` from the job's last resumed invocation; ``ran`` when never resumed."""
    path = job_dir / ACTION_FILE
    if not path.is_file():
        return JobAction.RUN.value
    return str(json.loads(path.read_text()).get("action", JobAction.RUN.value))


# ------------------------------------------------------------------------- refusing a changed job
def _flatten(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _flatten(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), node


def config_differences(old: DictConfig, new: DictConfig) -> list[str]:
    """Dotted keys whose (unresolved) values differ, ignoring Hydra's own node and the resume switch."""

    def plain(cfg: DictConfig) -> dict[str, Any]:
        container = OmegaConf.to_container(cfg, resolve=False)
        assert isinstance(container, dict)
        return {
            k: v for k, v in _flatten({k: v for k, v in container.items() if k not in ("hydra", RESUME_KEY)})
        }

    a, b = plain(old), plain(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k, "<absent>") != b.get(k, "<absent>"))


def check_resumable(config: DictConfig, job_overrides: list[list[str]]) -> None:
    """Refuse, before any job runs, a resume whose jobs would not be the jobs in their folders.

    ``job_overrides[i]`` are the sweep overrides of job ``i`` in this invocation; each is composed
    with Hydra's own loader and compared with ``<sweep>/<i>/.hydra/config.yaml``, which Hydra
    rewrites only when that job starts.
    """
    from hydra.core.global_hydra import GlobalHydra

    sweep_dir = Path(str(config.hydra.sweep.dir))
    if not any(sweep_dir.glob("*/.hydra/config.yaml")):
        raise ResumeError(
            f"sweep_resume=true but {sweep_dir} holds no jobs of an earlier sweep; pass the old folder "
            "with hydra.sweep.dir=<logs/<task>/multiruns/<time>>"
        )
    loader = GlobalHydra.instance().config_loader()
    for num, overrides in enumerate(job_overrides):
        recorded = sweep_dir / str(num) / ".hydra" / "config.yaml"
        if not recorded.is_file():
            continue  # never started: nothing to contradict
        new = loader.load_sweep_config(config, list(overrides))
        old = OmegaConf.load(recorded)
        changed = config_differences(old, new) if isinstance(old, DictConfig) else ["<not a mapping>"]
        if changed:
            shown = ", ".join(changed[:5]) + (f" (+{len(changed) - 5} more)" if len(changed) > 5 else "")
            raise ResumeError(
                f"job {num} in {sweep_dir} was run with a different config ({shown}); resume with the "
                "original sweep command plus sweep_resume=true, or start a new sweep folder"
            )


def register_resumable_optuna() -> None:
    """Make Hydra know the resumable Optuna sweeper also in an editable install.

    Hydra finds plugins by walking the ``hydra_plugins`` namespace on disk, which an editable
    install's import hook hides (the configs' ``dicebert.conf`` mapping needs that hook), so the
    entry point registers the class through Hydra's public ``Plugins.register``.
    """
    from hydra.core.plugins import Plugins

    from hydra_plugins.dicebert_sweepers import resumable_optuna

    sweeper = getattr(resumable_optuna, "ResumableOptunaSweeper", None)
    if sweeper is not None:  # None without the optuna extra
        Plugins.instance().register(sweeper)
