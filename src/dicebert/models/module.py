"""The LightningModule: classifier + pluggable loss + AdamW with linear warm-up/decay + metrics."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn
from transformers import get_linear_schedule_with_warmup

from dicebert.checkpointing import collect_rng_states, restore_rng_states
from dicebert.errors import ConfigError, NonFiniteLossError
from dicebert.losses import ClassificationLoss
from dicebert.metrics import build_confusion_matrix, build_metrics

NONFINITE = ("raise", "skip")


def check_logit_scale(loss: ClassificationLoss, net: nn.Module) -> None:
    """A loss that states the scale of its logits (LDAM's s) must get logits at that scale.

    LDAM subtracts ``s·Δ`` from logits it assumes are ``s·cos``; on a linear head or a cosine
    head of another scale its margins would mean something else than the paper's, silently.
    """
    wanted = getattr(loss, "logit_scale", None)
    have = float(getattr(net, "logit_scale", 1.0))
    if wanted is not None and not math.isclose(float(wanted), have):
        raise ConfigError(
            f"the loss expects logits at scale {wanted:g} (s·cos) but the model's head gives scale "
            f"{have:g}; use model.net.head=cosine model.net.cosine_scale={wanted:g}, "
            f"or set loss.scale={have:g}"
        )


class ClassifierModule(L.LightningModule):
    """Trains ``net`` with ``loss``; evaluates with torchmetrics named by ``class_names``.

    ``net`` and ``optimizer`` are factories (Hydra ``_partial_``) because the number of classes
    and the parameters are only known here. ``on_nonfinite_loss``: ``raise`` stops the run naming
    the step; ``skip`` drops that batch's update (single-process only: under DDP a rank that skips
    would leave the others waiting in all-reduce). ``head_lr_multiplier``: the classification
    head's learning rate as a multiple of the encoder's (1: one learning rate).
    """

    def __init__(
        self,
        net: Callable[..., nn.Module],
        loss: ClassificationLoss,
        class_names: Sequence[str],
        optimizer: Callable[..., torch.optim.Optimizer],
        warmup_ratio: float = 0.1,
        weight_decay: float = 0.01,
        on_nonfinite_loss: str = "raise",
        head_lr_multiplier: float = 1.0,
    ) -> None:
        super().__init__()
        if on_nonfinite_loss not in NONFINITE:
            raise ConfigError(
                f"model.on_nonfinite_loss={on_nonfinite_loss!r} is not one of {', '.join(NONFINITE)}"
            )
        if head_lr_multiplier <= 0:
            raise ConfigError(f"model.head_lr_multiplier must be > 0; got {head_lr_multiplier}")
        # Plain strings before saving: Hydra passes ListConfig, which weights_only loading refuses.
        class_names = [str(n) for n in class_names]
        self.save_hyperparameters(ignore=["net", "loss", "optimizer"])
        self.class_names = class_names
        self.net = net(num_classes=len(self.class_names))
        check_logit_scale(loss, self.net)
        self.loss_fn = loss
        self.optimizer_factory = optimizer
        self.val_metrics = build_metrics(self.class_names, "val/")
        self.test_metrics = build_metrics(self.class_names, "test/")
        self.test_confusion = build_confusion_matrix(len(self.class_names))
        self.skipped_batches = 0

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        return self.net(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch.get("token_type_ids"),
        )

    def probabilities(self, logits: Tensor) -> Tensor:
        """The loss's own mapping (softmax; sigmoid for seed_dice): what ECE and AUROC must see."""
        return self.loss_fn.probabilities(logits.float())

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Tell the loss how far training is (deferred re-weighting switches on from there)."""
        total = self.trainer.estimated_stepping_batches
        fraction = self.global_step / total if math.isfinite(total) and total > 0 else None
        self.loss_fn.set_progress(self.current_epoch, fraction)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor | None:
        loss = self.loss_fn(self(batch), batch["labels"])
        if not torch.isfinite(loss):
            if self.hparams["on_nonfinite_loss"] == "raise":
                raise NonFiniteLossError(
                    f"non-finite training loss {loss.item()} at global step {self.global_step} "
                    f"(epoch {self.current_epoch}, batch {batch_idx}); lower model.optimizer.lr, "
                    "check the data, or set model.on_nonfinite_loss=skip"
                )
            self.skipped_batches += 1
            self.log("train/skipped_batches", float(self.skipped_batches))
            return None
        self.log(
            "train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["labels"])
        )
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        logits = self(batch)
        self.log(
            "val/loss", self.loss_fn(logits, batch["labels"]), batch_size=len(batch["labels"]), sync_dist=True
        )
        self.val_metrics.update(self.probabilities(logits), batch["labels"])

    def on_validation_epoch_end(self) -> None:
        metrics = self.val_metrics.compute()
        # torchmetrics already synced these across ranks; sync_dist only keeps Lightning quiet.
        self.log("val/macro_f1", metrics.pop("val/macro_f1"), prog_bar=True, sync_dist=True)
        self.log_dict(metrics, sync_dist=True)
        self.val_metrics.reset()

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Update the test metrics; return the float32 logits so a callback can save them.

        Lightning 2.x keeps no test outputs, so returning them costs nothing unless a callback
        (train.py's logit recorder, for ``logits.npz``) collects them: no second pass over the test set.
        """
        logits = self(batch).float()
        probs = self.probabilities(logits)
        self.test_metrics.update(probs, batch["labels"])
        self.test_confusion.update(probs, batch["labels"])
        return logits.detach()

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute(), sync_dist=True)
        self.test_metrics.reset()

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Raw float32 logits (the scaled ``s·cos`` ones for the cosine head), not probabilities.

        ``trainer.predict`` output feeds the saved validation/test logits that post-hoc logit
        adjustment tunes τ on; probabilities, where wanted, are :meth:`probabilities` of these.
        """
        return self(batch).float()

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        # Standard BERT practice: no weight decay on biases and LayerNorm weights. The freshly
        # initialised head may learn faster than the pretrained encoder (head_lr_multiplier).
        optimizer = self.optimizer_factory(self.param_groups())
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = math.ceil(self.hparams["warmup_ratio"] * total)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def param_groups(self) -> list[dict[str, Any]]:
        """Decay / no-decay groups for the encoder, and the same two for the head at m × lr."""
        head_module = getattr(self.net, "head", None)
        head = {id(p) for p in head_module.parameters()} if isinstance(head_module, nn.Module) else set()
        multiplier = self.hparams["head_lr_multiplier"]
        groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
        for param in self.parameters():
            if param.requires_grad:
                groups.setdefault((id(param) in head and multiplier != 1.0, param.ndim >= 2), []).append(
                    param
                )
        base_lr = getattr(self.optimizer_factory, "keywords", {}).get("lr")
        out = []
        # encoder decay, encoder no-decay, then the head's: the order older checkpoints' optimizers have
        for (is_head, decays), params in sorted(groups.items(), key=lambda kv: (kv[0][0], not kv[0][1])):
            group: dict[str, Any] = {
                "params": params,
                "weight_decay": self.hparams["weight_decay"] if decays else 0.0,
            }
            if is_head:
                if base_lr is None:
                    raise ConfigError(
                        "model.head_lr_multiplier needs the optimizer's lr in the config (model.optimizer.lr)"
                    )
                group["lr"] = base_lr * multiplier
            out.append(group)
        return out

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The label mapping travels with the weights: a checkpoint is usable without the data.
        checkpoint["class_names"] = self.class_names
        # The precision it trained and tests in, so prediction reproduces the test (bf16 is per machine).
        checkpoint["precision"] = str(self.trainer.precision)
        # RNG states too, so a run resumed from an epoch-end checkpoint draws the same dropout
        # masks as the uninterrupted run (the data order is already a function of seed + epoch).
        checkpoint["rng_states"] = collect_rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trainer = self._trainer  # the property raises when no Trainer is attached
        if "rng_states" in checkpoint and trainer is not None and trainer.state.fn == "fit":
            restore_rng_states(checkpoint["rng_states"])
