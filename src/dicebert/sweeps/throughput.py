"""Sweep throughput: finished runs per hour of wall time, the figure that sizes a grid.

Per sweep folder the wall time runs from the first job's start (Hydra writes ``.hydra/config.yaml``
when a job begins) to the last ``metrics.json``; folders run one after another add up. Jobs a
resumed sweep skipped (``job_action.json``: ``skipped``) did no work and are not counted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _skipped(job: Path) -> bool:
    action = job / "job_action.json"
    return action.is_file() and json.loads(action.read_text()).get("action") == "skipped"


def sweep_throughput(folders: Iterable[str | os.PathLike[str]]) -> dict[str, Any] | None:
    """``{"runs", "wall_s", "runs_per_hour", "folders"}`` over the finished jobs; None if none finished."""
    runs, wall, used = 0, 0.0, 0
    for folder in map(Path, folders):
        jobs = [j for j in folder.iterdir() if (j / ".hydra" / "config.yaml").is_file() and not _skipped(j)]
        ends = [(j / "metrics.json").stat().st_mtime for j in jobs if (j / "metrics.json").is_file()]
        if not ends:
            continue
        starts = [(j / ".hydra" / "config.yaml").stat().st_mtime for j in jobs]
        runs, wall, used = runs + len(ends), wall + max(ends) - min(starts), used + 1
    if runs == 0 or wall <= 0:
        return None
    return {"runs": runs, "wall_s": round(wall, 1), "runs_per_hour": runs * 3600 / wall, "folders": used}
