"""Hydra at the entry points: where the configs are, up-front override checks, the config tree.

The library (data, models, losses, reporting) never imports this; :mod:`dicebert.train` and the
sweep callback do. Checks use Hydra's own override parser and config loader, so a sweep list or
Optuna's ``choice(...)`` reads exactly as Hydra will read it and groups from plugins count too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, ListConfig, OmegaConf

import dicebert.run_names  # noqa: F401  (registers ${run_method:...}, which logger/wandb.yaml uses)
from dicebert.errors import ConfigError, require_extra

if TYPE_CHECKING:
    from hydra.core.config_loader import ConfigLoader
    from hydra.core.override_parser.types import Override

#: Group choices that need an optional package: (group, choice or "*") → (module, pip extra).
OPTIONAL_GROUPS: dict[tuple[str, str], tuple[str, str]] = {
    ("hydra/launcher", "slurm"): ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    ("hydra/launcher", "submitit_slurm"): ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    ("hydra/launcher", "submitit_local"): ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    ("hydra/sweeper", "optuna"): ("hydra_plugins.hydra_optuna_sweeper", "optuna"),
    ("hparams_search", "*"): ("hydra_plugins.hydra_optuna_sweeper", "optuna"),
}
#: ``_target_`` classes that need an optional package: target → (module, pip extra).
OPTIONAL_TARGETS: dict[str, tuple[str, str]] = {
    "lightning.pytorch.loggers.TensorBoardLogger": ("tensorboard", "tensorboard"),
    "dicebert.data.HFDataset": ("datasets", "hf"),
}


def config_dir() -> str:
    """The Hydra config folder, shipped as the ``dicebert.conf`` package (installed or editable).

    pyproject maps the repository's top-level ``conf/`` to ``dicebert.conf``, so a plain
    ``pip install .`` carries the configs and an editable install reads the checkout's.
    """
    return str(files("dicebert.conf"))


def config_loader() -> ConfigLoader:
    """Hydra's loader over :func:`config_dir` (plugins' ConfigStore groups included)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return GlobalHydra.instance().config_loader()


def parse_overrides(overrides: Sequence[str]) -> list[Override]:
    """Command-line overrides as Hydra parses them; flags (``-m``) are skipped, malformed → []."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_overrides([str(o) for o in overrides if not o.startswith("-")])
    except HydraException:
        return []  # Hydra reports malformed overrides itself, with its own position marker


def override_choices(override: Override) -> list[str] | None:
    """The values a group override selects (every entry of a sweep list); None for ranges."""
    if override.is_sweep_override():
        return list(override.sweep_string_iterator()) if override.is_discrete_sweep() else None
    return [override.get_value_element_as_str()]


def check_group_choices(overrides: Sequence[str], loader: ConfigLoader | None = None) -> None:
    """Refuse ``loss=nope`` (also inside a sweep list) in one line naming the valid choices.

    Hydra's own message spans many lines and, inside a multirun, only comes when that job is
    reached; checking up front fails the whole command before any job starts. Groups that need an
    optional package name its pip extra instead (:class:`~dicebert.errors.MissingExtraError`).
    """
    if any(o.lstrip("+~").startswith("hydra.searchpath") for o in overrides):
        return  # groups may come from other config folders: leave the check to Hydra
    parsed = [o for o in parse_overrides(overrides) if not o.is_delete() and o.package is None]
    if not parsed:
        return
    loader = loader or config_loader()
    from hydra.core.object_type import ObjectType

    for override in parsed:
        group = override.key_or_group.lstrip("+~")
        choices = override_choices(override)
        for choice in choices or []:
            needs = OPTIONAL_GROUPS.get((group, choice)) or OPTIONAL_GROUPS.get((group, "*"))
            if needs is not None:
                require_extra(needs[0], needs[1], f"{group}={choice}")
        options = loader.get_group_options(group, results_filter=ObjectType.CONFIG)
        if not options or choices is None:
            continue  # a value override (data.batch_size=8), or a range sweep
        for choice in choices:
            if choice not in options and choice not in ("", "null") and not choice.startswith("["):
                shown = [o for o in options if not o.startswith("_")]  # _partials are not choices
                raise ConfigError(f"unknown {group} {choice!r}; choose one of: {', '.join(shown)}")


def _targets(node: Any) -> Iterator[str]:
    if isinstance(node, DictConfig):
        for key in node:
            value = node._get_node(key)
            if key == "_target_":
                yield str(node[key])
            elif isinstance(value, DictConfig | ListConfig):
                yield from _targets(value)
    elif isinstance(node, ListConfig):
        for item in node:
            yield from _targets(item)


def check_optional_targets(cfg: DictConfig) -> None:
    """Name the pip extra of a selected class whose optional package is missing (one line)."""
    for target in _targets(cfg):
        if target in OPTIONAL_TARGETS:
            module, extra = OPTIONAL_TARGETS[target]
            require_extra(module, extra, target.rsplit(".", 1)[-1])


def print_config_tree(cfg: DictConfig, save_to: str | os.PathLike[str] | None = None) -> None:
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
        Path(save_to).parent.mkdir(parents=True, exist_ok=True)
        with open(save_to, "w") as handle:
            rich.print(tree, file=handle)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a callbacks/logger group (a dict of ``_target_`` configs)."""
    from hydra.utils import instantiate

    if not group:
        return []
    return [
        instantiate(entry)
        for entry in group.values()
        if isinstance(entry, DictConfig) and "_target_" in entry
    ]


def log_hyperparameters(loggers: list[Any], cfg: DictConfig) -> None:
    """Give every logger the resolved run config (what a dashboard filters and groups runs by)."""
    hparams = {
        str(key): OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value
        for key, value in cfg.items()
        if key != "hydra"  # only in composed test configs (needs Hydra's runtime to resolve)
    }
    for logger in loggers:
        logger.log_hyperparams(hparams)
