"""Atomic file writes: every result, cache and checkpoint file appears whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``target``; rename it onto ``target`` if the block succeeds.

    The temp file keeps the target's suffix (writers that infer a format from it still work) and
    sits in the same folder, so the rename is atomic; after a failure it is removed. Readers, a
    sweep report or a concurrent job, never see a half-written file.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
