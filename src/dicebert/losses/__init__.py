"""Losses: one file per family, registered by name (:mod:`dicebert.losses.registry`).

A new loss joins with one file in this package (a :class:`ClassificationLoss` subclass decorated
with ``@register("name")``) and one YAML in ``conf/loss/`` naming its options (their defaults stay
in the constructor: ``${loss_default:<option>}``); modules here are discovered on import, so no
list has to be edited.
"""

from __future__ import annotations

import importlib
import pkgutil

from dicebert.losses.base import ClassificationLoss, check_inputs
from dicebert.losses.equivalence import canonical, equivalent, weight_deviation
from dicebert.losses.registry import (
    ALIASES,
    LOSSES,
    build_loss,
    canonical_name,
    loss_defaults,
    register,
    register_alias,
)


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name not in ("base", "equivalence", "registry", "__main__"):
            importlib.import_module(f"{__name__}.{info.name}")


_discover()

__all__ = [
    "ALIASES",
    "LOSSES",
    "ClassificationLoss",
    "build_loss",
    "canonical",
    "canonical_name",
    "check_inputs",
    "equivalent",
    "loss_defaults",
    "register",
    "register_alias",
    "weight_deviation",
]
