"""The loss registry: name → class, aliases, the one ``build_loss``, and the config defaults resolver.

Its own module so that the loss files, :mod:`dicebert.losses.equivalence` and the package's
``__init__`` (which discovers the loss files) all import it without importing one another.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from omegaconf import OmegaConf

from dicebert.errors import ConfigError
from dicebert.losses.base import ClassificationLoss

LOSSES: dict[str, type[ClassificationLoss]] = {}


def register(name: str) -> Callable[[type[ClassificationLoss]], type[ClassificationLoss]]:
    """Class decorator adding a loss to :data:`LOSSES` under ``name``."""

    def add(cls: type[ClassificationLoss]) -> type[ClassificationLoss]:
        if name in LOSSES and LOSSES[name] is not cls:
            raise ConfigError(
                f"loss name {name!r} is registered twice ({LOSSES[name].__name__}, {cls.__name__})"
            )
        LOSSES[name] = cls
        return cls

    return add


#: ``alias → (loss it is, options it fixes)``: one method under its paper's name, not a new loss.
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {}


def register_alias(alias: str, name: str, **fixed: Any) -> None:
    """Make ``alias`` build ``name`` with ``fixed`` options (e.g. balanced_softmax = logit_adjusted, τ=1)."""
    if alias in LOSSES and alias not in ALIASES:
        raise ValueError(f"loss name {alias!r} is already a loss of its own ({LOSSES[alias].__name__})")
    LOSSES[alias] = LOSSES[name]
    ALIASES[alias] = (name, dict(fixed))


def canonical_name(name: str) -> str:
    """The loss an alias stands for (``balanced_softmax`` → ``logit_adjusted``); other names unchanged."""
    return ALIASES[name][0] if name in ALIASES else name


def build_loss(name: str, class_counts: Sequence[int] | None = None, **options: Any) -> ClassificationLoss:
    """Build the registered loss ``name``; priors come from ``class_counts``, never from config."""
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; registered losses: {', '.join(sorted(LOSSES))}")
    cls = LOSSES[name]
    if name in ALIASES:
        target, fixed = ALIASES[name]
        clash = sorted(k for k in options if k in fixed and options[k] != fixed[k])
        if clash:
            raise ConfigError(
                f"loss {name!r} is {target!r} with {', '.join(f'{k}={fixed[k]}' for k in clash)} fixed; "
                f"use loss={target} to set {', '.join(clash)}"
            )
        options = {**options, **fixed}
    try:
        return cls(class_counts=class_counts, **options)
    except TypeError as err:  # unknown option: say which options exist instead of a bare TypeError
        raise ConfigError(f"bad options for loss {name!r}: {err}") from None


def loss_defaults(name: str) -> dict[str, Any]:
    """The options of loss ``name`` with their defaults: the constructor's signature, the one source.

    An alias's fixed options are not options. ``conf/loss/*.yaml`` lists the option names only,
    each as ``${loss_default:<option>}``, so ``loss.<option>=...`` overrides work from the command
    line while the values live here.
    """
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; registered losses: {', '.join(sorted(LOSSES))}")
    fixed = ALIASES[name][1] if name in ALIASES else {}
    params = inspect.signature(LOSSES[name].__init__).parameters
    return {
        key: param.default
        for key, param in params.items()
        if key not in ("self", "class_counts", *fixed) and param.default is not inspect.Parameter.empty
    }


def _yaml_default(option: str, *, _parent_: Any) -> Any:
    """OmegaConf resolver ``${loss_default:<option>}``: that option's default for the node's loss."""
    name = _parent_.get("name")
    defaults = loss_defaults(str(name))
    if option not in defaults:
        raise ConfigError(f"loss {name!r} has no option {option!r}; its options: {', '.join(defaults)}")
    value = defaults[option]
    return list(value) if isinstance(value, tuple) else value


if not OmegaConf.has_resolver("loss_default"):
    OmegaConf.register_new_resolver("loss_default", _yaml_default)
