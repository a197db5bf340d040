"""Run the CPU benchmark's items, print one side-by-side table, write the figures as JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from dicebert.benchmark.cli import OneLineParser

#: item → (JSON key, target, higher is better); the issue's targets.
TARGETS: dict[str, tuple[str, float, bool]] = {
    "overhead": ("overhead_ratio", 0.97, True),
    "padding": ("padding_speedup", 5.0, True),
    "cache": ("cache_speedup", 10.0, True),
    "loss": ("loss_speedup_c50", 10.0, True),
    "memory": ("peak_rss_mb", 2560.0, False),
}
CORPUS_TOKENIZE_TARGET_S = 2.0
BF16_F1_TOLERANCE = 0.01  # bf16 "without losing quality": test macro-F1 no more than this below fp32
MIN_INFORMATIVE_F1 = 0.5  # below this the short run has not learned, so equal F1s prove nothing


def machine() -> dict[str, Any]:
    """What the figures were measured on, including how busy the machine was."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def run_all(settings: Any, sections: Sequence[str], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the chosen items in order; the top level holds the issue's headline keys."""
    from dicebert.benchmark.sections import SECTIONS, silence_lightning
    from dicebert.benchmark.timing import peak_rss_mb

    silence_lightning()
    torch.set_num_threads(settings.threads)
    results: dict[str, Any] = {"machine": machine(), "tiny": settings.tiny, "seconds": {}}
    started = time.perf_counter()
    for name in sections:
        log(f"[benchmark] {name} ...")
        t0 = time.perf_counter()
        results[name] = SECTIONS[name](settings)
        results["seconds"][name] = round(time.perf_counter() - t0, 1)
    results["seconds"]["total"] = round(time.perf_counter() - started, 1)
    results["machine"]["load_average_1min_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results["benchmark_process_peak_rss_mb"] = peak_rss_mb()
    for name, (key, _, _) in TARGETS.items():
        if name in results:
            results[key] = results[name][key]
    if "loss" in results:
        results["loss_speedup_c50"] = results["loss"].get("loss_speedup_c50")
    return results


def bf16_verdict(q: dict[str, Any]) -> str:
    """yes / no / inconclusive: a short run that has not learned (F1 of a constant guess) says nothing."""
    if q["fp32_test_macro_f1"] < MIN_INFORMATIVE_F1:
        return f"inconclusive (F1 < {MIN_INFORMATIVE_F1} after {q['train_batches']} steps)"
    return "yes" if q["bf16_speedup"] > 1 and q["bf16_f1_delta"] >= -BF16_F1_TOLERANCE else "no"


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def table_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """(item, what, write-up / baseline, project, ratio, target met?) per measured figure."""
    rows: list[tuple[str, str, str, str, str, str]] = []

    def met(ok: bool, target: str) -> str:
        return f"{target}: {'met' if ok else 'MISSED'}"

    if "overhead" in r:
        o = r["overhead"]
        rows.append(
            (
                "1 framework overhead",
                "train samples/s (plain loop | Lightning)",
                _fmt(o["plain_samples_per_s"]),
                _fmt(o["lightning_samples_per_s"]),
                _fmt(o["overhead_ratio"], 3),
                met(o["overhead_ratio"] >= 0.97, ">= 0.97"),
            )
        )
    if "padding" in r:
        p = r["padding"]
        rows.append(
            (
                "2 padding (headlines)",
                f"real-token fraction (max_length {p['max_length']} | dynamic)",
                _fmt(p["fixed_real_token_fraction"], 3),
                _fmt(p["dynamic_real_token_fraction"], 3),
                "",
                "",
            )
        )
        rows.append(
            (
                "",
                "train samples/s (fixed pad | dynamic)",
                _fmt(p["fixed_samples_per_s"]),
                _fmt(p["dynamic_samples_per_s"]),
                _fmt(p["padding_speedup"]),
                met(p["padding_speedup"] >= 5, ">= 5x"),
            )
        )
        rows.append(
            (
                "",
                "+ group_by_length: real fraction | samples/s",
                _fmt(p["grouped_real_token_fraction"], 3),
                _fmt(p["grouped_samples_per_s"]),
                _fmt(p["grouped_padding_speedup"]),
                "",
            )
        )
    if "cache" in r:
        c = r["cache"]
        rows.append(
            (
                "3 data preparation",
                "s to a ready DataLoader (first | cached)",
                _fmt(c["first_run_s"], 3),
                _fmt(c["cached_run_s"], 3),
                _fmt(c["cache_speedup"]),
                met(c["cache_speedup"] >= 10, ">= 10x"),
            )
        )
        rows.append(
            (
                "",
                f"s to tokenize all {c['corpus_texts']} texts (uncached | cached)",
                _fmt(c["corpus_tokenize_s"], 3),
                _fmt(c["corpus_cached_load_s"], 3),
                "",
                met(c["corpus_tokenize_s"] < CORPUS_TOKENIZE_TARGET_S, "< 2 s uncached"),
            )
        )
    if "loss" in r:
        lo = r["loss"]
        for key in sorted((k for k in lo if k.startswith("writeup_loop_us_c")), key=lambda k: int(k[17:])):
            c = key[len("writeup_loop_us_") :]
            speedup = lo[f"loss_speedup_{c}"]
            rows.append(
                (
                    "4 loss cost" if c == "c5" else "",
                    f"us/call fwd+bwd, N={lo['n']}, C={c[1:]} (loop | seed_dice)",
                    _fmt(lo[key], 1),
                    _fmt(lo["per_loss_us"]["seed_dice"][c], 1),
                    _fmt(speedup, 1),
                    met(speedup >= 10, ">= 10x")
                    if c == "c50"
                    else f"slowest loss {_fmt(lo[f'slowest_loss_speedup_{c}'], 1)}x",
                )
            )
    if "precision" in r:
        q = r["precision"]
        offer = bf16_verdict(q)
        rows.append(
            (
                "5 precision",
                "train samples/s (fp32 | bf16-mixed)",
                _fmt(q["fp32_samples_per_s"]),
                _fmt(q["bf16_samples_per_s"]),
                _fmt(q["bf16_speedup"]),
                "",
            )
        )
        rows.append(
            (
                "",
                f"test macro-F1 after {q['train_batches']} steps (fp32 | bf16)",
                _fmt(q["fp32_test_macro_f1"], 3),
                _fmt(q["bf16_test_macro_f1"], 3),
                _fmt(q["bf16_f1_delta"], 3),
                f"offer trainer=cpu_bf16: {offer}",
            )
        )
    if "memory" in r:
        m = r["memory"]
        rows.append(
            (
                "6 memory",
                "peak RSS of the default run, MiB",
                "",
                _fmt(m["peak_rss_mb"], 0),
                "",
                met(m["peak_rss_mb"] <= 2560, "<= 2.5 GiB"),
            )
        )
    if "sweep" in r:
        w = r["sweep"]
        rows.append(
            (
                "7 sweep (4 runs)",
                f"wall s (basic | joblib x{w['joblib_jobs']}, {w['threads_per_job']} thread/job)",
                _fmt(w["basic_s"], 1),
                _fmt(w["joblib_s"], 1),
                _fmt(w["sweep_speedup"]),
                "",
            )
        )
    return rows


def format_table(r: dict[str, Any]) -> str:
    """A Markdown table (it goes into the README as printed)."""
    header = ("item", "measure", "write-up / baseline", "project", "ratio", "target")
    rows = [header, *table_rows(r)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    m = r["machine"]
    note = " (tiny sizes: checks the machinery, measures nothing)" if r["tiny"] else ""
    lines.append(
        f"\n{m['cpu']}, {m['cores']} cores, torch {m['torch']} with {m['torch_threads']} threads; "
        f"load average {_fmt(m['load_average_1min'])} → {_fmt(m.get('load_average_1min_end'))}; "
        f"{r['seconds']['total']} s in all{note}"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from dicebert.benchmark.sections import SECTIONS

    parser = OneLineParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated subset of: {','.join(SECTIONS)}"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny model and sizes: a smoke test in seconds")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--work-dir", type=Path, help="scratch folder (default: a new temp folder)")
    parser.add_argument(
        "--precision-steps", type=int, help="training steps per precision in item 5 (default 60; tiny 2)"
    )
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown or not chosen:
        parser.error(f"--sections: unknown {unknown or 'empty'}; choose from {','.join(SECTIONS)}")
    if args.precision_steps is not None and args.precision_steps < 2:
        parser.error(f"--precision-steps must be >= 2; got {args.precision_steps}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}")
    if args.out is not None and args.out.exists() and args.out.is_dir():
        parser.error(f"--out {args.out} is a folder; give a file path")
    args.sections = chosen
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from dicebert.benchmark.sections import Settings

    options: dict[str, Any] = {"threads": args.threads}
    if args.precision_steps is not None:
        options["precision_train_batches"] = args.precision_steps
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        options["work_dir"] = str(args.work_dir)
    settings = Settings.small(**options) if args.tiny else Settings(**options)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        results = run_all(settings, args.sections, log=log)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(format_table(results))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"figures written to {args.out}")
    return 0
