"""Run ``python train.py <args>`` as a user would: a subprocess from the repository root, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_train(
    args: list[str], tmp: Path, env: dict[str, str] | None = None, timeout: int = 400
) -> subprocess.CompletedProcess[str]:
    """Token cache and default log folder under ``tmp``; W&B offline; no hub; no inherited sweep group."""
    full_env = {
        **os.environ,
        "DICEBERT_CACHE": str(tmp / "cache"),
        "WANDB_MODE": "offline",
        "HF_HUB_OFFLINE": "1",
        "DICEBERT_ROOT": str(tmp),  # logs/ of a run without hydra.*.dir go here, not into the repo
        **(env or {}),
    }
    full_env.pop("DICEBERT_SWEEP_GROUP", None)
    return subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
