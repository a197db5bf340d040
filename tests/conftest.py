"""Shared fixtures: composed configs on real (small) data, with a tiny random BERT."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from dicebert.train import config_dir

REPO_ROOT = Path(__file__).resolve().parents[1]

#: A fast end-to-end run: tiny random BERT, 12 BBC articles per class, one epoch, CSV logger only.
FAST = [
    "model=tiny",
    "logger=csv",
    "data.limit_per_class=12",
    "data.imbalance_ratio=2",
    "data.max_length=32",
    "data.batch_size=8",
    "trainer.max_epochs=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Token caches go to a per-session temp folder, and nothing may reach a network."""
    monkeypatch.setenv("DICEBERT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")


@pytest.fixture
def make_cfg(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """Compose ``train.yaml`` with overrides, as ``python train.py <overrides>`` would, into tmp_path."""

    def make(*overrides: str, fast: bool = True, output_dir: Path | None = None) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose("train", overrides=[*(FAST if fast else []), *overrides], return_hydra_config=True)
        out = output_dir or tmp_path / "run"
        with open_dict(cfg):
            cfg.paths.output_dir = str(out)
            cfg.hydra.runtime.output_dir = str(out)
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield make
    GlobalHydra.instance().clear()
