"""The CPU benchmark's in-process sections (padding, precision); each returns plain numbers for the JSON.

A section that this CPU cannot run fast returns ``{"skipped": "<reason>"}`` instead of figures.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

from benchmarks.common import StepClock, build, build_module, compose_config, quiet_trainer
from benchmarks.hf_trainer import _ClockCallback
from dicebert.hardware import detect_cpu

MIN_INFORMATIVE_F1 = 0.5  # a model predicting one class of five scores at most 0.2 macro-F1
BF16_F1_TOLERANCE = 0.01


@dataclass
class Settings:
    """Sizes of every section; :meth:`small` shrinks them to check the machinery in seconds."""

    work_dir: Path
    tiny: bool = False
    warmup: int = 3
    steps: int = 12
    rounds: int = 2
    padding_max_length: int = 256
    padding_steps: int = 4
    precision_seeds: tuple[int, ...] = (0, 1, 2)
    precision_epochs: int = 3  # one epoch of ce scored test macro-F1 0.258 here: not learned yet
    deadline: float = math.inf  # time.perf_counter() by which a long section stops early (and says so)
    force_bf16: bool = False
    memory_batches: int = 10
    sweep_grid: tuple[str, ...] = ("loss=ce,dice", "seed=0,1")
    sweep_fixed: tuple[str, ...] = ("model=tiny", "data.imbalance_ratio=100", "trainer.max_epochs=1")
    overrides: list[str] = field(default_factory=list)  # composed into every in-process config

    @classmethod
    def small(cls, work_dir: Path) -> Settings:
        return cls(
            work_dir=work_dir,
            tiny=True,
            warmup=1,
            steps=2,
            rounds=1,
            padding_max_length=64,
            padding_steps=2,
            precision_seeds=(0,),
            precision_epochs=1,
            memory_batches=2,
            sweep_grid=("loss=ce,dice",),
            sweep_fixed=("model=tiny", "data.imbalance_ratio=2", "trainer.max_epochs=1"),
            overrides=["model=tiny", "data.limit_per_class=24", "data.max_length=32"],
        )

    def config(self, *extra: str) -> DictConfig:
        return compose_config([*self.overrides, *extra], self.work_dir / "cache" / "tokens")

    def run_overrides(self) -> list[str]:
        """The subprocess runs' size overrides: tiny sizes when checking the machinery."""
        return ["model=tiny", "data.limit_per_class=24", "data.max_length=32"] if self.tiny else []


def project_samples_per_s(
    cfg: DictConfig, dm: Any, loader: DataLoader, warmup: int, steps: int, precision: str = "32-true"
) -> float:
    """Steady-state training samples/s of the project's module over ``loader``."""
    clock = StepClock(warmup, steps)
    trainer = quiet_trainer(
        max_steps=warmup + steps, max_epochs=-1, precision=precision, callbacks=[_ClockCallback(clock)]
    )
    trainer.fit(build_module(cfg, dm), train_dataloaders=loader)
    return clock.samples_per_s()


# ------------------------------------------------------------------------------------- padding
def _real_fraction(loader: DataLoader) -> float:
    real = total = 0
    for batch in loader:
        real += int(batch["attention_mask"].sum())
        total += batch["attention_mask"].numel()
    return real / total


def measure_padding(s: Settings) -> dict[str, Any]:
    """Headlines padded to max_length (run_classification.py's default) vs per batch vs length-grouped."""
    common = (f"data.max_length={s.padding_max_length}", "data.source.text_field=title")
    cfg = s.config(*common)
    dynamic, _ = build(cfg)
    grouped, _ = build(s.config(*common, "data.group_by_length=true"))
    fixed = DataLoader(
        dynamic.datasets["train"],
        batch_size=dynamic.batch_size,
        sampler=dynamic.train_dataloader().sampler,
        collate_fn=DataCollatorWithPadding(
            dynamic.tokenizer, padding="max_length", max_length=s.padding_max_length
        ),
    )
    loaders = {"fixed": fixed, "dynamic": dynamic.train_dataloader(), "grouped": grouped.train_dataloader()}
    out: dict[str, Any] = {"max_length": s.padding_max_length, "text_field": "title"}
    for name, loader in loaders.items():
        out[f"{name}_real_token_fraction"] = _real_fraction(loader)
        steps = s.padding_steps if name == "fixed" else s.steps
        out[f"{name}_samples_per_s"] = project_samples_per_s(cfg, dynamic, loader, s.warmup, steps)
    out["padding_speedup"] = out["dynamic_samples_per_s"] / out["fixed_samples_per_s"]
    out["grouped_speedup"] = out["grouped_samples_per_s"] / out["fixed_samples_per_s"]
    return out


# ----------------------------------------------------------------------------------- precision
def measure_precision(s: Settings) -> dict[str, Any]:
    """fp32 vs bf16-mixed, same seeds and batches: samples/s and test macro-F1 after whole epochs.

    Trained with ``ce`` for ``precision_epochs`` full epochs, long enough that a model still
    predicting one class (macro-F1 <= 0.2) fails the quality check instead of tying with bf16.
    Seeds that would end past ``s.deadline`` are not started; the output says how many ran.
    """
    cpu = detect_cpu()
    if not cpu.native_bf16 and not s.force_bf16:
        return {"skipped": "skipped: no native bf16", "cpu_detected": cpu.describe()}
    cfg = s.config("loss=ce")
    out: dict[str, Any] = {"loss": "ce", "epochs": s.precision_epochs, "seeds": list(s.precision_seeds)}
    runs: dict[str, list[tuple[float, float]]] = {"fp32": [], "bf16": []}
    per_seed = 0.0
    for done, seed in enumerate(s.precision_seeds):
        seed_started = time.perf_counter()
        if done and seed_started + per_seed > s.deadline:
            out["shortened"] = f"shortened: {done} of {len(s.precision_seeds)} seeds fit the time budget"
            break
        dm, _ = build(cfg, seed=seed)
        for key, precision in (("fp32", "32-true"), ("bf16", "bf16-mixed")):
            module = build_module(cfg, dm, seed=seed)
            trainer = quiet_trainer(precision=precision, max_epochs=s.precision_epochs, callbacks=[])
            started = time.perf_counter()
            trainer.fit(module, train_dataloaders=dm.train_dataloader())
            seconds = time.perf_counter() - started
            samples = len(dm.datasets["train"]) * s.precision_epochs
            f1 = float(
                trainer.test(module, dataloaders=dm.test_dataloader(), verbose=False)[0]["test/macro_f1"]
            )
            runs[key].append((samples / seconds, f1))
        per_seed = time.perf_counter() - seed_started
    for key, values in runs.items():
        out[f"{key}_samples_per_s"] = statistics.median(v[0] for v in values)
        out[f"{key}_test_macro_f1"] = [round(v[1], 4) for v in values]
    out["bf16_speedup"] = out["bf16_samples_per_s"] / out["fp32_samples_per_s"]
    out["quality"] = bf16_verdict(out["fp32_test_macro_f1"], out["bf16_test_macro_f1"])
    return out


def bf16_verdict(fp32: list[float], bf16: list[float]) -> str:
    """same / worse / inconclusive: a run that has not learned (a one-class model) proves nothing."""
    if min(fp32) < MIN_INFORMATIVE_F1:
        return f"inconclusive: fp32 test macro-F1 {min(fp32):.3f} < {MIN_INFORMATIVE_F1} (not learned)"
    spread = max(fp32) - min(fp32) if len(fp32) > 1 else 0.0
    gap = statistics.mean(fp32) - statistics.mean(bf16)
    if gap <= max(spread, BF16_F1_TOLERANCE):
        return (
            f"same: mean F1 gap {gap:+.3f} within the fp32 seed spread {spread:.3f} (or {BF16_F1_TOLERANCE})"
        )
    return f"worse: mean F1 gap {gap:+.3f} beyond the fp32 seed spread {spread:.3f}"
