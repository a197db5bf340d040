"""What a run is called on dashboards: the method, i.e. what distinguishes the runs of a sweep.

``${run_method:${loss.name},${data.sampler},${data.cover_classes}}`` (conf/logger/wandb.yaml) is
the recipe when one was chosen (``recipe=dice_mask_ema``: a loss plus its sampler, head or
schedule), else the loss with the sampler and class covering when they are on
(``ce+sampler-inverse``). Named by the loss alone, the five Dice recipes of a sweep all read
``dice`` and the four samplers of a sampler sweep share one name. Registered when
:mod:`dicebert.config` is imported (by the training entry point).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import OmegaConf


def chosen_recipe() -> str | None:
    """The ``recipe`` group choice of the Hydra job being composed (None outside Hydra or without one)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    choice = HydraConfig.get().runtime.choices.get("recipe")
    return str(choice) if choice else None


def run_method(loss_name: str, sampler: str = "none", cover_classes: bool = False) -> str:
    """The recipe's name, else ``<loss>[+sampler-<name>][+cover]``."""
    recipe = chosen_recipe()
    if recipe:
        return recipe
    parts = [str(loss_name)]
    if sampler and str(sampler) != "none":
        parts.append(f"sampler-{sampler}")
    if cover_classes:
        parts.append("cover")
    return "+".join(parts)


def method_tags(tags: Sequence[Any], method: str) -> list[str]:
    """The run's tags with its method added (once), so a dashboard filters a sweep by method."""
    out = [str(t) for t in tags]
    return out if method in out else [method, *out]


def register() -> None:
    for name, function in (("run_method", run_method), ("method_tags", method_tags)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


register()
