"""GPU benchmark: bert-base training throughput and model FLOP utilisation, eager vs torch.compile.

Imports only torch and transformers, so it runs on a bare GPU machine with ``PYTHONPATH=src``.
The encoder is a randomly initialised BertConfig of bert-base size (12 layers, hidden 768,
12 heads, vocab 30522): throughput and MFU depend on the shapes, not on the weights, and no
download is needed. The step is the project's: encoder → pooler → dropout → linear, bf16
autocast, the loss in float32, AdamW.

MFU = 6 × parameters × tokens / seconds / peak (the issue's formula: it counts the matrix work of
forward + backward and leaves out attention's sequence-quadratic part, ~6 % at length 128).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from transformers import BertConfig, BertModel

from dicebert.benchmark.cli import OneLineParser

BERT_BASE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
}
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
#: Dense bf16 peak (TFLOP/s) by device name; H200 has the H100 SXM's compute.
PEAKS_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0), ("A100", 312.0))
NUM_CLASSES = 5


class Classifier(nn.Module):
    """The write-up's classifier (pooled output → dropout → linear) over a random bert-base."""

    def __init__(self, config: BertConfig, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.encoder = BertModel(config, add_pooling_layer=True)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.head = nn.Linear(config.hidden_size, num_classes)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        pooled = self.encoder(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return self.head(self.dropout(pooled))


def peak_tflops(device: torch.device, override: float | None) -> tuple[float | None, str]:
    """The assumed dense bf16 peak and where it comes from (MFU is only as right as this)."""
    if override is not None:
        return override, "--peak-tflops"
    if device.type != "cuda":
        return None, "no peak known for this device (pass --peak-tflops)"
    name = torch.cuda.get_device_name(device)
    for key, value in PEAKS_TFLOPS:
        if key in name:
            return value, f"{name}: dense bf16 peak of an {key}"
    return None, f"{name}: unknown peak (pass --peak-tflops)"


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
    """One model, optimizer and step function; ``step`` is eager or compiled."""

    def __init__(self, config: BertConfig, device: torch.device, seq_len: int, bf16: bool) -> None:
        torch.manual_seed(0)
        self.device = device
        self.seq_len = seq_len
        self.vocab = config.vocab_size
        self.model = Classifier(config).to(device).train()
        self.params = sum(p.numel() for p in self.model.parameters())
        fused = device.type == "cuda"
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=5e-5, fused=fused)
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
        self.forward: Callable[[Tensor, Tensor], Tensor] = self.model

    def compile(self, backend: str) -> None:
        self.forward = torch.compile(self.model, backend=backend)

    def batch(self, size: int) -> tuple[Tensor, Tensor, Tensor]:
        ids = torch.randint(0, self.vocab, (size, self.seq_len), device=self.device)
        mask = torch.ones_like(ids)  # every position a real token: tokens = batch × length
        labels = torch.randint(0, NUM_CLASSES, (size,), device=self.device)
        return ids, mask, labels

    def step(self, ids: Tensor, mask: Tensor, labels: Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            logits = self.forward(ids, mask)
        loss = nn.functional.cross_entropy(logits.float(), labels)  # the loss in float32
        loss.backward()
        self.optimizer.step()

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def fits(self, size: int) -> bool:
        """One full training step at ``size``; False on out-of-memory (the memory is given back)."""
        try:
            self.step(*self.batch(size))
            self.sync()
            return True
        except (torch.OutOfMemoryError, RuntimeError) as err:
            if not _is_oom(err):
                raise
            self.optimizer.zero_grad(set_to_none=True)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return False

    def measure(self, size: int, warmup: int, steps: int) -> dict[str, float]:
        """Median step time over ``steps`` timed steps (after ``warmup``; compilation happens there)."""
        data = self.batch(size)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)  # per mode, not since the batch search
        started = time.perf_counter()
        for _ in range(warmup):
            self.step(*data)
        self.sync()
        warmup_s = time.perf_counter() - started
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            self.step(*data)
            self.sync()
            times.append(time.perf_counter() - t0)
        step_s = statistics.median(times)
        return {"warmup_s": warmup_s, "step_s": step_s, "samples_per_s": size / step_s}


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    config = BertConfig(vocab_size=30522, max_position_embeddings=512, **(TINY if args.tiny else BERT_BASE))
    peak, peak_source = peak_tflops(device, args.peak_tflops)
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else args.device,
        "torch": torch.__version__,
        "model": "tiny random BertConfig" if args.tiny else "random bert-base BertConfig",
        "weights_note": "randomly initialised (no download): timing and MFU do not depend on the weights",
        "seq_len": args.seq_len,
        "precision": "bf16 autocast" if not args.fp32 else "fp32",
        "peak_tflops": peak,
        "peak_source": peak_source,
        "runs": {},
    }
    bench = Bench(config, device, args.seq_len, bf16=not args.fp32)
    result["params"] = bench.params
    log(f"[gpu-benchmark] {result['model']}: {bench.params / 1e6:.1f} M parameters on {result['device']}")
    if args.batch_size:
        batch = args.batch_size
    else:
        batch = find_max_batch(bench.fits, args.start_batch, args.max_batch)
        if batch == 0:
            raise SystemExit(f"error: even batch {args.start_batch} does not fit on {result['device']}")
    result["batch_size"] = batch
    result["batch_search"] = f"doubling from {args.start_batch}, capped at {args.max_batch}"
    log(f"[gpu-benchmark] batch {batch} × {args.seq_len} tokens")
    modes = ["eager"] if args.no_compile else ["eager", "compile"]
    for mode in modes:
        if mode == "compile":
            bench.compile(args.compile_backend)
        try:
            warmup = args.warmup if mode == "eager" else args.compile_warmup
            figures = bench.measure(batch, warmup, args.steps)
        except (torch.OutOfMemoryError, RuntimeError) as err:
            if not _is_oom(err):
                raise
            result["runs"][mode] = {"error": "out of memory"}
            continue
        tokens_per_s = figures["samples_per_s"] * args.seq_len
        figures["tokens_per_s"] = tokens_per_s
        figures["model_tflops"] = 6 * bench.params * tokens_per_s / 1e12
        figures["mfu"] = None if peak is None else figures["model_tflops"] / peak
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
        rows.append((
            mode, str(result["batch_size"]), f"{f['samples_per_s']:,.0f}", f"{f['tokens_per_s']:,.0f}",
            f"{f['model_tflops']:.1f}", mfu, f"{1000 * f['step_s']:.1f}", f"{f['warmup_s']:.1f}",
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    peak = "unknown" if result["peak_tflops"] is None else f"{result['peak_tflops']:g} TFLOP/s"
    lines.append(
        f"\n{result['device']}, torch {result['torch']}; {result['model']} ({result['params'] / 1e6:.1f} M "
        f"parameters, {result['weights_note']}); length {result['seq_len']}, {result['precision']}, "
        f"loss in float32, AdamW; MFU = 6 × params × tokens / time / peak, assumed peak {peak} "
        f"({result['peak_source']})"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = OneLineParser(description="bert-base samples/s and MFU, eager vs torch.compile")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --tiny: a logic check)")
    parser.add_argument("--tiny", action="store_true", help="a tiny BertConfig instead of bert-base")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=0, help="skip the search and use this batch")
    parser.add_argument("--start-batch", type=int, default=8)
    parser.add_argument("--max-batch", type=int, default=1024, help="cap of the doubling search")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile-warmup", type=int, default=3, help="compiled warm-up steps (compiles)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the assumed peak")
    args = parser.parse_args(argv)
    for name in ("seq_len", "start_batch", "max_batch", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    if args.start_batch > args.max_batch:
        parser.error(f"--start-batch {args.start_batch} is above --max-batch {args.max_batch}")
    if args.batch_size < 0 or args.warmup < 0 or args.compile_warmup < 0:
        parser.error("--batch-size, --warmup and --compile-warmup must be >= 0")
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
