"""Loss registry.

A new loss joins with one file in this package (a :class:`ClassificationLoss` subclass decorated
with ``@register("name")``) and one YAML in ``conf/loss/``; modules here are discovered on import,
so no list has to be edited.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from typing import Any

from dicebert.losses.base import ClassificationLoss, check_inputs

LOSSES: dict[str, type[ClassificationLoss]] = {}


def register(name: str) -> Callable[[type[ClassificationLoss]], type[ClassificationLoss]]:
    """Class decorator adding a loss to :data:`LOSSES` under ``name``."""

    def add(cls: type[ClassificationLoss]) -> type[ClassificationLoss]:
        if name in LOSSES and LOSSES[name] is not cls:
            raise ValueError(
                f"loss name {name!r} is registered twice ({LOSSES[name].__name__}, {cls.__name__})"
            )
        LOSSES[name] = cls
        return cls

    return add


def build_loss(name: str, class_counts: Sequence[int] | None = None, **options: Any) -> ClassificationLoss:
    """Build the registered loss ``name``; priors come from ``class_counts``, never from config."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; registered losses: {', '.join(sorted(LOSSES))}")
    cls = LOSSES[name]
    try:
        return cls(class_counts=class_counts, **options)
    except TypeError as err:  # unknown option: say which options exist instead of a bare TypeError
        raise ValueError(f"bad options for loss {name!r}: {err}") from None


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


_discover()

__all__ = ["LOSSES", "ClassificationLoss", "build_loss", "check_inputs", "register"]
