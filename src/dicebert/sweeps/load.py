"""Loading a sweep: every job folder (finished, failed, killed or never started) as one row.

One run is one job folder of a Hydra sweep (``<sweep>/<job num>/``). A *cell* is every run that
differs only by its seed: the *method* (the swept overrides other than ``seed`` and
``data.imbalance_ratio``, e.g. the loss) at one imbalance ratio ρ. Nothing is dropped silently:
runs that failed (``failure.json``), never finished (no ``metrics.json``) or never started (in the
grid of ``multirun.yaml`` but without a folder) are rows too.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from omegaconf import OmegaConf

from dicebert.errors import SweepError
from dicebert.sweeps.grid import expected_jobs, parse_overrides, select
from dicebert.sweeps.resume import read_action

log = logging.getLogger(__name__)

RHO_KEY = "data.imbalance_ratio"
SEED_KEY = "seed"
#: The default baseline when the method is one of these overrides.
DEFAULT_BASELINES = {"loss": "ce", "data.sampler": "none", "recipe": "ce"}
#: Report columns: (label, summary.csv column). ``test/tail_*`` / ``test/tail2_*`` are derived per
#: run for its rarest and second-rarest training class, see :func:`rarest_classes`.
MAIN_METRICS: list[tuple[str, str]] = [
    ("macro-F1", "test/macro_f1"),
    ("tail-F1", "test/tail_f1"),
    ("balanced acc.", "test/balanced_accuracy"),
    ("MCC", "test/mcc"),
    ("ECE", "test/ece"),
]
#: The rare classes' precision/recall, the tail's ranking quality (AUROC: a tail with F1 0 but a high
#: AUROC is a threshold failure, not a ranking one) and post-hoc logit adjustment's effect.
RARE_METRICS: list[tuple[str, str]] = [
    ("tail precision", "test/tail_precision"),
    ("tail recall", "test/tail_recall"),
    ("tail AUROC", "test/tail_auroc"),
    ("tail in batches", "train/tail_presence"),
    ("tail grad share", "train/tail_grad_share"),
    ("2nd-rarest precision", "test/tail2_precision"),
    ("2nd-rarest recall", "test/tail2_recall"),
    ("post-hoc macro-F1", "posthoc/test/macro_f1"),
    ("post-hoc tail-F1", "posthoc/test/tail_f1"),
    ("post-hoc τ", "posthoc/tau"),
    ("cRT macro-F1", "crt/test/macro_f1"),
    ("cRT tail-F1", "crt/test/tail_f1"),
]
METRICS: list[tuple[str, str]] = MAIN_METRICS + RARE_METRICS


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
    #: How the baseline was chosen: ``given`` (named, or the default) or ``best-val``.
    baseline_rule: str = "given"

    @property
    def ok(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == "ok"]

    @property
    def not_ok(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] != "ok"]

    @property
    def rhos(self) -> list[str]:
        """ρ labels in numeric order (``none`` last)."""
        return sorted(self.runs["rho"].unique(), key=rho_sort_key)


def _rho_label(value: Any) -> str:
    """A stable text label for ρ: ``1``, ``10``, ``2.5``; ``none`` when the data was kept as it is."""
    if value is None or (isinstance(value, str) and value.lower() in {"none", "null", ""}):
        return "none"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else str(number)


def rho_sort_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, math.inf, label)


def _read_run(job_dir: Path) -> dict[str, Any]:
    """One job folder → a flat row: status, error, overrides, config values and all metrics."""
    row: dict[str, Any] = {"run_dir": str(job_dir), "job": job_dir.name, "action": read_action(job_dir)}
    overrides_path = job_dir / ".hydra" / "overrides.yaml"
    overrides = (
        [str(x) for x in yaml.safe_load(overrides_path.read_text()) or []] if overrides_path.is_file() else []
    )
    row["overrides"] = " ".join(overrides)
    row["_override_list"] = tuple(sorted(overrides))
    row["_overrides"] = parse_overrides(overrides)
    config_path = job_dir / ".hydra" / "config.yaml"
    cfg = OmegaConf.load(config_path) if config_path.is_file() else None
    row["loss_name"] = select(cfg, "loss.name")
    row["val_imbalance"] = bool(select(cfg, "data.val_imbalance") or False)  # validation's class mix
    row["_rho_config"] = select(cfg, RHO_KEY)
    row["_seed_config"] = select(cfg, SEED_KEY)
    row["_config"] = cfg  # the resolved value of a method key that this run did not override
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


def _job_dirs(sweep_dir: Path) -> list[Path]:
    """Job folders: direct subfolders that Hydra set up (``.hydra/``), in job-number order."""
    dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()]
    return sorted(dirs, key=lambda p: (0, int(p.name), "") if p.name.isdigit() else (1, 0, p.name))


def rarest_classes(row: pd.Series | dict[str, Any], class_names: Sequence[str], k: int = 2) -> list[str]:
    """The ``k`` classes with the fewest training examples of one run, rarest first (ties: as tail_class)."""
    raw = {c: row.get(f"train/count/{c}") for c in class_names}
    counts = {c: float(v) for c, v in raw.items() if v is not None and not pd.isna(v)}
    return sorted(sorted(counts, reverse=True), key=counts.__getitem__)[:k]  # stable: ties keep name order


def tail_class(row: pd.Series | dict[str, Any], class_names: Sequence[str]) -> str | None:
    """The class with the fewest training examples (``train/count/<class>``) of one run.

    Ties (every class at ρ = 1) go to the class whose name sorts last: fixed, so every run of a
    cell reports the same class, but arbitrary, so at ρ = 1 it is one class's F1 and says nothing
    about a tail. None when the run has no counts (it did not finish).
    """
    rare = rarest_classes(row, class_names, k=1)
    return rare[0] if rare else None


def load_sweep(
    *folders: str | os.PathLike[str],
    baseline: str | None = None,
    methods: Sequence[str] | None = None,
    default_baseline: str | None = None,
) -> Sweep:
    """Read every run of the sweep folder(s); raise :class:`SweepError` with a one-line fix if none.

    ``baseline`` must be a method of the sweep; ``default_baseline`` is used only when the sweep ran
    it (an experiment's choice, also for a part of its grid), else :data:`DEFAULT_BASELINES`.
    ``methods`` keeps only those methods (in that order): a report over part of a larger grid.
    """
    if not folders:
        raise SweepError("no folder given; pass a multirun folder such as logs/<task>/multiruns/<time>")
    rows: list[dict[str, Any]] = []
    paths = [Path(f) for f in folders]
    if paths and all(_is_results_folder(p) for p in paths):
        return _from_summaries(paths, baseline, methods, default_baseline)
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
                            "_overrides": parse_overrides(job),
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
    return _build_sweep(paths, rows, baseline, methods, default_baseline)


def _build_sweep(
    folders: list[Path],
    rows: list[dict[str, Any]],
    baseline: str | None,
    only: Sequence[str] | None,
    default_baseline: str | None,
) -> Sweep:
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
        values = {k: ov.get(k, select(row.get("_config"), k)) for k in method_keys}
        if len(method_keys) == 1:
            value = values[method_keys[0]]
            row["method"] = "" if value is None else str(value)
        elif method_keys:
            row["method"] = ", ".join(f"{k}={v}" for k, v in values.items() if v is not None)
        else:
            row["method"] = str(row.get("loss_name") or ov.get("loss") or "run")
        row.update(values)
    if only:  # before the per-run tables below, so that nothing of a left-out method is kept
        found = list(dict.fromkeys(r["method"] for r in rows))
        unknown = [m for m in only if m not in found]
        if unknown:
            raise SweepError(f"method {unknown[0]!r} is not in this sweep; methods: {', '.join(found)}")
        order = {m: i for i, m in enumerate(only)}
        rows = sorted((r for r in rows if r["method"] in order), key=lambda r: order[r["method"]])
    class_names: list[str] = []
    for row in rows:
        for key in row:
            if key.startswith("train/count/") and key[len("train/count/") :] not in class_names:
                class_names.append(key[len("train/count/") :])
    confusion: dict[tuple[str, str], np.ndarray] = {}
    for row in rows:
        rare = rarest_classes(row, class_names) if row["status"] == "ok" else []
        row["tail_class"] = rare[0] if rare else None
        for prefix, name in zip(("test/tail", "test/tail2"), rare, strict=False):
            for metric in ("f1", "recall", "precision", "auroc"):
                row[f"{prefix}_{metric}"] = row.get(f"test/{metric}/{name}")
        if rare:
            row["posthoc/test/tail_f1"] = row.get(f"posthoc/test/f1/{rare[0]}")
            row["crt/test/tail_f1"] = row.get(f"crt/test/f1/{rare[0]}")
            row["train/tail_presence"] = row.get(f"train/presence/{rare[0]}")
            row["train/tail_grad_share"] = row.get(f"train/grad_share/{rare[0]}")
        # A collapsed run (a class never predicted, or no better than the majority class) is counted
        # apart, so that it is never read as the loss's result.
        row["collapsed"] = bool(
            (row.get("health/never_predicted") or 0) > 0
            or (row.get("health/below_majority_baseline") or 0) > 0
        )
        cm = row.pop("_confusion", None)
        if cm is not None and list(cm["class_names"]) == class_names:
            cell = (str(row["method"]), str(row["rho"]))
            matrix = np.asarray(cm["matrix"], dtype=float)
            confusion[cell] = confusion[cell] + matrix if cell in confusion else matrix
    methods, baseline = _order_methods(
        list(dict.fromkeys(r["method"] for r in rows)), method_keys, baseline, default_baseline
    )
    frame = pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    front = ["sweep", "job", "status", "action", "method", *method_keys, "rho", "seed", "tail_class"]
    front += [c for _, c in METRICS if c in frame]
    rest = [c for c in frame.columns if c not in front and c not in ("error", "overrides", "run_dir")]
    frame = frame[[*front, *rest, "error", "overrides", "run_dir"]]
    return Sweep(folders, frame, method_keys, methods, baseline, class_names, confusion)


def _order_methods(
    methods: list[str], method_keys: list[str], baseline: str | None, default_baseline: str | None
) -> tuple[list[str], str | None]:
    """The baseline (given, else the experiment's or the usual default if the sweep ran it) first."""
    if baseline is None:  # the first of these that the sweep ran, else none
        usual = DEFAULT_BASELINES.get(method_keys[0]) if len(method_keys) == 1 else "ce"
        baseline = next((b for b in (default_baseline, usual) if b is not None and b in methods), None)
    elif baseline not in methods:
        raise SweepError(
            f"baseline {baseline!r} is not a method of this sweep; methods: {', '.join(methods)}"
        )
    if baseline is not None:
        methods = [baseline, *(m for m in methods if m != baseline)]
    return methods, baseline


def _is_results_folder(folder: Path) -> bool:
    """A folder a comparison wrote (summary.csv) that holds no runs: docs/results keeps only those."""
    return (
        (folder / "summary.csv").is_file()
        and not (folder / "multirun.yaml").is_file()
        and not _job_dirs(folder)
    )


def _from_summaries(
    folders: list[Path], baseline: str | None, only: Sequence[str] | None, default_baseline: str | None
) -> Sweep:
    """A sweep rebuilt from the summary.csv of earlier comparisons: the per-run values, no run folders.

    What needs the runs themselves (confusion matrices, throughput) is left out of such a report.
    """
    frame = pd.concat(
        [pd.read_csv(f / "summary.csv", dtype={"rho": str, "method": str}) for f in folders],
        ignore_index=True,
    )
    frame["seed"] = pd.to_numeric(frame["seed"], errors="coerce").astype("Int64")
    frame["collapsed"] = frame["collapsed"].fillna(False).astype(bool) if "collapsed" in frame else False
    front = list(frame.columns)
    method_keys = front[front.index("method") + 1 : front.index("rho")]
    if only:
        unknown = [m for m in only if m not in set(frame["method"])]
        if unknown:
            found = ", ".join(dict.fromkeys(frame["method"]))
            raise SweepError(f"method {unknown[0]!r} is not in this sweep; methods: {found}")
        order = {m: i for i, m in enumerate(only)}
        frame = frame[frame["method"].isin(order)]
        frame = frame.iloc[frame["method"].map(order).argsort(kind="stable")].reset_index(drop=True)
    methods, baseline = _order_methods(
        list(dict.fromkeys(frame["method"])), method_keys, baseline, default_baseline
    )
    class_names = [c[len("train/count/") :] for c in frame.columns if c.startswith("train/count/")]
    return Sweep(folders, frame, method_keys, methods, baseline, class_names)


def newest_sweep(log_dir: str | os.PathLike[str] = "logs") -> Path:
    """The most recently modified ``<log_dir>/<task>/multiruns/<time>`` folder (the notebook's default)."""
    candidates = [p for p in Path(log_dir).glob("*/multiruns/*") if (p / "multirun.yaml").is_file()]
    if not candidates:
        raise SweepError(f"no sweep under {log_dir}/*/multiruns/; run `python train.py -m ...` first")
    return max(candidates, key=lambda p: p.stat().st_mtime)
