"""What a sweep meant to run: the job grid of its ``multirun.yaml``, and override and config lookups.

Apart from :mod:`dicebert.sweeps.load` because the sweep callback needs the grid before any job ran.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

log = logging.getLogger(__name__)


def parse_overrides(lines: Iterable[str]) -> dict[str, str]:
    """``["loss=ce", "+x=1"]`` → ``{"loss": "ce", "x": "1"}`` with Hydra's own parser."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([str(line) for line in lines])
    return {o.get_key_element().lstrip("+~"): o.get_value_element_as_str() for o in parsed}


def select(cfg: DictConfig | ListConfig | None, key: str) -> Any:
    """A config value, or None when absent or when it needs Hydra's runtime to resolve."""
    if cfg is None:
        return None
    try:
        return OmegaConf.select(cfg, key, default=None)
    except Exception:  # e.g. ${hydra:...} interpolations outside a Hydra run
        return None


def sweep_arguments(master: DictConfig) -> list[str]:
    """The sweeper's ``params`` then the command line, as the basic sweeper combines them (later wins)."""

    def plain(node: Any) -> Any:
        return OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node

    params = plain(OmegaConf.select(master, "hydra.sweeper.params")) or {}
    task = plain(OmegaConf.select(master, "hydra.overrides.task")) or []
    return [f"{k}={v}" for k, v in params.items()] + [str(x) for x in task]


def grid_jobs(master: DictConfig) -> list[list[str]] | None:
    """The override lists of every job of a basic-sweeper grid (``multirun.yaml``); None otherwise.

    The basic sweeper's expansion through Hydra's public override API: one list per key (a later
    override of a key replaces an earlier one), jobs in ``itertools.product`` order. Hydra's own
    ``BasicSweeper.split_arguments`` does exactly this but lives in ``hydra._internal``.
    """
    sweeper = str(select(master, "hydra.sweeper._target_") or "")
    if not sweeper.endswith("BasicSweeper"):
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        overrides = OverridesParser.create().parse_overrides(sweep_arguments(master))
    except Exception as err:  # an unusual sweep: compare what is there
        log.warning("could not expand the sweep grid (%s); missing jobs are not listed", err)
        return None
    lists: dict[str, list[str]] = {}
    for override in overrides:
        key = override.get_key_element()
        if not override.is_sweep_override():
            lists[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            lists[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:  # the basic sweeper refuses interval sweeps: no such grid ran
            return None
    return [list(job) for job in itertools.product(*lists.values())]


def expected_jobs(sweep_dir: Path) -> list[list[str]] | None:
    """:func:`grid_jobs` of ``<sweep_dir>/multirun.yaml``: job ``i`` here is job ``i`` of the launcher.

    A job that never got a folder (the launcher died, SLURM never started it) is then listed as missing.
    """
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return None
    master = OmegaConf.load(path)
    return grid_jobs(master) if isinstance(master, DictConfig) else None
