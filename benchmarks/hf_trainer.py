"""The project against the transformers ``Trainer``: same model, batches, optimizer, steps, precision.

Both sides get the same freshly seeded ClassifierModule weights (built from ``conf/`` by the
product's classes), the same DataLoader (the project's: same tokenization, dynamic padding, data
order and batch size), AdamW with the same learning rate, weight decay groups (none on biases and
LayerNorm) and linear warm-up/decay, gradient clipping at 1.0, and the same number of steps in the
same precision and process. The Trainer is run as a user would run it quietly: no reporting,
saving or progress bar. The sides alternate in rounds, so a neighbour's load falls on both.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import DataLoader

from benchmarks.common import StepClock, build_module, quiet_trainer


class NetWithLoss(nn.Module):
    """The project's network and loss behind the call the Trainer makes: ``model(**batch)``."""

    def __init__(self, net: nn.Module, loss: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.loss = loss

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, labels: Tensor, token_type_ids: Tensor | None = None
    ) -> dict[str, Tensor]:
        logits = self.net(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return {"loss": self.loss(logits, labels), "logits": logits}


class _ClockCallback(L.Callback):
    def __init__(self, clock: StepClock) -> None:
        self.clock = clock

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, outputs: Any, batch: Any, *_: Any) -> None:
        self.clock.tick(len(batch["labels"]))


def run_project(
    cfg: DictConfig, dm: Any, warmup: int, steps: int, precision: str
) -> tuple[dict[str, float], L.LightningModule]:
    """``trainer.fit`` then ``trainer.test`` of the project's module: wall times and samples/s."""
    module = build_module(cfg, dm)
    clock = StepClock(warmup, steps)
    trainer = quiet_trainer(
        max_steps=warmup + steps, max_epochs=-1, precision=precision, callbacks=[_ClockCallback(clock)]
    )
    started = time.perf_counter()
    trainer.fit(module, train_dataloaders=dm.train_dataloader())
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    scores = trainer.test(module, dataloaders=dm.test_dataloader(), verbose=False)[0]
    test_s = time.perf_counter() - started
    return {
        "train_wall_s": fit_s,
        "train_samples_per_s": clock.samples_per_s(),
        "eval_wall_s": test_s,
        "eval_samples_per_s": len(dm.datasets["test"]) / test_s,
        "test_macro_f1": float(scores["test/macro_f1"]),
    }, module


def run_hf_trainer(
    cfg: DictConfig, dm: Any, warmup: int, steps: int, precision: str, work_dir: Path
) -> dict[str, float]:
    """The transformers Trainer on the same module's net and loss: wall times and samples/s."""
    from sklearn.metrics import f1_score
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    module: Any = build_module(cfg, dm)  # same seed: the same initial weights as the project's side
    clock = StepClock(warmup, steps)
    total = warmup + steps
    batch_size = dm.batch_size

    class Clock(TrainerCallback):
        def on_step_end(self, *_: Any, **__: Any) -> None:
            clock.tick(batch_size)

    class SameBatches(Trainer):
        """Iterates the project's loaders, so both sides see the same batches in the same order."""

        def get_train_dataloader(self) -> DataLoader:
            return dm.train_dataloader()

        def get_eval_dataloader(self, eval_dataset: Any = None) -> DataLoader:
            return dm.test_dataloader()

    def macro_f1(prediction: Any) -> dict[str, float]:
        predicted = prediction.predictions.argmax(-1)
        return {"macro_f1": float(f1_score(prediction.label_ids, predicted, average="macro"))}

    args = TrainingArguments(
        output_dir=str(work_dir / "hf-trainer"),
        max_steps=total,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=dm.eval_batch_size,
        learning_rate=float(cfg.model.optimizer.lr),
        weight_decay=float(cfg.model.weight_decay),
        warmup_steps=math.ceil(float(cfg.model.warmup_ratio) * total),  # the module's rounding
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        optim="adamw_torch",  # torch.optim.AdamW, as the project's config: the same implementation
        bf16=precision.startswith("bf16"),
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_pin_memory=False,
        seed=int(cfg.seed),
    )
    trainer = SameBatches(
        model=NetWithLoss(module.net, module.loss_fn),
        args=args,
        train_dataset=dm.datasets["train"],
        eval_dataset=dm.datasets["test"],
        compute_metrics=macro_f1,
        callbacks=[Clock()],
    )
    trainer.remove_callback(PrinterCallback)  # a quiet run, as the project's side
    started = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    scores = trainer.evaluate()
    eval_s = time.perf_counter() - started
    return {
        "train_wall_s": train_s,
        "train_samples_per_s": clock.samples_per_s(),
        "eval_wall_s": eval_s,
        "eval_samples_per_s": len(dm.datasets["test"]) / eval_s,
        "test_macro_f1": float(scores["eval_macro_f1"]),
    }


def compare(
    cfg: DictConfig, dm: Any, warmup: int, steps: int, rounds: int, work_dir: Path, precision: str = "32-true"
) -> dict[str, Any]:
    """Alternate project and Trainer ``rounds`` times; medians per side and the project/Trainer ratios."""
    sides: dict[str, list[dict[str, float]]] = {"project": [], "hf_trainer": []}
    for _ in range(rounds):
        sides["project"].append(run_project(cfg, dm, warmup, steps, precision)[0])
        sides["hf_trainer"].append(run_hf_trainer(cfg, dm, warmup, steps, precision, work_dir))
    out: dict[str, Any] = {
        "steps_measured": steps,
        "warmup_steps": warmup,
        "rounds": rounds,
        "batch_size": dm.batch_size,
        "max_length": dm.max_length,
        "precision": precision,
        "optimizer": "torch.optim.AdamW (both), linear warm-up/decay, clip 1.0",
        "torch_threads": torch.get_num_threads(),
    }
    for side, runs in sides.items():
        out[side] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    project, hf = out["project"], out["hf_trainer"]
    out["trainer_ratio"] = project["train_samples_per_s"] / hf["train_samples_per_s"]
    out["train_wall_ratio"] = hf["train_wall_s"] / project["train_wall_s"]  # > 1: the project is faster
    out["eval_ratio"] = project["eval_samples_per_s"] / hf["eval_samples_per_s"]
    return out
