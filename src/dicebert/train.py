"""Hydra entry point: compose → data → loss → model → fit → test → run outputs.

``python train.py loss=dice`` (repository root), ``python -m dicebert.train`` and the
``dicebert-train`` console script all land in :func:`main`. :func:`train` is the Hydra-free core
that tests call with a composed config; :func:`run_job` is one job of a run or sweep, and
:func:`task` is what Hydra calls (errors become one line, the sweep objective is returned).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

import dicebert.losses  # noqa: F401  (registers ${loss_default:...}, which the loss configs use)
from dicebert.baselines import is_baseline, run_baseline
from dicebert.checkpointing import check_compatible, drop_resume_point
from dicebert.config import (
    check_group_choices,
    check_optional_targets,
    config_dir,
    instantiate_group,
    print_config_tree,
)
from dicebert.drw import SelectAfterReweighting, hold_early_stopping
from dicebert.errors import CheckpointMismatchError, DicebertError, one_line
from dicebert.hardware import resolve_precision
from dicebert.posthoc import LOGITS_FILE, posthoc_metrics, save_logits
from dicebert.priors import effective_class_counts
from dicebert.reporting.finish import write_test_outputs
from dicebert.reporting.health import ValMacroF1History, check_health
from dicebert.reporting.logits import TestLogitsRecorder
from dicebert.reporting.mechanism import ClassSignalMonitor
from dicebert.reporting.run_outputs import build_metrics_record, write_json
from dicebert.sweeps.resume import (
    RESUME_KEY,
    JobAction,
    finished_metrics,
    prepare_job,
    register_resumable_optuna,
    requeued,
)

log = logging.getLogger("dicebert")

#: The metric a sweep optimises when ``optimized_metric`` is not set (what the checkpoint monitors).
DEFAULT_OPTIMIZED_METRIC = "val/best_macro_f1"


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """``ckpt_path=last`` → ``<resume_dir or this run folder>/checkpoints/last.ckpt``."""
    ckpt = cfg.get("ckpt_path")
    if ckpt != "last":
        if ckpt is not None and not Path(ckpt).is_file():
            raise CheckpointMismatchError(
                f"ckpt_path={ckpt} does not exist; pass a .ckpt file or ckpt_path=last"
            )
        return ckpt
    run_dir = Path(cfg.get("resume_dir") or cfg.paths.output_dir)
    path = run_dir / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise CheckpointMismatchError(
            f"ckpt_path=last: no checkpoints/last.ckpt in {run_dir}; "
            "point resume_dir (or hydra.run.dir) at the run folder"
        )
    return str(path)


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
    if is_baseline(cfg.model):  # TF-IDF / frozen-encoder + logistic regression: no Lightning fit
        return run_baseline(cfg, datamodule, output_dir, started)
    # Priors and weights from what the model sees: a rebalancing sampler changes the class distribution.
    cover = datamodule.batch_size if getattr(datamodule, "cover_classes", False) else None
    prior_counts = effective_class_counts(
        datamodule.class_counts, datamodule.sampler, datamodule.sampler_beta, cover_batch_size=cover
    )
    loss = instantiate(cfg.loss, class_counts=prior_counts)
    module = instantiate(cfg.model, loss=loss, class_names=datamodule.class_names)
    history, test_logits, signal = ValMacroF1History(), TestLogitsRecorder(), ClassSignalMonitor()
    callbacks = [*instantiate_group(cfg.get("callbacks")), history, test_logits, signal]
    if getattr(loss, "drw_start", None) is not None:  # test weights of the re-weighted phase
        callbacks.append(SelectAfterReweighting(loss))
    loggers = instantiate_group(cfg.get("logger"))
    # Checkpointing follows the callbacks group: callbacks=none must not get Lightning's default one.
    checkpointing = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        enable_checkpointing=checkpointing,
        **hold_early_stopping(loss, cfg.trainer, callbacks),
    )
    hparams = {
        str(key): OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value
        for key, value in cfg.items()
        if key != "hydra"  # only in composed test configs (needs Hydra's runtime to resolve)
    }
    for logger in loggers:
        logger.log_hyperparams(hparams)
    if trainer.is_global_zero:
        write_json(output_dir / "label_map.json", dict(enumerate(datamodule.class_names)))
        write_json(output_dir / "data_summary.json", datamodule.summary)

    ckpt_path = resolve_ckpt_path(cfg)
    if ckpt_path is not None:
        check_compatible(ckpt_path, datamodule.class_names, module)
    if cfg.get("train", True):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    fit_seconds = time.perf_counter() - started
    if not cfg.get("test", True):
        return {}

    # The best-so-far callback is the one with a monitor; the resume point (last.ckpt) has none.
    monitored = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint) and c.monitor]
    checkpoint = monitored[0] if monitored else None
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    test_ckpt = best if cfg.get("train", True) else ckpt_path
    test_metrics = trainer.test(module, datamodule=datamodule, ckpt_path=test_ckpt, verbose=False)[0]
    best_score = checkpoint.best_model_score if checkpoint is not None else None
    confusion = module.test_confusion.compute().cpu().numpy()
    health = check_health(confusion, datamodule.class_names, datamodule.class_counts, history.values)
    extra = {**health.flags, **_posthoc(trainer, module, datamodule, test_logits, output_dir, prior_counts)}
    extra.update(signal.metrics(datamodule.class_names))
    if cfg.get("crt") is not None and trainer.world_size == 1:  # stage two on the tested weights
        extra.update(instantiate(cfg.crt)(module.net, datamodule))
    if datamodule.sampler != "none" or cover is not None:  # not the raw counts: record what was used
        names = datamodule.class_names
        extra.update({f"train/prior_count/{c}": n for c, n in zip(names, prior_counts, strict=True)})
    extra.update({"time/fit_seconds": fit_seconds, "time/total_seconds": time.perf_counter() - started})
    record = build_metrics_record(
        test_metrics,
        None if best_score is None else float(best_score),
        datamodule.class_names,
        datamodule.class_counts,
        extra=extra,
    )
    if trainer.is_global_zero:
        write_test_outputs(output_dir, record, datamodule.class_names, confusion, trainer.loggers)
        drop_resume_point(output_dir, keep=bool(cfg.get("keep_last_ckpt", False)))  # metrics.json is written
        for line in health.warnings:
            log.warning(line)
    return record


def _posthoc(
    trainer: L.Trainer,
    module: L.LightningModule,
    datamodule: Any,
    test_logits: TestLogitsRecorder,
    output_dir: Path,
    prior: list[float],
) -> dict[str, float]:
    """Save the tested weights' val/test logits (``logits.npz``) and return the post-hoc keys.

    The test logits were recorded during ``trainer.test``; only the val split needs a forward pass
    (``trainer.predict``, with the weights the test loaded). Under DDP each rank sees only its
    shard, so the analysis is single-process only.
    """
    test = test_logits.arrays()
    if trainer.world_size > 1 or test is None:
        return {}
    batches = trainer.predict(module, dataloaders=datamodule.val_dataloader())
    val = torch.cat([torch.as_tensor(b).float() for b in batches or []]).cpu().numpy()
    save_logits(
        output_dir / LOGITS_FILE, {"val": (val, np.asarray(datamodule.datasets["val"].labels)), "test": test}
    )
    return posthoc_metrics(output_dir / LOGITS_FILE, datamodule.class_names, prior)


def run_job(cfg: DictConfig) -> dict[str, float]:
    """One job of a run or a sweep: decide skip/resume/run from its folder, then train and test.

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


def _find_user_error(err: BaseException) -> DicebertError | None:
    """The first :class:`DicebertError` in the chain (Hydra wraps target errors in InstantiationException)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, DicebertError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def objective(cfg: DictConfig, record: dict[str, float]) -> float | None:
    """The value a sweeper optimises: ``record[cfg.optimized_metric]`` (default ``val/best_macro_f1``).

    None when the run measured no such key (``test=false``, or no checkpoint callback for the val
    metric): a single run does not need it, and Optuna records such a trial as failed.
    """
    name = cfg.get("optimized_metric") or DEFAULT_OPTIMIZED_METRIC
    if record and name not in record:
        log.warning("optimized_metric=%s was not measured by this run (no checkpoint callback?)", name)
    return record.get(name)


def task(cfg: DictConfig) -> float | None:
    """What Hydra calls per job: errors become one line (or NaN in a sweep); returns :func:`objective`."""
    output_dir = Path(cfg.paths.output_dir)
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        record = run_job(cfg)
        return objective(cfg, record)
    except Exception as err:
        user_error = _find_user_error(err)
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
