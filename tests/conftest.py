"""Shared fixtures: composed configs on real (small) data, with a tiny random BERT."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from tests.helpers.runs import compose_run

REPO_ROOT = Path(__file__).resolve().parents[1]

#: The one tiny-run config (conf/debug/fast.yaml): tiny random BERT, 12 BBC articles per class,
#: one epoch, CSV logger. Subprocess tests pass the same override on their command line.
FAST = ["debug=fast"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Token caches go to a per-session temp folder, and nothing may reach a network."""
    monkeypatch.setenv("DICEBERT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")


@pytest.fixture(scope="session")
def compose_fast() -> Callable[..., DictConfig]:
    """``compose_run`` with ``debug=fast`` first: for fixtures wider than one test."""
    return lambda output_dir, *overrides: compose_run([*FAST, *overrides], output_dir)


@pytest.fixture
def make_cfg(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """Compose with overrides (``debug=fast`` first unless ``fast=False``) into tmp_path/run."""

    def make(*overrides: str, fast: bool = True, output_dir: Path | None = None) -> DictConfig:
        return compose_run([*(FAST if fast else []), *overrides], output_dir or tmp_path / "run")

    yield make
    GlobalHydra.instance().clear()
