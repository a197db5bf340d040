"""Test runs composed as ``python train.py`` would compose them, saved as Hydra saves them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from dicebert.config import config_dir
from dicebert.data.sources import BBCNews


def user_csv(path: Path, per_class: int = 20) -> Path:
    """A small labelled CSV in the layout a user brings (text, label), here BBC headlines."""
    frame = BBCNews(text_field="title").load().train
    frame = frame.groupby("label", group_keys=False).head(per_class).sample(frac=1.0, random_state=0)
    frame.to_csv(path, index=False)
    return path


def compose_run(overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose ``train.yaml`` like ``python train.py <overrides>`` would, writing into output_dir."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


def train_saved_run(overrides: list[str], out: Path) -> Path:
    """Compose, save ``.hydra/config.yaml`` and ``overrides.yaml`` as Hydra does, train; the run folder."""
    from dicebert.train import train

    cfg = compose_run(overrides, out)
    (out / ".hydra").mkdir(parents=True)
    OmegaConf.save({k: v for k, v in cfg.items() if k != "hydra"}, out / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(overrides), out / ".hydra" / "overrides.yaml")
    train(cfg)
    GlobalHydra.instance().clear()
    return out


def files_run(out: Path, csv: Path, *overrides: str) -> Path:
    """Train ``model=tiny`` on ``csv`` (``data=files``, max_length auto); write ``out`` as Hydra would."""
    run_overrides = [
        "data=files",
        f"data.source.train_path={csv}",
        "model=tiny",
        "logger=csv",
        "trainer.max_steps=12",
        "trainer.val_check_interval=4",
        "trainer.enable_progress_bar=false",
        *overrides,
    ]
    return train_saved_run(run_overrides, out)


def split_texts(run: Path, split: str = "test") -> pd.DataFrame:
    """The run's split rebuilt from its config (what predict's ``test`` input reads)."""
    from dicebert.inference import load_run
    from dicebert.predict import read_input

    frame, _ = read_input(split, load_run(run).cfg, "text")
    return frame
