"""The long-tail recipe grid composes, and each recipe is the method it names."""

from __future__ import annotations

from pathlib import Path

import pytest

import dicebert.losses  # noqa: F401  (registers ${loss_default:...}, which the loss configs use)
from dicebert.config import config_dir

RECIPES = sorted(p.stem for p in (Path(config_dir()) / "recipe").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_recipe_composes_to_the_method_it_names(make_cfg, recipe: str) -> None:
    cfg = make_cfg(f"recipe={recipe}")
    assert cfg.loss.name == recipe.split("_sampler")[0].split("_drw")[0].replace("_mask_ema", "").replace(
        "_prior", ""
    ).replace("_cover", "")
    assert (cfg.data.sampler == "inverse") == recipe.endswith("_sampler")
    assert (cfg.loss.get("drw_start") is not None) == recipe.endswith("_drw")
    assert cfg.data.cover_classes == recipe.endswith("_cover")
    if recipe == "ldam_drw":
        assert cfg.model.net.head == "cosine"


def test_the_recipe_grid_is_rho_100_and_10_with_five_rotated_seeds(make_cfg) -> None:
    cfg = make_cfg("experiment=recipes_rho100", fast=False)
    params = cfg.hydra.sweeper.params
    assert set(str(params.recipe).split(",")) == set(RECIPES) and len(RECIPES) == 12
    assert str(params["data.imbalance_ratio"]) == "100,10" and str(params.seed) == "0,1,2,3,4"
    assert cfg.data.class_order == "rotate"
    assert cfg.callbacks.crt._target_ == "dicebert.crt.ClassifierRetraining"  # cRT beside every recipe
