"""What every benchmark section shares: the product's configs and classes, a step clock, the machine."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import resource
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.fabric.utilities.throughput import Throughput
from omegaconf import DictConfig

from dicebert.hardware import detect_cpu

REPO = Path(__file__).resolve().parents[1]


class OneLineParser(argparse.ArgumentParser):
    """Bad input → one line naming the problem, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see --help)\n")


def compose_config(overrides: Sequence[str], cache_dir: str | Path) -> DictConfig:
    """``conf/train.yaml`` composed with ``overrides``, exactly as ``python train.py`` would.

    The token cache goes to ``cache_dir`` (``paths.cache_dir`` needs Hydra's run folder, which a
    composed config does not have).
    """
    from dicebert.config import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"data.cache_dir={cache_dir}"])
    return cfg


def build(cfg: DictConfig, seed: int | None = None) -> tuple[Any, L.LightningModule]:
    """The set-up DataModule and the ClassifierModule that ``train.py`` builds from ``cfg``, seeded."""
    L.seed_everything(cfg.seed if seed is None else seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    return datamodule, build_module(cfg, datamodule, seed)


def build_module(cfg: DictConfig, datamodule: Any, seed: int | None = None) -> L.LightningModule:
    """A fresh module (same seed: same initial weights) for a data module already set up."""
    L.seed_everything(cfg.seed if seed is None else seed, workers=True, verbose=False)
    loss = instantiate(cfg.loss, class_counts=datamodule.class_counts)
    return instantiate(cfg.model, loss=loss, class_names=datamodule.class_names)


def quiet_trainer(**options: Any) -> L.Trainer:
    """A Trainer that only does the work: no logger, checkpoints, progress bar, summary or sanity pass."""
    settings: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        gradient_clip_val=1.0,
        max_epochs=1,
    )
    settings.update(options)
    return L.Trainer(**settings)


def silence() -> None:
    """The benchmark prints one table; per-fit banners and hints would bury it."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "transformers", "dicebert"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for pattern in (
        ".*does not have many workers.*",
        ".*smaller than the logging interval.*",
        ".*Total length.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)


class StepClock:
    """Steady-state samples/s from step-end times, through Lightning's :class:`Throughput`.

    Call :meth:`tick` at the end of every optimizer step. The first ``warmup`` steps (allocator,
    optimizer state, first-call overheads) are left out: the window starts at the end of the last
    warm-up step and holds the ``steps`` after it, so the figure covers fetching, collating and
    every framework hook between two step ends, as a user's run pays them.
    """

    def __init__(self, warmup: int, steps: int) -> None:
        if warmup < 1 or steps < 1:
            raise ValueError(f"the step clock needs warmup >= 1 and steps >= 1; got {warmup}, {steps}")
        self.warmup = warmup
        self.throughput = Throughput(window_size=steps + 1)
        self._seen = 0
        self._samples = 0
        self._origin = 0.0

    def tick(self, batch_size: int) -> None:
        now = time.perf_counter()
        self._seen += 1
        if self._seen < self.warmup:
            return
        if self._seen == self.warmup:
            self._origin = now
        else:
            self._samples += batch_size
        self.throughput.update(
            time=now - self._origin, batches=self._seen - self.warmup, samples=self._samples
        )

    def samples_per_s(self) -> float:
        figures = self.throughput.compute()
        if "device/samples_per_sec" not in figures:
            raise RuntimeError(f"the step clock saw {self._seen} steps, fewer than warm-up + measured")
        return float(figures["device/samples_per_sec"])


def peak_rss_mb() -> float:
    """This process's peak resident memory, MiB: VmHWM on Linux (``ru_maxrss`` survives exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def machine() -> dict[str, Any]:
    """What the figures were measured on, including how busy the machine was."""
    cpu = detect_cpu()
    return {
        "cpu": cpu.model or platform.processor() or platform.machine(),
        "native_bf16": cpu.native_bf16,
        "cpu_detected": cpu.describe(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_1min": load_average(),
    }
