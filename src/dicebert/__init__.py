"""dicebert: which loss and which sampler for BERT text classification at which imbalance ratio."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from dicebert.api import TextClassifier, load

__all__ = ["TextClassifier", "__version__", "load"]


def __getattr__(name: str) -> Any:
    # Lazy: `import dicebert` (and every submodule import) stays free of torch until load() is used.
    if name in ("load", "TextClassifier"):
        from dicebert import api

        return getattr(api, name)
    raise AttributeError(f"module 'dicebert' has no attribute {name!r}")
