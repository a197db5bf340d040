"""Hydra entry point: compose → data → loss → model → fit → test → run outputs.

``python train.py loss=dice`` (repository root), ``python -m dicebert.train`` and the
``dicebert-train`` console script all land in :func:`main`. :func:`train` is the Hydra-free core
that tests call with a composed config.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from importlib.resources import files
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from dicebert.checkpointing import check_compatible
from dicebert.errors import CheckpointMismatchError, DataError, ModelLoadError, NonFiniteLossError
from dicebert.reporting.dashboards import log_run_outputs
from dicebert.reporting.run_outputs import (
    build_metrics_record,
    plot_confusion_matrix,
    results_table,
    write_json,
)

log = logging.getLogger("dicebert")

#: Errors caused by the user's config or data: reported as one line, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    CheckpointMismatchError,
    DataError,
    ModelLoadError,
    NonFiniteLossError,
    ValueError,
    FileNotFoundError,
)


def config_dir() -> str:
    """The ``conf/`` folder: inside the installed package if shipped there, else the repository's."""
    packaged = Path(str(files("dicebert"))) / "conf"
    if packaged.is_dir():
        return str(packaged)
    return str(Path(__file__).resolve().parents[2] / "conf")


def print_config_tree(cfg: DictConfig, save_to: Path | None = None) -> None:
    """Print the resolved config as a tree (and save it) so every run says exactly what it ran."""
    import rich
    import rich.syntax
    import rich.tree

    tree = rich.tree.Tree("CONFIG", guide_style="dim")
    for key in cfg:
        if key == "hydra":  # present only in composed test configs; Hydra saves its own
            continue
        value = cfg[key]
        body = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        tree.add(str(key)).add(rich.syntax.Syntax(body, "yaml"))
    rich.print(tree)
    if save_to is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        with open(save_to, "w") as handle:
            rich.print(tree, file=handle)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a callbacks/logger group (a dict of ``_target_`` configs)."""
    if not group:
        return []
    return [
        instantiate(entry)
        for entry in group.values()
        if isinstance(entry, DictConfig) and "_target_" in entry
    ]


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """``ckpt_path=last`` → ``<resume_dir or this run folder>/checkpoints/last.ckpt``."""
    ckpt = cfg.get("ckpt_path")
    if ckpt != "last":
        if ckpt is not None and not Path(ckpt).is_file():
            raise FileNotFoundError(f"ckpt_path={ckpt} does not exist; pass a .ckpt file or ckpt_path=last")
        return ckpt
    run_dir = Path(cfg.get("resume_dir") or cfg.paths.output_dir)
    path = run_dir / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise FileNotFoundError(
            f"ckpt_path=last: no checkpoints/last.ckpt in {run_dir}; "
            "point resume_dir (or hydra.run.dir) at the run folder"
        )
    return str(path)


def train(cfg: DictConfig) -> dict[str, float]:
    """Train and test one configuration; write the run outputs; return the metrics record."""
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    if cfg.get("seed") is not None:  # seed=0 is a seed too
        L.seed_everything(int(cfg.seed), workers=True)

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    loss = instantiate(cfg.loss, class_counts=datamodule.class_counts)
    module = instantiate(cfg.model, loss=loss, class_names=datamodule.class_names)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    # Checkpointing follows the callbacks group: callbacks=none must not get Lightning's default one.
    checkpointing = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, enable_checkpointing=checkpointing
    )
    hparams = {
        key: OmegaConf.to_container(cfg[key], resolve=True) if isinstance(cfg[key], DictConfig) else cfg[key]
        for key in cfg
        if key != "hydra"
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

    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    test_ckpt = best if cfg.get("train", True) else ckpt_path
    test_metrics = trainer.test(module, datamodule=datamodule, ckpt_path=test_ckpt, verbose=False)[0]
    best_score = checkpoint.best_model_score if checkpoint is not None else None
    record = build_metrics_record(
        test_metrics,
        None if best_score is None else float(best_score),
        datamodule.class_names,
        datamodule.class_counts,
        extra={"time/fit_seconds": fit_seconds, "time/total_seconds": time.perf_counter() - started},
    )
    confusion = module.test_confusion.compute().cpu().numpy()
    if trainer.is_global_zero:
        plot_confusion_matrix(confusion, datamodule.class_names, output_dir / "confusion_matrix.png")
        write_json(
            output_dir / "confusion_matrix.json",
            {"class_names": datamodule.class_names, "matrix": confusion.tolist()},
        )
        write_json(output_dir / "metrics.json", record)  # last: its presence means the run finished
        log.info("\n%s\nrun folder: %s", results_table(record, datamodule.class_names), output_dir)
        log_run_outputs(trainer.loggers, record, datamodule.class_names, confusion, output_dir)
    return record


def _find_user_error(err: BaseException) -> BaseException | None:
    """The first user-caused error in the chain (Hydra wraps target errors in InstantiationException)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, USER_ERRORS):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _task(cfg: DictConfig) -> float | None:
    output_dir = Path(cfg.paths.output_dir)
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    rank_zero = rank_zero_only.rank == 0  # DDP ranks > 0 share the run folder but write nothing
    try:
        if rank_zero:
            print_config_tree(cfg, output_dir / "config_tree.log")
        record = train(cfg)
    except Exception as err:
        user_error = _find_user_error(err)
        detail = "; ".join(
            line.strip() for line in str(user_error or err).strip().splitlines() if line.strip()
        )
        message = f"{type(user_error or err).__name__}: {detail}"
        if rank_zero:
            write_json(output_dir / "failure.json", {"error": message, "traceback": traceback.format_exc()})
        if torch.cuda.is_available():  # an OOM must not leave the next job of this process short
            torch.cuda.empty_cache()
        if multirun:  # one failed job must not stop the sweep or hide the others' results
            log.error("job failed (recorded in %s): %s", output_dir / "failure.json", message)
            return float("nan")
        if user_error is None:
            raise
        raise SystemExit(f"error: {message}") from None
    return record.get("val/best_macro_f1")


def check_group_choices(overrides: list[str], conf_dir: str | os.PathLike[str]) -> None:
    """Refuse ``loss=nope`` (also inside a sweep list) in one line naming the valid choices.

    Hydra's own message spans many lines and, inside a multirun, only comes when that job is
    reached; checking up front fails the whole command before any job starts.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    root = Path(conf_dir)
    if any(o.lstrip("+~").startswith("hydra.searchpath") for o in overrides):
        return  # groups may come from other config folders: leave the check to Hydra
    try:  # Hydra's own parser, so sweep lists and choice(...) read exactly as Hydra reads them
        parsed = OverridesParser.create().parse_overrides(
            [o for o in overrides if not o.startswith("-")]  # flags such as -m / --multirun
        )
    except HydraException:
        return  # malformed overrides: Hydra reports them itself
    for override in parsed:
        group = override.key_or_group
        if group.startswith("hydra") or override.is_delete() or override.package is not None:
            continue  # Hydra's own groups include plugin configs (hydra/launcher=joblib)
        if not (root / group).is_dir():
            continue  # a value override (data.batch_size=8), not a group choice
        if override.is_sweep_override() and not override.is_discrete_sweep():
            continue  # range/interval sweeps: not group choices
        values = (
            override.sweep_string_iterator()
            if override.is_sweep_override()
            else [override.get_value_element_as_str()]
        )
        choices = sorted(p.stem for p in (root / group).glob("*.yaml") if not p.stem.startswith("_"))
        for value in values:
            if value not in choices and value not in ("", "null"):  # empty/null: Hydra's to judge
                raise SystemExit(f"error: unknown {group} {value!r}; choose one of: {', '.join(choices)}")


def main() -> None:
    """Console entry point (``dicebert-train``), also used by the root ``train.py``."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warnings from DataLoader workers
    check_group_choices(sys.argv[1:], config_dir())
    hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")(_task)()


if __name__ == "__main__":
    main()
