"""One hierarchy of user-facing errors: the entry points catch :class:`DicebertError` and nothing else.

Every subclass is raised for something the user can fix (a config value, a data file, a
checkpoint, a missing optional package), with a one-line message naming the problem and the fix.
Anything else (a bug) keeps its traceback. The value errors also subclass :class:`ValueError` and
the non-finite ones :class:`FloatingPointError`, so library callers that caught those still do.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class DicebertError(Exception):
    """Base of every error the command-line tools report as one line instead of a traceback."""


class ConfigError(DicebertError, ValueError):
    """A config option has a value the code cannot use (unknown choice, out of range)."""


class DataError(DicebertError, ValueError):
    """Bad input data: the message names the problem and the fix, in one line."""


class ModelLoadError(DicebertError, ValueError):
    """A model or tokenizer could not be loaded; the message says from where and what to do."""


class CheckpointMismatchError(DicebertError, ValueError):
    """A checkpoint from another label set or model architecture, or one that cannot be read."""


class NonFiniteLossError(DicebertError, FloatingPointError):
    """The training loss became NaN/inf: stopping beats reporting a silently broken model."""


class NonFiniteMetricsError(DicebertError, FloatingPointError):
    """A run's final metrics are NaN/inf: they are refused instead of being written as a result."""


class SweepError(DicebertError, ValueError):
    """A folder that is not a sweep, or an option that does not fit it; the message says what to pass."""


class ResumeError(SweepError):
    """A sweep that cannot be resumed as asked; the message names the fix."""


class PredictError(DicebertError, ValueError):
    """Bad prediction options or inputs; the message names the problem and the fix in one line."""


class ExportError(DicebertError, ValueError):
    """A run the export cannot write (architecture, target folder); the message says what to pass."""


class MissingExtraError(DicebertError, ImportError):
    """An optional feature whose package is not installed; the message names the pip extra."""


def require_extra(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or raise :class:`MissingExtraError` naming ``dicebert[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(
            f"{feature} needs {module}, which is not installed: "
            f"pip install 'dicebert[{extra}]' (or '.[{extra}]' in a checkout)"
        ) from None


def find_user_error(err: BaseException) -> DicebertError | None:
    """The first :class:`DicebertError` in the chain (Hydra wraps target errors in InstantiationException)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, DicebertError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def one_line(err: BaseException) -> str:
    """``Type: message`` with the message's lines joined by ``; `` (entry points print this)."""
    detail = "; ".join(line.strip() for line in str(err).strip().splitlines() if line.strip())
    return f"{type(err).__name__}: {detail}"
