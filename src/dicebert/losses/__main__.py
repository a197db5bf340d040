"""``python -m dicebert.losses``: every registered loss with its options and their defaults.

The defaults live in the constructors only (conf/loss/*.yaml reads them), so this listing is
where to look them up.
"""

from __future__ import annotations

from dicebert.losses import ALIASES, LOSSES, loss_defaults


def describe() -> str:
    """One line per loss: ``name  option=default, ...`` (aliases say what they stand for)."""
    width = max(map(len, LOSSES))
    lines = []
    for name in sorted(LOSSES):
        options = ", ".join(f"{k}={v!r}" for k, v in loss_defaults(name).items()) or "(no options)"
        if name in ALIASES:
            target, fixed = ALIASES[name]
            options = f"alias of {target} with " + ", ".join(f"{k}={v!r}" for k, v in fixed.items())
        lines.append(f"{name:<{width}}  {options}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe())
