"""Dashboard names: a sweep over recipes or samplers reads as recipes or samplers, not as the loss."""

from __future__ import annotations

from omegaconf import OmegaConf


def wandb_settings(make_cfg, *overrides: str) -> dict:
    cfg = make_cfg("logger=wandb", *overrides, fast=False)
    return OmegaConf.to_container(cfg.logger.wandb, resolve=True)


def test_a_recipe_names_the_run(make_cfg) -> None:
    settings = wandb_settings(make_cfg, "recipe=dice_mask_ema", "seed=3")
    assert settings["name"] == "dice_mask_ema-rho10-seed3"
    assert settings["job_type"] == "dice_mask_ema"
    assert settings["tags"] == ["dice_mask_ema", "dice", "rho=10", "seed=3"]
    other = wandb_settings(make_cfg, "recipe=dice_prior", "seed=3")
    assert other["name"] != settings["name"]  # both train loss=dice


def test_without_a_recipe_the_loss_and_sampler_name_the_run(make_cfg) -> None:
    plain = wandb_settings(make_cfg, "loss=ce")
    assert plain["name"] == "ce-rho10-seed0" and plain["job_type"] == "ce"
    assert plain["tags"] == ["ce", "rho=10", "seed=0"]  # the loss is a tag already
    sampled = wandb_settings(make_cfg, "loss=ce", "data.sampler=inverse", "data.cover_classes=true")
    assert sampled["name"] == "ce+sampler-inverse+cover-rho10-seed0"
    assert sampled["job_type"] == "ce+sampler-inverse+cover"
