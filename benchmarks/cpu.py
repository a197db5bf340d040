"""The CPU benchmark: run the chosen sections, print one table, write every figure as JSON.

    python scripts/benchmark.py --out benchmark.json      # all sections, < 10 min on 2 cores
    python scripts/benchmark.py --sections trainer         # a subset
    python scripts/benchmark.py --default-run              # also time a full default run (1.5-4 min)
    python scripts/benchmark.py --tiny                     # tiny model and sizes: checks the machinery

docs/benchmark.md explains each section.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import OneLineParser, build, load_average, machine, peak_rss_mb, silence
from benchmarks.hf_trainer import compare
from benchmarks.runs import default_run, measure_startup, measure_sweep, rho100_grid
from benchmarks.sections import Settings, measure_padding, measure_precision
from dicebert.hardware import resolve_precision

#: The costliest section (bf16: seeds x epochs x 2 precisions) runs last but one (rho100_grid only reads a
#: finished grid), so the others fit the budget; it stops early at the deadline and says so.
SECTIONS = ("trainer", "padding", "startup", "sweep", "default_run", "precision", "rho100_grid")
#: A section started before ``--budget-s`` may run this much longer (the precision section stops early).
OVERRUN_S = 90.0


def _trainer(s: Settings, args: Any) -> dict[str, Any]:
    if importlib.util.find_spec("accelerate") is None:  # the transformers Trainer needs it
        return {"skipped": "skipped: the Trainer needs accelerate (pip install 'dicebert[bench]')"}
    cfg = s.config()
    dm, _ = build(cfg)
    # The precision a default run trains in on this machine (bf16-mixed where native), on both sides.
    return compare(cfg, dm, s.warmup, s.steps, s.rounds, s.work_dir, resolve_precision(cfg.trainer))


RUNNERS: dict[str, Callable[[Settings, Any], dict[str, Any]]] = {
    "trainer": _trainer,
    "precision": lambda s, a: measure_precision(s),
    "padding": lambda s, a: measure_padding(s),
    "startup": lambda s, a: measure_startup(s),
    "sweep": lambda s, a: measure_sweep(s),
    "default_run": lambda s, a: default_run(s, measure=a.default_run),
    "rho100_grid": lambda s, a: rho100_grid(a.rho100_sweep),
}


def headline(r: dict[str, Any]) -> dict[str, Any]:
    """The issue's keys at the top level (None where the section did not run)."""
    get = lambda section, key: r.get(section, {}).get(key)  # noqa: E731
    default_s = get("default_run", "seconds")
    precision = r.get("precision", {})
    return {
        "trainer_ratio": get("trainer", "trainer_ratio"),
        "trainer_eval_ratio": get("trainer", "eval_ratio"),
        "default_run_seconds": default_s,
        "runs_per_hour_default_run": None if default_s is None else 3600 / default_s,
        "runs_per_hour_tiny_grid": get("sweep", "parallel_runs_per_hour"),
        "runs_per_hour_rho100": get("rho100_grid", "runs_per_hour"),
        "bf16_speedup": precision.get("skipped", precision.get("bf16_speedup")),
        "peak_rss_mb": get("startup", "peak_rss_mb"),
        "fixed_cost_s": get("startup", "phases") and r["startup"]["phases"]["outside_loops_s"],
        "fixed_cost_imports_s": get("startup", "breakdown") and r["startup"]["breakdown"]["imports_s"],
        "fixed_cost_in_sweep_s": get("startup", "breakdown") and r["startup"]["breakdown"]["in_sweep_s"],
        "padding_speedup": get("padding", "padding_speedup"),
    }


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if isinstance(value, float) else str(value)


def format_table(r: dict[str, Any]) -> str:
    """A Markdown table of the figures (it goes into the README as printed)."""
    rows = [("section", "measure", "baseline", "project", "ratio")]
    skipped = [(name, r[name]["skipped"]) for name in SECTIONS if "skipped" in r.get(name, {})]
    r = {key: value for key, value in r.items() if key not in dict(skipped)}
    if "trainer" in r:
        t, hf = r["trainer"], r["trainer"]["hf_trainer"]
        p = t["project"]
        rows.append(
            (
                "vs transformers Trainer",
                f"train samples/s, {t['precision']} (Trainer / project)",
                _fmt(hf["train_samples_per_s"]),
                _fmt(p["train_samples_per_s"]),
                _fmt(t["trainer_ratio"], 3),
            )
        )
        rows.append(
            (
                "",
                f"wall s for {t['warmup_steps'] + t['steps_measured']} steps (Trainer / project)",
                _fmt(hf["train_wall_s"], 1),
                _fmt(p["train_wall_s"], 1),
                _fmt(t["train_wall_ratio"], 3),
            )
        )
        rows.append(
            (
                "",
                "test-set samples/s (Trainer / project)",
                _fmt(hf["eval_samples_per_s"]),
                _fmt(p["eval_samples_per_s"]),
                _fmt(t["eval_ratio"], 3),
            )
        )
    if "precision" in r:
        q = r["precision"]
        rows.append(
            (
                "precision",
                "train samples/s (fp32 / bf16-mixed)",
                _fmt(q["fp32_samples_per_s"]),
                _fmt(q["bf16_samples_per_s"]),
                _fmt(q["bf16_speedup"]),
            )
        )
        rows.append(
            (
                "",
                f"test macro-F1 per seed, {q['epochs']} epoch(s) ce (fp32 / bf16)",
                str(q["fp32_test_macro_f1"]),
                str(q["bf16_test_macro_f1"]),
                q["quality"],
            )
        )
    if "padding" in r:
        p = r["padding"]
        rows.append(
            (
                "padding (headlines)",
                f"train samples/s (pad to {p['max_length']} / per batch)",
                _fmt(p["fixed_samples_per_s"]),
                _fmt(p["dynamic_samples_per_s"]),
                _fmt(p["padding_speedup"]),
            )
        )
        rows.append(
            (
                "",
                "+ data.group_by_length: samples/s",
                "",
                _fmt(p["grouped_samples_per_s"]),
                _fmt(p["grouped_speedup"]),
            )
        )
    if "startup" in r:
        st = r["startup"]
        ph = st["phases"]
        rows.append(
            (
                "fixed cost per run",
                "s outside the loops (start-up / to 1st step / after)",
                "",
                f"{ph['startup_s']:.1f} / {ph.get('setup_to_first_step_s', 0):.1f} / "
                f"{ph['outside_loops_s'] - ph['startup_s'] - ph.get('setup_to_first_step_s', 0):.1f}",
                _fmt(ph["outside_loops_s"], 1),
            )
        )
        if "breakdown" in st:
            b = st["breakdown"]
            rows.append(
                (
                    "",
                    "of it: imports / W&B logger; without W&B (logger=csv)",
                    "",
                    f"{b['imports_s']:.1f} / {b['wandb_s']:.1f}",
                    _fmt(b["outside_loops_csv_only_s"], 1),
                )
            )
            rows.append(
                (
                    "",
                    "per further job of a sweep (one process, imports shared)",
                    "",
                    "",
                    _fmt(b["in_sweep_s"], 1),
                )
            )
        rows.append(("memory", "peak RSS of the default run, MiB", "", _fmt(st["peak_rss_mb"], 0), ""))
    if "sweep" in r:
        w = r["sweep"]
        rows.append(
            (
                "sweep",
                f"runs/hour, {w['runs']}-run tiny grid (one at a time / 2 parallel)",
                _fmt(w["basic_runs_per_hour"], 0),
                _fmt(w["parallel_runs_per_hour"], 0),
                _fmt(w["parallel_speedup"]),
            )
        )
    if "default_run" in r:
        d = r["default_run"]
        rows.append(
            (
                "default run",
                f"s, test macro-F1 ({d['source']})",
                "",
                f"{d['seconds']:.0f} s, F1 {_fmt(d['test_macro_f1'], 3)}",
                "",
            )
        )
    if "rho100_grid" in r:
        g = r["rho100_grid"]
        rows.append(
            (
                "ρ = 100 recipe grid",
                f"runs/hour ({g['source']}; {g['runs']} runs, {g['launcher']} launcher)",
                "",
                _fmt(g["runs_per_hour"], 1),
                "",
            )
        )
    rows += [(name, reason, "", "", "") for name, reason in skipped]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    m = r["machine"]
    note = " (tiny sizes: checks the machinery, measures nothing)" if r["tiny"] else ""
    lines.append(
        f"\n{m['cpu_detected']}; {m['cores']} cores, torch {m['torch']} with {m['torch_threads']} threads; "
        f"load average {_fmt(m['load_average_1min'])} -> {_fmt(m.get('load_average_1min_end'))}; "
        f"{r['seconds']['total']} s in all{note}"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> Any:
    parser = OneLineParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny model and sizes: a smoke test")
    parser.add_argument(
        "--default-run", action="store_true", help="time a full default run (else: the last one)"
    )
    parser.add_argument(
        "--rho100-sweep",
        type=Path,
        nargs="+",
        help="folder(s) of a finished experiment=recipes_rho100 grid: report its runs/hour (else: the last)",
    )
    parser.add_argument("--force-bf16", action="store_true", help="run the bf16 section without native bf16")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="Hydra override for the in-process sections, repeatable (e.g. --override model=tiny)",
    )
    parser.add_argument("--steps", type=int, help="measured training steps per side (default 12; tiny 2)")
    parser.add_argument("--rounds", type=int, help="alternating rounds per comparison (default 2; tiny 1)")
    parser.add_argument(
        "--budget-s", type=float, default=480.0, help="start no section after this many seconds (default 480)"
    )
    parser.add_argument("--work-dir", type=Path, help="scratch folder (default: a new temporary folder)")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown or not chosen:
        parser.error(f"--sections: unknown {unknown or 'empty'}; choose from {','.join(SECTIONS)}")
    for name in ("steps", "rounds"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1; got {getattr(args, name)}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}")
    if args.out is not None and args.out.is_dir():
        parser.error(f"--out {args.out} is a folder; give a file path")
    args.sections = chosen
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="dicebert-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings.small(work_dir) if args.tiny else Settings(work_dir=work_dir)
    settings.force_bf16 = args.force_bf16
    settings.overrides += args.override
    settings.steps = args.steps or settings.steps
    settings.rounds = args.rounds or settings.rounds
    silence()
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"machine": machine(), "tiny": args.tiny, "seconds": {}}
    started = time.perf_counter()
    settings.deadline = started + args.budget_s + OVERRUN_S
    for name in args.sections:
        reads_only = name == "rho100_grid" or (name == "default_run" and not args.default_run)
        if not reads_only and time.perf_counter() - started > args.budget_s:  # busy or slow: say so
            spent = f"skipped: the {args.budget_s:.0f} s budget was spent (load average {load_average()})"
            results[name] = {"skipped": spent}
            continue
        print(f"[benchmark] {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            results[name] = RUNNERS[name](settings, args)
        except RuntimeError as err:
            print(f"error: {name}: {err}", file=sys.stderr)
            return 1
        results["seconds"][name] = round(time.perf_counter() - t0, 1)
    results["seconds"]["total"] = round(time.perf_counter() - started, 1)
    results["machine"]["load_average_1min_end"] = load_average()
    results["benchmark_process_peak_rss_mb"] = peak_rss_mb()
    results = {**headline(results), **results}
    print(format_table(results))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"figures written to {args.out}")
    return 0
