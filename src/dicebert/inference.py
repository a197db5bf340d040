"""Everything a finished run needs to predict, read back from its folder: one loader for all tools.

``predict``, the Python API (:func:`dicebert.load`) and the export all start here, so they agree on
which checkpoint a run folder means, the token length it trained with (``data.max_length=auto``
is resolved in ``data_summary.json``), and the probability function its loss was trained through
(softmax, or sigmoid for ``seed_dice``). Checkpoints may be full (``last.ckpt``) or weights-only
(``best-*.ckpt``): only ``state_dict``, ``class_names`` and ``precision`` are read.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from dicebert.errors import PredictError

PathLike = str | os.PathLike[str]


@dataclasses.dataclass
class LoadedRun:
    """A trained network (eval mode, CPU) with what the run used around it."""

    net: torch.nn.Module
    class_names: list[str]
    cfg: DictConfig
    run_dir: Path
    checkpoint: Path
    max_length: int
    tokenizer: str  # the run's tokenizer spec (hub id, folder, or packaged:<module>)
    probability: str  # "softmax" | "sigmoid": what the loss trained and the run's metrics scored
    precision: str  # the precision the run tested in

    @property
    def loss_name(self) -> str:
        return str(self.cfg.loss.get("name", "?"))


def locate(path: PathLike, run_dir: PathLike | None = None) -> tuple[Path, Path]:
    """``(checkpoint, run folder)`` from a run folder or a ``.ckpt`` file.

    A folder means its best checkpoint (``checkpoints/best-*.ckpt``, the one the run tested),
    else ``checkpoints/last.ckpt``. A file's run folder is the one above ``checkpoints/``.
    """
    given = Path(path)
    if given.is_dir():
        folder = given
        best = sorted((folder / "checkpoints").glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
        last = folder / "checkpoints" / "last.ckpt"
        if best:
            ckpt = best[-1]
        elif last.is_file():
            ckpt = last
        else:
            raise PredictError(
                f"no checkpoints/best-*.ckpt or last.ckpt in {folder}; pass a fine-tuned run folder "
                "(baselines such as model=tfidf_lr keep no checkpoint) or a .ckpt file"
            )
    elif given.is_file():
        ckpt = given
        folder = given.resolve().parent.parent
    else:
        raise PredictError(f"{path} does not exist; pass a run folder or <run>/checkpoints/best-*.ckpt")
    if run_dir is not None:
        folder = Path(run_dir)
    return ckpt, folder


def run_config(folder: Path) -> DictConfig:
    """The run's composed config (``.hydra/config.yaml``), with its resolvers registered."""
    import dicebert.losses  # noqa: F401  (registers ${loss_default:...}, which loss configs use)

    config_file = folder / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise PredictError(
            f"no .hydra/config.yaml in {folder}; pass the run folder the checkpoint came from (run_dir)"
        )
    cfg = OmegaConf.load(config_file)
    if not isinstance(cfg, DictConfig):
        raise PredictError(f"{config_file} is not a run config (a mapping); pass the run folder")
    return cfg


def run_max_length(cfg: DictConfig, folder: Path) -> int:
    """The token length the run trained with: the config's integer, or what ``auto`` resolved to."""
    value = cfg.data.get("max_length")
    if isinstance(value, int):
        return value
    summary = folder / "data_summary.json"
    try:
        return int(json.loads(summary.read_text())["max_length"]["value"])
    except (OSError, ValueError, KeyError, TypeError):
        raise PredictError(
            f"data.max_length={value} and {summary} does not say what it resolved to; "
            "pass max_length=<tokens> (the run log's 'data.max_length=auto: N tokens')"
        ) from None


def probability_function(loss_name: str) -> str:
    """``softmax`` or ``sigmoid``: the mapping the run's loss trained (its test metrics used it)."""
    from dicebert.losses import LOSSES

    cls = LOSSES.get(loss_name)
    if cls is None:
        return "softmax"
    probe = torch.tensor([[0.0, 1.0, -2.0]])
    probs = cls.probabilities(probe)
    if torch.allclose(probs, torch.sigmoid(probe)):
        return "sigmoid"
    if torch.allclose(probs, torch.softmax(probe, -1)):
        return "softmax"
    raise PredictError(f"loss {loss_name!r} maps logits neither by softmax nor sigmoid; cannot predict")


def apply_probability(logits: torch.Tensor, name: str) -> torch.Tensor:
    return torch.sigmoid(logits) if name == "sigmoid" else torch.softmax(logits, dim=-1)


def read_checkpoint(ckpt: Path) -> dict[str, Any]:
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated copy, not a torch file, unsafe pickle
        raise PredictError(
            f"cannot read {ckpt}: {str(err).splitlines()[0]}; pass a training checkpoint"
        ) from None
    if not isinstance(state, dict) or "class_names" not in state or "state_dict" not in state:
        raise PredictError(f"{ckpt} is not a dicebert training checkpoint (no class_names/state_dict)")
    return state


def load_run(path: PathLike, run_dir: PathLike | None = None, max_length: int | None = None) -> LoadedRun:
    """Rebuild the run's network from its config and load the checkpoint's weights into it."""
    from hydra.utils import instantiate

    ckpt, folder = locate(path, run_dir)
    cfg = run_config(folder)
    state = read_checkpoint(ckpt)
    class_names = [str(c) for c in state["class_names"]]
    precision = str(state.get("precision", "32-true"))
    with open_dict(cfg):
        cfg.paths.output_dir = str(folder)  # was ${hydra:runtime.output_dir}: no Hydra run here
        cfg.trainer.precision = precision  # trainer=default resolves per machine; the run's is saved
        cfg.model.net.encoder.pretrained = False  # the checkpoint's weights replace any download
    if "net" not in cfg.model:
        raise PredictError(f"{folder} is a baseline run (model has no net); predict needs a fine-tuned run")
    net = instantiate(cfg.model.net)(num_classes=len(class_names))
    weights = {k[len("net.") :]: v for k, v in state["state_dict"].items() if k.startswith("net.")}
    try:
        net.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise PredictError(
            f"{ckpt} does not fit the model in {folder / '.hydra' / 'config.yaml'} "
            f"({str(err).splitlines()[0]}); pass the run folder it was trained in"
        ) from None
    return LoadedRun(
        net=net.eval(),
        class_names=class_names,
        cfg=cfg,
        run_dir=folder,
        checkpoint=ckpt,
        max_length=max_length or run_max_length(cfg, folder),
        tokenizer=str(cfg.data.tokenizer),
        probability=probability_function(str(cfg.loss.get("name", ""))),
        precision=precision,
    )
