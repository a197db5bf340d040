"""From a multirun folder to a table you can put in a paper: runs → per-cell mean ± std → paired Δ.

One run is one job folder of a Hydra sweep (``<sweep>/<job num>/``). A *cell* is every run that
differs only by its seed: the *method* (the swept overrides other than ``seed`` and
``data.imbalance_ratio``, e.g. the loss) at one imbalance ratio ρ. Differences to the baseline
method are paired by seed, because the same seed gives the same split and the same subsample, so
a paired interval removes the data noise that an unpaired one would count twice.

Nothing is dropped silently: runs that failed (``failure.json``), never finished (no
``metrics.json``) or never started (in the grid of ``multirun.yaml`` but without a folder) are
rows of ``summary.csv`` and listed in ``report.md``.

:class:`SweepCallback` hooks this into Hydra: it checks every swept config-group choice before any
job starts, names the W&B group after the sweep, closes each job's W&B run, and writes the
comparison when the sweep ends, so ``python train.py -m experiment=...`` is the one command.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from scipy import stats

from dicebert.errors import SweepError

log = logging.getLogger(__name__)

#: Environment variable through which a sweep names the W&B group of its jobs (conf/logger/wandb.yaml).
GROUP_ENV = "DICEBERT_SWEEP_GROUP"
RHO_KEY = "data.imbalance_ratio"
SEED_KEY = "seed"
#: The default baseline when the method is one of these overrides.
DEFAULT_BASELINES = {"loss": "ce", "data.sampler": "none"}
#: Report columns: (label, summary.csv column). ``test/tail_f1`` is derived, see :func:`tail_class`.
METRICS: list[tuple[str, str]] = [
    ("macro-F1", "test/macro_f1"),
    ("tail-F1", "test/tail_f1"),
    ("balanced acc.", "test/balanced_accuracy"),
    ("MCC", "test/mcc"),
    ("ECE", "test/ece"),
]
DIFF_METRICS = ["test/macro_f1", "test/tail_f1"]
PLOTS = {
    "macro_f1_vs_rho": "macro_f1_vs_rho.png",
    "per_class_f1": "per_class_f1.png",
    "confusion": "confusion_matrices.png",
}


@dataclass
class Sweep:
    """Every run of one or more sweep folders, finished or not, with the grouping used for the report."""

    folders: list[Path]
    runs: pd.DataFrame  # one row per run: status, method, rho, seed, overrides, metrics
    method_keys: list[str]
    methods: list[str]  # display order: baseline first, then as they appear in the sweep
    baseline: str | None
    class_names: list[str]
    confusion: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    @property
    def ok(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == "ok"]

    @property
    def not_ok(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] != "ok"]

    @property
    def rhos(self) -> list[str]:
        """ρ labels in numeric order (``none`` last)."""
        return sorted(self.runs["rho"].unique(), key=_rho_sort_key)


# ------------------------------------------------------------------------------------------ loading
def _rho_label(value: Any) -> str:
    """A stable text label for ρ: ``1``, ``10``, ``2.5``; ``none`` when the data was kept as it is."""
    if value is None or (isinstance(value, str) and value.lower() in {"none", "null", ""}):
        return "none"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else str(number)


def _rho_sort_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, math.inf, label)


def _parse_overrides(lines: Iterable[str]) -> dict[str, str]:
    """``["loss=ce", "+x=1"]`` → ``{"loss": "ce", "x": "1"}`` with Hydra's own parser."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([str(line) for line in lines])
    return {o.get_key_element().lstrip("+~"): o.get_value_element_as_str() for o in parsed}


def _select(cfg: DictConfig | None, key: str) -> Any:
    """A config value, or None when absent or when it needs Hydra's runtime to resolve."""
    if cfg is None:
        return None
    try:
        return OmegaConf.select(cfg, key, default=None)
    except Exception:  # e.g. ${hydra:...} interpolations outside a Hydra run
        return None


def expected_jobs(sweep_dir: Path) -> list[list[str]] | None:
    """The override lists of every job of a basic-sweeper grid, from ``multirun.yaml``; None otherwise.

    Uses Hydra's own expansion, so job ``i`` here is job ``i`` of the launcher; a job that never got
    a folder (the launcher died, SLURM never started it) can then be listed as missing.
    """
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return None
    master = OmegaConf.load(path)
    sweeper = str(_select(master, "hydra.sweeper._target_") or "")
    if not sweeper.endswith("BasicSweeper"):
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    arguments = _sweep_arguments(master)
    try:
        overrides = OverridesParser.create().parse_overrides(arguments)
        batches = BasicSweeper.split_arguments(overrides, None)
    except Exception as err:  # a glob or an unusual sweep: compare what is there
        log.warning("could not expand the sweep grid of %s (%s); missing jobs are not listed", path, err)
        return None
    return [list(job) for job in batches[0]]


def _read_run(job_dir: Path) -> dict[str, Any]:
    """One job folder → a flat row: status, error, overrides, config values and all metrics."""
    row: dict[str, Any] = {"run_dir": str(job_dir), "job": job_dir.name}
    overrides_path = job_dir / ".hydra" / "overrides.yaml"
    overrides = (
        [str(x) for x in yaml.safe_load(overrides_path.read_text()) or []] if overrides_path.is_file() else []
    )
    row["overrides"] = " ".join(overrides)
    row["_override_list"] = tuple(sorted(overrides))
    row["_overrides"] = _parse_overrides(overrides)
    config_path = job_dir / ".hydra" / "config.yaml"
    cfg = OmegaConf.load(config_path) if config_path.is_file() else None
    row["loss_name"] = _select(cfg, "loss.name")
    row["_rho_config"] = _select(cfg, RHO_KEY)
    row["_seed_config"] = _select(cfg, SEED_KEY)
    metrics_path, failure_path = job_dir / "metrics.json", job_dir / "failure.json"
    if metrics_path.is_file():  # written last and atomically: its presence means the run finished
        row["status"] = "ok"
        row["error"] = ""
        row.update(json.loads(metrics_path.read_text()))
    elif failure_path.is_file():
        row["status"] = "failed"
        row["error"] = str(json.loads(failure_path.read_text()).get("error", "")).strip()
    else:
        row["status"] = "incomplete"
        row["error"] = "no metrics.json and no failure.json: killed, or still running"
    confusion_path = job_dir / "confusion_matrix.json"
    if row["status"] == "ok" and confusion_path.is_file():
        row["_confusion"] = json.loads(confusion_path.read_text())
    return row


def _sweep_arguments(master: DictConfig) -> list[str]:
    """The sweeper's ``params`` then the command line, as the basic sweeper combines them (later wins)."""

    def plain(node: Any) -> Any:
        return OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node

    params = plain(OmegaConf.select(master, "hydra.sweeper.params")) or {}
    task = plain(OmegaConf.select(master, "hydra.overrides.task")) or []
    return [f"{k}={v}" for k, v in params.items()] + [str(x) for x in task]


def _job_dirs(sweep_dir: Path) -> list[Path]:
    """Job folders: direct subfolders that Hydra set up (``.hydra/``), in job-number order."""
    dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()]
    return sorted(dirs, key=lambda p: (0, int(p.name), "") if p.name.isdigit() else (1, 0, p.name))


def tail_class(row: pd.Series | dict[str, Any], class_names: Sequence[str]) -> str | None:
    """The class with the fewest training examples (``train/count/<class>``) of one run.

    Ties (every class at ρ = 1) go to the class whose name sorts last: fixed, so every run of a
    cell reports the same class, but arbitrary, so at ρ = 1 it is one class's F1 and says nothing
    about a tail. None when the run has no counts (it did not finish).
    """
    counts = {c: row.get(f"train/count/{c}") for c in class_names}
    counts = {c: float(v) for c, v in counts.items() if v is not None and not pd.isna(v)}
    if not counts:
        return None
    return min(sorted(counts, reverse=True), key=counts.__getitem__)  # min keeps the first of ties


def load_sweep(*folders: str | os.PathLike[str], baseline: str | None = None) -> Sweep:
    """Read every run of the sweep folder(s); raise :class:`SweepError` with a one-line fix if none."""
    if not folders:
        raise SweepError("no folder given; pass a multirun folder such as logs/<task>/multiruns/<time>")
    rows: list[dict[str, Any]] = []
    paths = [Path(f) for f in folders]
    for sweep_dir in paths:
        if not sweep_dir.is_dir():
            raise SweepError(
                f"{sweep_dir} is not a folder; pass a multirun folder such as logs/<task>/multiruns/<time>"
            )
        if (sweep_dir / ".hydra").is_dir() and not (sweep_dir / "multirun.yaml").is_file():
            raise SweepError(
                f"{sweep_dir} is a single run, not a sweep; pass the multirun folder above its runs "
                "(logs/<task>/multiruns/<time>), made by `python train.py -m ...`"
            )
        found = [_read_run(d) | {"sweep": str(sweep_dir)} for d in _job_dirs(sweep_dir)]
        expected = expected_jobs(sweep_dir)
        if expected is not None:
            seen = {r["_override_list"] for r in found}
            for num, job in enumerate(expected):
                if tuple(sorted(job)) not in seen:
                    found.append(
                        {
                            "sweep": str(sweep_dir),
                            "run_dir": str(sweep_dir / str(num)),
                            "job": str(num),
                            "overrides": " ".join(job),
                            "_overrides": _parse_overrides(job),
                            "status": "missing",
                            "error": "in the sweep's grid but no job folder: never started",
                        }
                    )
        if not found:
            raise SweepError(
                f"no runs in {sweep_dir} (no job folder with .hydra/); pass a multirun folder such as "
                "logs/<task>/multiruns/<time>, made by `python train.py -m ...`"
            )
        rows.extend(found)
    return _build_sweep(paths, rows, baseline)


def _build_sweep(folders: list[Path], rows: list[dict[str, Any]], baseline: str | None) -> Sweep:
    """Decide the method of each run (the swept overrides that vary) and its ρ, seed and tail class."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row["_overrides"] if k not in keys]
    varying = [k for k in keys if len({r["_overrides"].get(k) for r in rows}) > 1]
    method_keys = [k for k in varying if k not in (RHO_KEY, SEED_KEY)]
    for row in rows:
        ov = row["_overrides"]
        rho = ov.get(RHO_KEY, row.get("_rho_config"))
        seed = ov.get(SEED_KEY, row.get("_seed_config"))
        row["rho"] = _rho_label(rho)
        row["seed"] = None if seed is None else int(float(seed))
        if len(method_keys) == 1:
            row["method"] = ov.get(method_keys[0], "")
        elif method_keys:
            row["method"] = ", ".join(f"{k}={ov[k]}" for k in method_keys if k in ov)
        else:
            row["method"] = str(row.get("loss_name") or ov.get("loss") or "run")
        for k in method_keys:
            row[k] = ov.get(k)
    class_names: list[str] = []
    for row in rows:
        for key in row:
            if key.startswith("train/count/") and key[len("train/count/") :] not in class_names:
                class_names.append(key[len("train/count/") :])
    confusion: dict[tuple[str, str], np.ndarray] = {}
    for row in rows:
        tail = tail_class(row, class_names) if row["status"] == "ok" else None
        row["tail_class"] = tail
        if tail is not None:
            row["test/tail_f1"] = row.get(f"test/f1/{tail}")
            row["test/tail_recall"] = row.get(f"test/recall/{tail}")
        cm = row.pop("_confusion", None)
        if cm is not None and list(cm["class_names"]) == class_names:
            key = (row["method"], row["rho"])
            confusion[key] = confusion.get(key, 0) + np.asarray(cm["matrix"], dtype=float)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    if baseline is None and len(method_keys) == 1:
        baseline = DEFAULT_BASELINES.get(method_keys[0])
        baseline = baseline if baseline in methods else None
    elif baseline is None and "ce" in methods:
        baseline = "ce"
    elif baseline is not None and baseline not in methods:
        raise SweepError(
            f"baseline {baseline!r} is not a method of this sweep; methods: {', '.join(methods)}"
        )
    if baseline is not None:
        methods = [baseline, *(m for m in methods if m != baseline)]
    frame = pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    front = ["sweep", "job", "status", "method", *method_keys, "rho", "seed", "tail_class"]
    front += [c for _, c in METRICS if c in frame]
    rest = [c for c in frame.columns if c not in front and c not in ("error", "overrides", "run_dir")]
    frame = frame[[*front, *rest, "error", "overrides", "run_dir"]]
    return Sweep(folders, frame, method_keys, methods, baseline, class_names, confusion)


# -------------------------------------------------------------------------------------- statistics
def cell_table(sweep: Sweep) -> pd.DataFrame:
    """Per method × ρ: run counts by status, mean/std over finished seeds of every report metric, best flag.

    ``best`` marks the highest mean macro-F1 at each ρ. It is a ranking of means, not a claim that
    the difference is real: read it with ``n`` and the paired intervals of :func:`paired_differences`.
    """
    records = []
    for rho in sweep.rhos:
        for method in sweep.methods:
            cell = sweep.runs[(sweep.runs["rho"] == rho) & (sweep.runs["method"] == method)]
            if cell.empty:
                continue
            done = cell[cell["status"] == "ok"]
            rec: dict[str, Any] = {
                "rho": rho,
                "method": method,
                "n": len(done),
                "n_failed": int((cell["status"] == "failed").sum()),
                "n_missing": int(cell["status"].isin(["missing", "incomplete"]).sum()),
                "seeds": " ".join(str(s) for s in sorted(done["seed"].dropna().astype(int))),
                "tail_class": ", ".join(sorted(done["tail_class"].dropna().unique())),
            }
            for _, col in METRICS:
                values = pd.to_numeric(done[col], errors="coerce").dropna() if col in done else pd.Series()
                rec[f"{col}/mean"] = float(values.mean()) if len(values) else math.nan
                rec[f"{col}/std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            records.append(rec)
    table = pd.DataFrame(records)
    if table.empty:
        return table
    best = table.groupby("rho")["test/macro_f1/mean"].transform("max")
    table["best"] = table["test/macro_f1/mean"].notna() & (table["test/macro_f1/mean"] == best)
    return table


def paired_differences(sweep: Sweep, confidence: float = 0.95) -> pd.DataFrame:
    """Method − baseline per ρ, paired by seed, with a t interval over the paired seeds (n − 1 df).

    Seeds that finished for only one of the two are left out of the pair (and counted in
    ``n_pairs``); repeated runs of one seed are averaged first. With n pairs < 2 there is no
    interval. With n = 3 the t quantile is 4.30, so the interval is wide: that is the honest answer.
    """
    if sweep.baseline is None:
        return pd.DataFrame()
    ok = sweep.ok
    records = []
    for rho in sweep.rhos:
        at_rho = ok[ok["rho"] == rho]
        base = at_rho[at_rho["method"] == sweep.baseline]
        for method in sweep.methods:
            if method == sweep.baseline:
                continue
            other = at_rho[at_rho["method"] == method]
            if not ((sweep.runs["rho"] == rho) & (sweep.runs["method"] == method)).any():
                continue  # no such cell at all (a folder added for other ρ); failed cells stay, n = 0
            rec: dict[str, Any] = {"rho": rho, "method": method, "baseline": sweep.baseline}
            for col in DIFF_METRICS:
                pairs = pd.merge(
                    other.groupby("seed")[col].mean().rename("m"),
                    base.groupby("seed")[col].mean().rename("b"),
                    left_index=True,
                    right_index=True,
                ).dropna()
                diff = (pairs["m"].astype(float) - pairs["b"].astype(float)).to_numpy()
                n = len(diff)
                mean = float(diff.mean()) if n else math.nan
                low = high = math.nan
                if n >= 2:
                    sem = float(stats.sem(diff))
                    if sem > 0:
                        low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
                    else:
                        low = high = mean
                rec.update(
                    {
                        f"{col}/n_pairs": n,
                        f"{col}/diff": mean,
                        f"{col}/ci_low": float(low),
                        f"{col}/ci_high": float(high),
                    }
                )
            records.append(rec)
    return pd.DataFrame(records)


# ------------------------------------------------------------------------------------------- plots
def _pyplot() -> Any:
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # files, not windows; a notebook that imported pyplot keeps its backend
    import matplotlib.pyplot as plt

    return plt


def plot_macro_f1_vs_rho(sweep: Sweep, metric: str = "test/macro_f1") -> Any:
    """One line per method: mean over seeds at each ρ, error bars ±1 std (none where n = 1)."""
    plt = _pyplot()
    table = cell_table(sweep)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    numeric = all(_rho_sort_key(r)[0] == 0 for r in sweep.rhos)
    positions = {r: (float(r) if numeric else i) for i, r in enumerate(sweep.rhos)}
    log_x = numeric and all(p > 0 for p in positions.values()) and len(positions) > 1
    for k, method in enumerate(sweep.methods):
        rows = table[(table["method"] == method) & (table["n"] > 0)] if not table.empty else table
        if rows.empty:
            continue
        shift = 0.04 * (k - (len(sweep.methods) - 1) / 2)  # side by side, so error bars stay readable
        x = [positions[r] * math.exp(shift) if log_x else positions[r] + shift for r in rows["rho"]]
        ax.errorbar(
            x,
            rows[f"{metric}/mean"],
            yerr=rows[f"{metric}/std"].fillna(0.0),
            # the colour cycle repeats after 10 methods: marker and line style keep lines apart
            marker="osD^v<>pPX*h"[k % 12],
            linestyle=("-", "--", ":")[(k // 10) % 3],
            capsize=3,
            label=method,
        )
    if log_x:
        ax.set_xscale("log")
    ax.set_xticks(list(positions.values()), list(positions))
    ax.minorticks_off()
    ax.set_xlabel("imbalance ratio ρ (head / tail training size)")
    ax.set_ylabel(f"{metric} (mean ± std over seeds)")
    ax.set_title(f"{metric} vs ρ")
    ax.grid(alpha=0.3)
    ax.legend(title=", ".join(sweep.method_keys) or "method", fontsize=8)
    fig.tight_layout()
    return fig


def plot_per_class_f1(sweep: Sweep) -> Any:
    """Heat map per ρ: method × class, mean test F1 over seeds; the tail class is marked."""
    plt = _pyplot()
    rhos, classes = sweep.rhos, sweep.class_names
    ok = sweep.ok
    fig, axes = plt.subplots(
        1,
        max(len(rhos), 1),
        figsize=(1.0 * max(len(classes), 2) * max(len(rhos), 1) + 2.5, 0.45 * len(sweep.methods) + 2.2),
        squeeze=False,
    )
    for ax, rho in zip(axes[0], rhos, strict=False):
        at_rho = ok[ok["rho"] == rho]
        values = np.full((len(sweep.methods), len(classes)), np.nan)
        for i, method in enumerate(sweep.methods):
            runs = at_rho[at_rho["method"] == method]
            for j, name in enumerate(classes):
                col = f"test/f1/{name}"
                if col in runs and runs[col].notna().any():
                    values[i, j] = float(runs[col].astype(float).mean())
        ax.imshow(values, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        tails = set(at_rho["tail_class"].dropna())
        ax.set_xticks(
            range(len(classes)), [f"{c}*" if c in tails else c for c in classes], rotation=45, ha="right"
        )
        ax.set_yticks(range(len(sweep.methods)), sweep.methods)
        ax.set_title(f"ρ = {rho}")
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                if not np.isnan(values[i, j]):
                    color = "black" if values[i, j] > 0.6 else "white"
                    ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=8, color=color)
    fig.suptitle("test F1 per class (mean over seeds; * = tail class)")
    fig.tight_layout()
    return fig


def plot_confusion_grid(sweep: Sweep) -> Any:
    """Method × ρ grid of test confusion matrices, counts summed over seeds, colour = row recall."""
    plt = _pyplot()
    rhos, methods, n = sweep.rhos, sweep.methods, max(len(sweep.class_names), 1)
    size = 0.45 * n + 1.2
    fig, axes = plt.subplots(
        len(methods), len(rhos), figsize=(size * len(rhos) + 1, size * len(methods) + 1), squeeze=False
    )
    for i, method in enumerate(methods):
        for j, rho in enumerate(rhos):
            ax = axes[i][j]
            matrix = sweep.confusion.get((method, rho))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"ρ = {rho}", fontsize=9)
            if j == 0:
                ax.set_ylabel(method, fontsize=9)
            if matrix is None:
                ax.text(
                    0.5, 0.5, "no finished run", ha="center", va="center", fontsize=8, transform=ax.transAxes
                )
                continue
            rows = matrix.sum(axis=1, keepdims=True)
            norm = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
            ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
            if n <= 8:
                for a in range(n):
                    for b in range(n):
                        color = "white" if norm[a, b] > 0.5 else "black"
                        ax.text(
                            b, a, str(int(matrix[a, b])), ha="center", va="center", fontsize=6, color=color
                        )
    fig.suptitle("test confusion (rows true, columns predicted; counts summed over seeds)", fontsize=10)
    fig.text(0.5, 0.005, "classes: " + ", ".join(sweep.class_names), ha="center", fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    return fig


# ------------------------------------------------------------------------------------------ report
def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_report(sweep: Sweep, plots: dict[str, str] | None = None) -> str:
    """The Markdown report: counts, the per-cell table, paired differences, the runs that did not finish."""
    runs = sweep.runs
    counts = runs["status"].value_counts()
    method_name = ", ".join(sweep.method_keys) or "method"
    table, diffs = cell_table(sweep), paired_differences(sweep)
    out = [f"# Sweep comparison: {', '.join(str(f) for f in sweep.folders)}", ""]
    out.append(
        f"{len(runs)} runs: {counts.get('ok', 0)} finished, {counts.get('failed', 0)} failed, "
        f"{counts.get('incomplete', 0)} incomplete, {counts.get('missing', 0)} missing "
        "(listed at the end; never dropped silently)."
    )
    out += [
        "",
        f"Method = the swept `{method_name}`; cells are method × ρ; each value is the mean ± sample std "
        "over the finished seeds, n = how many. **Bold** = highest mean macro-F1 at that ρ: a ranking of "
        "means, not a significance claim; read it with n and the paired intervals below.",
        "",
        "Tail-F1 = test F1 of the class with the fewest training examples (`train/count/<class>`); "
        "ties (every class at ρ = 1) go to the class whose name sorts last, a fixed but arbitrary "
        "pick, so at ρ = 1 it is one class's F1, not a tail effect. The class is named in the table.",
        "",
        "## Results per ρ",
        "",
    ]
    if table.empty:
        out += ["No finished run: nothing to compare.", ""]
    else:
        header = ["ρ", method_name, "n", *(label for label, _ in METRICS), "tail class"]
        rows = []
        for _, rec in table.iterrows():
            cells = []
            for _, col in METRICS:
                mean, std = rec[f"{col}/mean"], rec[f"{col}/std"]
                text = _fmt(mean) if math.isnan(std) else f"{_fmt(mean)} ± {_fmt(std)}"
                cells.append(f"**{text}**" if col == "test/macro_f1" and rec["best"] else text)
            n_text = str(rec["n"])
            if rec["n_failed"] or rec["n_missing"]:
                n_text += f" (+{rec['n_failed']} failed, +{rec['n_missing']} missing)"
            rows.append([rec["rho"], rec["method"], n_text, *cells, rec["tail_class"] or "–"])
        out += [_markdown_table(header, rows), ""]
    out += ["## Difference to the baseline, paired by seed", ""]
    if sweep.baseline is None:
        out += [
            "No baseline: the sweep has no `ce` (loss) or `none` (sampler) method; "
            "pass one with `--baseline <method>`.",
            "",
        ]
    elif diffs.empty:
        out += [f"Nothing to pair with `{sweep.baseline}`.", ""]
    else:
        out += [
            f"Δ = method − `{sweep.baseline}` on the same seed (same split, same subsample), mean over the "
            "paired seeds with a 95% t interval (n − 1 degrees of freedom). With n = 3 seeds the t "
            "quantile is 4.30, so intervals are wide: an interval that contains 0 means no evidence of "
            "a difference at this n, not evidence of none. n < 2: no interval.",
            "",
        ]
        header = ["ρ", method_name, "n pairs", "Δ macro-F1 [95% CI]", "Δ tail-F1 [95% CI]"]
        rows = []
        for _, rec in diffs.iterrows():
            texts = []
            for col in DIFF_METRICS:
                diff, low, high = rec[f"{col}/diff"], rec[f"{col}/ci_low"], rec[f"{col}/ci_high"]
                text = "–" if math.isnan(diff) else f"{diff:+.3f}"
                if not math.isnan(low):
                    text += f" [{low:+.3f}, {high:+.3f}]"
                texts.append(text)
            rows.append([rec["rho"], rec["method"], rec["test/macro_f1/n_pairs"], *texts])
        out += [_markdown_table(header, rows), ""]
    out += ["## Failed, incomplete and missing runs", ""]
    bad = sweep.not_ok
    if bad.empty:
        out += ["None: every run of the sweep finished.", ""]
    else:
        rows = [
            [
                r["job"],
                r["status"],
                r["method"],
                r["rho"],
                r["seed"],
                r["error"].splitlines()[0][:300],
                r["run_dir"],
            ]
            for _, r in bad.iterrows()
        ]
        out += [_markdown_table(["job", "status", method_name, "ρ", "seed", "error", "folder"], rows), ""]
    if plots:
        out += ["## Plots", ""]
        out += [f"![{name}]({file})" for name, file in plots.items()]
        out.append("")
    out += [
        "Per-run numbers: `summary.csv` (one row per run, failed and missing included); "
        "per-cell numbers: `cells.csv`; differences: `differences.csv`.",
        "",
    ]
    return "\n".join(out)


def compare_sweep(
    *folders: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    baseline: str | None = None,
) -> Sweep:
    """Load the sweep(s) and write summary.csv, cells.csv, differences.csv, report.md and the PNG plots.

    ``out`` defaults to the (first) sweep folder, next to its runs.
    """
    sweep = load_sweep(*folders, baseline=baseline)
    target = Path(out) if out is not None else sweep.folders[0]
    target.mkdir(parents=True, exist_ok=True)
    sweep.runs.to_csv(target / "summary.csv", index=False)
    cell_table(sweep).to_csv(target / "cells.csv", index=False)
    paired_differences(sweep).to_csv(target / "differences.csv", index=False)
    plots: dict[str, str] = {}
    if not sweep.ok.empty:
        plt = _pyplot()
        for name, make in (
            ("macro_f1_vs_rho", plot_macro_f1_vs_rho),
            ("per_class_f1", plot_per_class_f1),
            ("confusion", plot_confusion_grid),
        ):
            fig = make(sweep)
            fig.savefig(target / PLOTS[name], dpi=110)
            plt.close(fig)
            plots[name] = PLOTS[name]
    (target / "report.md").write_text(render_report(sweep, plots))
    return sweep


def newest_sweep(log_dir: str | os.PathLike[str] = "logs") -> Path:
    """The most recently modified ``<log_dir>/<task>/multiruns/<time>`` folder (the notebook's default)."""
    candidates = [p for p in Path(log_dir).glob("*/multiruns/*") if (p / "multirun.yaml").is_file()]
    if not candidates:
        raise SweepError(f"no sweep under {log_dir}/*/multiruns/; run `python train.py -m ...` first")
    return max(candidates, key=lambda p: p.stat().st_mtime)


def main(argv: Sequence[str] | None = None) -> int:
    """``python scripts/compare_runs.py <multirun folder> [...]``: write the report next to the sweep."""
    parser = argparse.ArgumentParser(
        description="Aggregate a Hydra sweep (one or more multirun folders) into summary.csv, report.md "
        "and plots."
    )
    parser.add_argument("folders", nargs="+", help="multirun folder(s): logs/<task>/multiruns/<time>")
    parser.add_argument("--out", default=None, help="where to write (default: the first folder)")
    parser.add_argument("--baseline", default=None, help="method to compare against (default: ce / none)")
    args = parser.parse_args(argv)
    try:
        sweep = compare_sweep(*args.folders, out=args.out, baseline=args.baseline)
    except SweepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    target = Path(args.out) if args.out else sweep.folders[0]
    counts = sweep.runs["status"].value_counts()
    print(
        f"{counts.get('ok', 0)} finished, {counts.get('failed', 0)} failed, "
        f"{counts.get('incomplete', 0) + counts.get('missing', 0)} incomplete/missing; "
        f"report: {target / 'report.md'}"
    )
    return 0 if counts.get("ok", 0) else 1


# -------------------------------------------------------------------------------- Hydra callback
def check_sweep_choices(config: DictConfig) -> None:
    """Refuse a sweep whose config-group choices do not exist, before any job runs.

    Covers the sweeper's ``params`` and the command line (``loss=ce,nope``; Optuna's
    ``choice(...)``): one line naming the bad choice and the available ones.
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not GlobalHydra.instance().is_initialized():
        return
    loader = GlobalHydra.instance().config_loader()
    for override in OverridesParser.create().parse_overrides(_sweep_arguments(config)):
        group = override.key_or_group.lstrip("+~")
        if override.is_delete() or override.package is not None or not loader.get_group_options(group):
            continue  # a value override, not a config-group choice
        if override.is_sweep_override() and override.is_discrete_sweep():
            choices = list(override.sweep_string_iterator())
        elif override.is_sweep_override():
            continue
        else:
            choices = [override.get_value_element_as_str()]
        options = loader.get_group_options(group, results_filter=ObjectType.CONFIG)
        unknown = [c for c in choices if c not in options and not c.startswith("[")]
        if unknown:
            raise SweepError(
                f"sweep choice {group}={unknown[0]} does not exist; available {group} configs: "
                f"{', '.join(options)}. Nothing was run: fix the sweep list and start it again"
            )


class SweepCallback(Callback):
    """Hydra callback for sweeps (``hydra.callbacks`` in the experiment configs).

    - before any job: :func:`check_sweep_choices` (a typo in a sweep list costs nothing);
    - names the W&B group ``<task_name>-<sweep folder name>`` through ``$DICEBERT_SWEEP_GROUP``;
    - after each job: closes a W&B run a failed job left open, so the next job in this process
      starts its own run instead of appending to that one;
    - after the sweep: writes the comparison next to it (``compare: false`` to skip).
    """

    def __init__(self, compare: bool = True, baseline: str | None = None) -> None:
        self.compare = compare
        self.baseline = baseline
        self._previous_group: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_sweep_choices(config)
        except SweepError as err:
            raise SystemExit(f"error: {err}") from None
        sweep_dir = Path(str(config.hydra.sweep.dir))
        self._previous_group = os.environ.get(GROUP_ENV)
        os.environ[GROUP_ENV] = f"{config.task_name}-{sweep_dir.name}"

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus

        from dicebert.reporting.dashboards import finish_wandb

        value = getattr(job_return, "_return_value", None)
        failed = job_return.status != JobStatus.COMPLETED or (isinstance(value, float) and math.isnan(value))
        finish_wandb(exit_code=1 if failed else 0)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._previous_group is None:
            os.environ.pop(GROUP_ENV, None)
        else:
            os.environ[GROUP_ENV] = self._previous_group
        if not self.compare:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            sweep = compare_sweep(sweep_dir, baseline=self.baseline)
        except Exception as err:  # the runs are on disk; a report problem must not hide them
            log.error("could not write the sweep comparison for %s: %s", sweep_dir, err)
            return
        counts = sweep.runs["status"].value_counts()
        log.info(
            "sweep comparison: %s (%d finished, %d failed, %d incomplete/missing)",
            sweep_dir / "report.md",
            counts.get("ok", 0),
            counts.get("failed", 0),
            counts.get("incomplete", 0) + counts.get("missing", 0),
        )
