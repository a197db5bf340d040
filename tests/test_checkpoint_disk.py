"""What a finished run keeps on disk: one weights-only checkpoint that still reproduces its test.

Predicting from that checkpoint is covered by tests/test_predict.py and tests/test_after_run.py,
resuming an interrupted run (which keeps its last.ckpt) by tests/test_resume.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dicebert.checkpointing import drop_resume_point
from dicebert.train import train


def test_drop_resume_point_removes_last_ckpt_only_from_a_finished_run(tmp_path: Path) -> None:
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    last.write_bytes(b"x" * 100)
    assert drop_resume_point(tmp_path) == 0 and last.is_file()  # running or interrupted: resume needs it
    (tmp_path / "metrics.json").write_text("{}")
    assert drop_resume_point(tmp_path, keep=True) == 0 and last.is_file()  # keep_last_ckpt=true
    assert drop_resume_point(tmp_path) == 100 and not last.exists()
    assert drop_resume_point(tmp_path) == 0  # nothing left to drop


def test_the_one_checkpoint_left_reproduces_the_test_metrics(make_cfg, tmp_path: Path) -> None:
    record = train(make_cfg("trainer.max_epochs=2"))
    (best,) = (tmp_path / "run" / "checkpoints").iterdir()
    state = torch.load(best, map_location="cpu", weights_only=True)
    assert best.name.startswith("best-") and not {"optimizer_states", "callbacks"} & set(state)
    assert (tmp_path / "run" / "metrics.json").is_file()

    # A test-only run from it (ckpt_path=..., train=false) passes check_compatible and scores the same.
    again = train(make_cfg("train=false", f"ckpt_path={best}", output_dir=tmp_path / "again"))
    tested = [k for k in record if k.startswith("test/")]
    assert tested and all(again[k] == pytest.approx(record[k], abs=1e-6) for k in tested)
