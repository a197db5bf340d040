"""Hydra entry point: compose → data → loss → model → callbacks and loggers → fit → test → finish.

``python train.py loss=dice`` (repository root), ``python -m dicebert.train`` and the
``dicebert-train`` console script all land in :func:`main`. :func:`train` is the Hydra-free core
that tests call with a composed config; :func:`task` is what Hydra calls per job (skip or resume,
errors as one line, the sweep objective: :mod:`dicebert.job`). What a run measures beyond its
test metrics comes from the callbacks in ``conf/callbacks/`` (``callbacks=minimal``: none of the
research diagnostics), and fine-tunes and baselines end through the same
:func:`~dicebert.reporting.finish.finish_run`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, open_dict

import dicebert.losses  # noqa: F401  (registers ${loss_default:...}, which the loss configs use)
from dicebert.baselines import is_baseline, run_baseline
from dicebert.checkpointing import best_checkpoint, check_compatible, drop_resume_point, resolve_ckpt_path
from dicebert.config import (
    check_group_choices,
    check_optional_targets,
    config_dir,
    instantiate_group,
    log_hyperparameters,
)
from dicebert.errors import DicebertError
from dicebert.hardware import resolve_precision
from dicebert.job import run_task
from dicebert.priors import training_prior
from dicebert.reporting.finish import FinishedRun, finish_run, write_run_header
from dicebert.sweeps.resume import register_resumable_optuna

log = logging.getLogger("dicebert")


def train(cfg: DictConfig) -> dict[str, float]:
    """Train and test one configuration; write the run outputs; return the metrics record."""
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    check_optional_targets(cfg)
    # Before any data is read: say what the CPU can do, and refuse bf16 where it would be emulated.
    with open_dict(cfg):
        cfg.trainer.precision = resolve_precision(cfg.trainer)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    if cfg.get("seed") is not None:  # seed=0 is a seed too
        L.seed_everything(int(cfg.seed), workers=True)

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    write_run_header(output_dir, datamodule)
    if is_baseline(cfg.model):  # TF-IDF / frozen-encoder + logistic regression: no Lightning fit
        callbacks, loggers = instantiate_group(cfg.get("callbacks")), instantiate_group(cfg.get("logger"))
        log_hyperparameters(loggers, cfg)
        return run_baseline(cfg, datamodule, callbacks, loggers, started)
    # Priors and weights from what the model sees: a rebalancing sampler changes the class distribution.
    prior, resampled = training_prior(datamodule)
    loss = instantiate(cfg.loss, class_counts=prior)
    module = instantiate(cfg.model, loss=loss, class_names=datamodule.class_names)
    callbacks, loggers = instantiate_group(cfg.get("callbacks")), instantiate_group(cfg.get("logger"))
    # Checkpointing follows the callbacks group: callbacks=none must not get Lightning's default one.
    checkpointing = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, enable_checkpointing=checkpointing
    )
    log_hyperparameters(loggers, cfg)

    ckpt_path = resolve_ckpt_path(cfg)
    if ckpt_path is not None:
        check_compatible(ckpt_path, datamodule.class_names, module)
    if cfg.get("train", True):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    fit_seconds = time.perf_counter() - started
    if not cfg.get("test", True):
        return {}

    best, best_score = best_checkpoint(trainer)
    test_ckpt = best if cfg.get("train", True) else ckpt_path
    test_metrics = trainer.test(module, datamodule=datamodule, ckpt_path=test_ckpt, verbose=False)[0]
    confusion = module.test_confusion.compute().cpu().numpy()
    run = FinishedRun(output_dir, datamodule, confusion, prior if resampled else None, trainer, module)
    record = finish_run(run, test_metrics, best_score, callbacks, trainer.loggers, started, fit_seconds)
    if trainer.is_global_zero:
        drop_resume_point(output_dir, keep=bool(cfg.get("keep_last_ckpt", False)))  # metrics.json is written
    return record


def task(cfg: DictConfig) -> float | None:
    """What Hydra calls per job: :func:`train` inside :func:`dicebert.job.run_task`."""
    return run_task(cfg, train)


def main() -> None:
    """Console entry point (``dicebert-train``), also used by the root ``train.py``."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warnings from DataLoader workers
    try:
        check_group_choices(sys.argv[1:])
    except DicebertError as err:
        raise SystemExit(f"error: {err}") from None
    register_resumable_optuna()
    hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")(task)()


if __name__ == "__main__":
    main()
