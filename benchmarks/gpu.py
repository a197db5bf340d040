"""GPU benchmark: bert-base training samples/s and model FLOP utilisation (MFU), eager vs torch.compile.

The model is the product's: ``conf/model/minilm.yaml`` composed with a random bert-base-sized
encoder (12 layers, hidden 768, 12 heads, MiniLM's 30,522-token vocabulary: bert-base-uncased's
shapes; throughput and MFU depend on shapes, not weights, so nothing is downloaded), built by
``ClassifierModule`` with the project's ``ce`` loss (float32) and AdamW. FLOPs per step come from
Lightning's ``measure_flops`` (forward + backward on the meta device, attention included), the
peak from Lightning's ``get_available_flops``; steps are timed by ``torch.utils.benchmark``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from lightning.fabric.utilities.throughput import get_available_flops, measure_flops
from torch import Tensor
from torch.utils.benchmark import Timer

from benchmarks.common import OneLineParser, compose_config

BERT_BASE = "{hidden_size:768,num_hidden_layers:12,num_attention_heads:12,intermediate_size:3072}"
CLASSES = ["a", "b", "c", "d", "e"]


def model_overrides(tiny: bool) -> list[str]:
    """The product's model config, cut to a tiny or grown to a random bert-base encoder."""
    if tiny:
        return ["model=tiny", "loss=ce"]
    return [
        "model.net.encoder.pretrained=false",
        f"model.net.encoder.config_overrides={BERT_BASE}",
        "loss=ce",
    ]


def find_max_batch(fits: Callable[[int], bool], start: int, cap: int) -> int:
    """Largest batch (doubling from ``start``, at most ``cap``) for which ``fits`` holds; 0 if none."""
    best, batch = 0, start
    while batch <= cap:
        if not fits(batch):
            break
        best = batch
        batch *= 2
    return best


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


class Bench:
    """The project's module on ``device``: one AdamW step per call of :meth:`step`, eager or compiled."""

    def __init__(self, tiny: bool, device: torch.device, seq_len: int, bf16: bool) -> None:
        cfg = compose_config(model_overrides(tiny), cache_dir="unused")  # no data: random batches
        self.cfg = cfg
        torch.manual_seed(0)
        self.module = self._build(cfg).to(device).train()
        self.device, self.seq_len = device, seq_len
        self.vocab = self.module.net.encoder.config.vocab_size
        self.params = sum(p.numel() for p in self.module.parameters())
        self.optimizer = instantiate(cfg.model.optimizer)(
            self.module.parameters(), fused=device.type == "cuda"
        )
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
        self.forward: Callable[..., Tensor] = self.module.net

    @staticmethod
    def _build(cfg: Any) -> Any:
        loss = instantiate(cfg.loss, class_counts=[1] * len(CLASSES))
        return instantiate(cfg.model, loss=loss, class_names=CLASSES)

    def compile(self, backend: str) -> None:
        self.forward = torch.compile(self.module.net, backend=backend)

    def batch(self, size: int) -> dict[str, Tensor]:
        ids = torch.randint(0, self.vocab, (size, self.seq_len), device=self.device)
        labels = torch.randint(0, len(CLASSES), (size,), device=self.device)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}

    def step(self, batch: dict[str, Tensor]) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            logits = self.forward(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        self.module.loss_fn(logits, batch["labels"]).backward()  # the project's loss, in float32
        self.optimizer.step()

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def fits(self, size: int) -> bool:
        """One full training step at ``size``; False on out-of-memory (the memory is given back)."""
        try:
            self.step(self.batch(size))
            self.sync()
            return True
        except (torch.OutOfMemoryError, RuntimeError) as err:
            if not _is_oom(err):
                raise
            self.optimizer.zero_grad(set_to_none=True)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return False

    def flops_per_step(self, size: int) -> int:
        """Forward + backward FLOPs of one step at ``size``, counted by Lightning's ``measure_flops``.

        Counted on the real model (the encoder's mask handling calls ``.item()``, which the meta
        device refuses); the count depends on shapes only.
        """
        batch = self.batch(size)
        with self.autocast:
            flops = measure_flops(
                self.module.net,
                lambda: self.module.net(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]),
                lambda logits: logits.float().sum(),
            )
        self.optimizer.zero_grad(set_to_none=True)
        return flops

    def measure(self, size: int, warmup: int, min_run_time: float) -> dict[str, float]:
        """Median seconds per step (``torch.utils.benchmark``, CUDA-synchronised) after ``warmup`` steps."""
        data = self.batch(size)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        started = time.perf_counter()
        for _ in range(warmup):  # compilation happens here
            self.step(data)
        self.sync()
        warmup_s = time.perf_counter() - started
        timing = Timer(stmt="step(data)", globals={"step": self.step, "data": data}).blocked_autorange(
            min_run_time=min_run_time
        )
        return {"warmup_s": warmup_s, "step_s": timing.median, "samples_per_s": size / timing.median}


def run(args: Any, log: Callable[[str], None]) -> dict[str, Any]:
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    dtype = torch.float32 if args.fp32 else torch.bfloat16
    bench = Bench(args.tiny, device, args.seq_len, bf16=not args.fp32)
    peak = args.peak_tflops * 1e12 if args.peak_tflops else get_available_flops(device, dtype)
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else args.device,
        "torch": torch.__version__,
        "model": "tiny (conf/model/tiny.yaml)"
        if args.tiny
        else "random bert-base-sized encoder (conf/model/minilm.yaml)",
        "params": bench.params,
        "seq_len": args.seq_len,
        "precision": "fp32" if args.fp32 else "bf16 autocast",
        "peak_tflops": None if peak is None else peak / 1e12,
        "peak_source": "--peak-tflops" if args.peak_tflops else "lightning get_available_flops",
        "runs": {},
    }
    log(f"[gpu-benchmark] {result['model']}: {bench.params / 1e6:.1f} M parameters on {result['device']}")
    batch = args.batch_size or find_max_batch(bench.fits, args.start_batch, args.max_batch)
    if batch == 0:
        raise SystemExit(f"error: even batch {args.start_batch} does not fit on {result['device']}")
    result["batch_size"] = batch
    flops = bench.flops_per_step(batch)
    result["flops_per_step"] = flops
    for mode in ["eager"] if args.no_compile else ["eager", "compile"]:
        if mode == "compile":
            bench.compile(args.compile_backend)
        try:
            figures: dict[str, Any] = bench.measure(
                batch, args.warmup if mode == "eager" else args.compile_warmup, args.min_run_time
            )
        except (torch.OutOfMemoryError, RuntimeError) as err:
            if not _is_oom(err):
                raise
            result["runs"][mode] = {"error": "out of memory"}
            continue
        figures["tokens_per_s"] = figures["samples_per_s"] * args.seq_len
        figures["model_tflops"] = flops / figures["step_s"] / 1e12
        figures["mfu"] = None if peak is None else flops / figures["step_s"] / peak
        if device.type == "cuda":
            figures["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        result["runs"][mode] = figures
        log(f"[gpu-benchmark] {mode}: {figures['samples_per_s']:.1f} samples/s")
    eager, compiled = result["runs"].get("eager", {}), result["runs"].get("compile", {})
    if "samples_per_s" in eager and "samples_per_s" in compiled:
        result["compile_speedup"] = compiled["samples_per_s"] / eager["samples_per_s"]
    return result


def format_table(result: dict[str, Any]) -> str:
    rows = [("mode", "batch", "samples/s", "tokens/s", "model TFLOP/s", "MFU", "step ms", "warm-up s")]
    for mode, f in result["runs"].items():
        if "error" in f:
            rows.append((mode, str(result["batch_size"]), f["error"], "", "", "", "", ""))
            continue
        mfu = "-" if f["mfu"] is None else f"{100 * f['mfu']:.1f} %"
        figures = (f"{f['samples_per_s']:,.0f}", f"{f['tokens_per_s']:,.0f}", f"{f['model_tflops']:.1f}")
        times = (f"{1000 * f['step_s']:.1f}", f"{f['warmup_s']:.1f}")
        rows.append((mode, str(result["batch_size"]), *figures, mfu, *times))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    peak = "unknown" if result["peak_tflops"] is None else f"{result['peak_tflops']:g} TFLOP/s"
    lines.append(
        f"\n{result['device']}, torch {result['torch']}; {result['model']}, {result['params'] / 1e6:.1f} M "
        f"parameters; length {result['seq_len']}, {result['precision']}, loss in float32, AdamW; "
        f"MFU = measured FLOPs per step / step time / peak {peak} ({result['peak_source']})"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> Any:
    parser = OneLineParser(description="bert-base samples/s and MFU, eager vs torch.compile")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --tiny: a logic check)")
    parser.add_argument("--tiny", action="store_true", help="conf/model/tiny.yaml instead of bert-base")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=0, help="skip the search and use this batch")
    parser.add_argument("--start-batch", type=int, default=8)
    parser.add_argument("--max-batch", type=int, default=1024, help="cap of the doubling search")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile-warmup", type=int, default=3, help="compiled warm-up steps (compiles)")
    parser.add_argument("--min-run-time", type=float, default=3.0, help="seconds of timed steps per mode")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the assumed peak")
    args = parser.parse_args(argv)
    for name in ("seq_len", "start_batch", "max_batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    if args.start_batch > args.max_batch:
        parser.error(f"--start-batch {args.start_batch} is above --max-batch {args.max_batch}")
    if args.batch_size < 0 or args.warmup < 0 or args.compile_warmup < 0 or args.min_run_time <= 0:
        parser.error("--batch-size, --warmup, --compile-warmup must be >= 0 and --min-run-time > 0")
    if args.seq_len > 512:
        parser.error(f"--seq-len {args.seq_len} exceeds BERT's 512 positions")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no GPU; use --device cpu --tiny for a logic check")
    try:
        torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device {args.device!r} is not a torch device")
    if args.peak_tflops is not None and not (math.isfinite(args.peak_tflops) and args.peak_tflops > 0):
        parser.error(f"--peak-tflops must be a positive number; got {args.peak_tflops}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    result = run(args, lambda message: print(message, file=sys.stderr, flush=True))
    result["total_s"] = time.perf_counter() - started
    print(format_table(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"figures written to {args.out}")
    return 0
