"""Checkpoints that survive a hard kill, refuse to load into the wrong model or label set, and
shrink to the one a finished run is tested with (:func:`drop_resume_point`).

Lightning's own save goes through an fsspec transaction whose temp file lives in the system temp
folder; when that is another filesystem, the final move is a copy, and a kill mid-copy leaves a
truncated ``last.ckpt``. Here the temp file sits beside the target and ``os.replace`` swaps it in.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from dicebert.atomic import atomic_path
from dicebert.errors import CheckpointMismatchError


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temp file in the same folder, fsync, then atomically rename (:func:`atomic_path`)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())


def drop_resume_point(run_dir: str | os.PathLike[str], keep: bool = False) -> int:
    """Remove a finished run's ``checkpoints/last.ckpt``; return the bytes freed (0 when kept).

    The resume point carries the optimizer state (AdamW: two moments per weight, so about three times
    the weights) and is read only to continue an unfinished run; a run with ``metrics.json`` (written
    last) is skipped on resume. The best checkpoint, weights only, still reproduces the test metrics
    and predictions. A run without ``metrics.json`` (running, interrupted, failed) keeps it, as does
    ``keep=True`` (``keep_last_ckpt=true``: to train a finished run further with ``ckpt_path=last``).
    """
    last = Path(run_dir) / "checkpoints" / "last.ckpt"
    if keep or not (Path(run_dir) / "metrics.json").is_file() or not last.is_file():
        return 0
    size = last.stat().st_size
    last.unlink()
    return size


def collect_rng_states() -> dict[str, Any]:
    """Every RNG a training step draws from, in a form ``torch.load(weights_only=True)`` accepts."""
    np_state: tuple[Any, ...] = np.random.get_state(legacy=True)  # type: ignore[assignment]
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def check_compatible(
    path: str | os.PathLike[str], class_names: Sequence[str], model: torch.nn.Module
) -> None:
    """Refuse, in one line, a checkpoint trained on other classes or with another architecture."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointMismatchError(f"cannot read checkpoint {path}: {str(err).splitlines()[0]}") from None
    saved = checkpoint.get("class_names")
    if saved is not None and list(saved) != list(class_names):
        raise CheckpointMismatchError(
            f"checkpoint {path} was trained on classes {list(saved)}, but the data has {list(class_names)}; "
            "use the same data/label set or start without ckpt_path"
        )
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in checkpoint.get("state_dict", {}).items()}
    if expected != found:
        differing = sorted(set(expected) ^ set(found)) or sorted(
            k for k in expected if expected[k] != found[k]
        )
        raise CheckpointMismatchError(
            f"checkpoint {path} is from a different model ({len(differing)} mismatched tensors, e.g. "
            f"{differing[0]}); use the model config it was trained with"
        )


def resolve_ckpt_path(cfg: Any) -> str | None:
    """``ckpt_path=last`` → ``<resume_dir or this run folder>/checkpoints/last.ckpt``; a path must exist."""
    ckpt = cfg.get("ckpt_path")
    if ckpt != "last":
        if ckpt is not None and not Path(ckpt).is_file():
            raise CheckpointMismatchError(
                f"ckpt_path={ckpt} does not exist; pass a .ckpt file or ckpt_path=last"
            )
        return ckpt
    run_dir = Path(cfg.get("resume_dir") or cfg.paths.output_dir)
    path = run_dir / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise CheckpointMismatchError(
            f"ckpt_path=last: no checkpoints/last.ckpt in {run_dir}; "
            "point resume_dir (or hydra.run.dir) at the run folder"
        )
    return str(path)


def best_checkpoint(trainer: Any) -> tuple[str | None, float | None]:
    """Path and score of the best checkpoint so far (None, None without one to test).

    The best-so-far callback is the one with a monitor; the resume point (last.ckpt) has none.
    """
    monitored = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint) and c.monitor]
    if not monitored:
        return None, None
    score = monitored[0].best_model_score
    return monitored[0].best_model_path or None, None if score is None else float(score)
