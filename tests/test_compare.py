"""Sweep aggregation on hand-made run folders: exact numbers, pairing, missing runs, bad input."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import yaml

from dicebert.sweeps.load import load_sweep, tail_class
from dicebert.sweeps.report import compare_sweep
from dicebert.sweeps.stats import cell_table, paired_differences, tail_class_table

CLASSES = ["a", "b", "c"]
_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_runs.py"
_spec = importlib.util.spec_from_file_location("compare_runs", _SCRIPT)
assert _spec is not None and _spec.loader is not None
compare_runs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_runs)
main = compare_runs.main  # the CLI: scripts/compare_runs.py


def make_run(
    sweep: Path,
    num: int,
    loss: str,
    rho: float,
    seed: int,
    macro_f1: float | None,
    counts: tuple[int, int, int] = (10, 5, 1),
    error: str | None = None,
) -> Path:
    """A job folder as train.py leaves it: .hydra files, then metrics.json or failure.json."""
    run = sweep / str(num)
    (run / ".hydra").mkdir(parents=True)
    overrides = [f"loss={loss}", f"data.imbalance_ratio={rho:g}", f"seed={seed}", "model=tiny"]
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    config = {"seed": seed, "loss": {"name": loss}, "data": {"imbalance_ratio": rho}}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    if error is not None:
        (run / "failure.json").write_text(json.dumps({"error": error, "traceback": "..."}))
        return run
    if macro_f1 is None:  # killed mid-run: neither file
        return run
    record = {
        "test/macro_f1": macro_f1,
        "test/balanced_accuracy": macro_f1 + 0.01,
        "test/mcc": macro_f1 - 0.1,
        "test/ece": 0.05,
        "val/best_macro_f1": macro_f1,
    }
    for i, (name, count) in enumerate(zip(CLASSES, counts, strict=True)):
        record[f"train/count/{name}"] = float(count)
        record[f"test/f1/{name}"] = macro_f1 + 0.1 * (1 - i)  # tail class c: macro_f1 - 0.1
        record[f"test/recall/{name}"] = 0.5
    (run / "metrics.json").write_text(json.dumps(record))
    matrix = [[3, 1, 0], [0, 2, 1], [1, 0, 1]]
    (run / "confusion_matrix.json").write_text(json.dumps({"class_names": CLASSES, "matrix": matrix}))
    return run


def write_multirun(sweep: Path, losses: str, rhos: str, seeds: str) -> None:
    """multirun.yaml as the basic sweeper saves it: its params and the command line."""
    master = {
        "hydra": {
            "sweeper": {
                "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                "params": {"loss": losses, "data.imbalance_ratio": rhos, "seed": seeds},
            },
            "overrides": {"task": ["model=tiny"]},
        }
    }
    sweep.mkdir(parents=True, exist_ok=True)
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(master, sort_keys=False))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """ce and dice at ρ = 10 over three seeds, dice's seed 2 failed; ρ = 1 ce only, seed 1 killed."""
    root = tmp_path / "sweep"
    write_multirun(root, "ce,dice", "1,10", "0,1,2")
    # job numbers follow the grid order: loss, then ρ, then seed
    make_run(root, 0, "ce", 1, 0, 0.60, counts=(4, 4, 4))
    make_run(root, 1, "ce", 1, 1, None, counts=(4, 4, 4))
    make_run(root, 2, "ce", 1, 2, 0.64, counts=(4, 4, 4))
    make_run(root, 3, "ce", 10, 0, 0.50)
    make_run(root, 4, "ce", 10, 1, 0.60)
    make_run(root, 5, "ce", 10, 2, 0.70)
    # dice at ρ = 1 (jobs 6-8) never started: the grid says they should exist
    make_run(root, 9, "dice", 10, 0, 0.60)
    make_run(root, 10, "dice", 10, 1, 0.65)
    make_run(root, 11, "dice", 10, 2, None, error="NonFiniteLossError: non-finite training loss nan")
    return root


def test_every_run_is_a_row_with_its_status(sweep: Path) -> None:
    runs = load_sweep(sweep).runs.set_index("job")
    assert len(runs) == 12
    assert runs.loc["1", "status"] == "incomplete"
    assert runs.loc["11", "status"] == "failed" and "NonFiniteLossError" in runs.loc["11", "error"]
    assert {runs.loc[j, "status"] for j in ("6", "7", "8")} == {"missing"}
    assert runs.loc["7", "method"] == "dice" and runs.loc["7", "rho"] == "1" and runs.loc["7", "seed"] == 1
    assert (runs["status"] == "ok").sum() == 7


def test_cells_mean_std_n_and_best(sweep: Path) -> None:
    table = cell_table(load_sweep(sweep)).set_index(["rho", "method"])
    ce10, dice10 = table.loc[("10", "ce")], table.loc[("10", "dice")]
    assert ce10["n"] == 3 and ce10["seeds"] == "0 1 2"
    assert ce10["test/macro_f1/mean"] == pytest.approx(0.6)
    assert ce10["test/macro_f1/std"] == pytest.approx(0.1)  # sample std (n - 1)
    assert dice10["n"] == 2 and dice10["n_failed"] == 1
    assert dice10["test/macro_f1/mean"] == pytest.approx(0.625)
    assert bool(dice10["best"]) and not bool(ce10["best"])  # highest mean, nothing more
    ce1 = table.loc[("1", "ce")]
    assert ce1["n"] == 2 and ce1["n_missing"] == 1
    dice1 = table.loc[("1", "dice")]
    assert dice1["n"] == 0 and dice1["n_missing"] == 3 and math.isnan(dice1["test/macro_f1/mean"])


def test_tail_class_is_the_fewest_training_examples_ties_to_the_last_name() -> None:
    assert tail_class({"train/count/a": 10, "train/count/b": 1, "train/count/c": 3}, CLASSES) == "b"
    assert tail_class({"train/count/a": 4, "train/count/b": 4, "train/count/c": 4}, CLASSES) == "c"
    assert tail_class({"train/count/b": 2, "train/count/c": 2, "train/count/a": 9}, CLASSES) == "c"
    assert tail_class({}, CLASSES) is None


def test_tail_f1_comes_from_the_tail_class(sweep: Path) -> None:
    runs = load_sweep(sweep).ok.set_index("job")
    assert runs.loc["3", "tail_class"] == "c"
    assert runs.loc["3", "test/tail_f1"] == pytest.approx(0.50 - 0.1)


def test_difference_to_ce_is_paired_by_seed_with_a_t_interval(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    write_multirun(root, "ce,dice", "10", "0,1,2")
    for seed, (ce, dice) in enumerate([(0.5, 0.6), (0.6, 0.65), (0.7, 0.9)]):
        make_run(root, seed, "ce", 10, seed, ce)
        make_run(root, 3 + seed, "dice", 10, seed, dice)
    diff = paired_differences(load_sweep(root)).iloc[0]
    assert diff["method"] == "dice" and diff["baseline"] == "ce"
    assert diff["test/macro_f1/n_pairs"] == 3
    # differences 0.10, 0.05, 0.20: mean 0.11667, sd 0.076376, t(0.975, 2) = 4.302653
    assert diff["test/macro_f1/diff"] == pytest.approx(0.116667, abs=1e-5)
    half = 4.302653 * 0.076376 / math.sqrt(3)
    assert diff["test/macro_f1/ci_low"] == pytest.approx(0.116667 - half, abs=1e-4)
    assert diff["test/macro_f1/ci_high"] == pytest.approx(0.116667 + half, abs=1e-4)


def test_unpaired_seeds_are_left_out_of_the_difference(sweep: Path) -> None:
    diffs = paired_differences(load_sweep(sweep)).set_index("rho")
    at10 = diffs.loc["10"]
    assert at10["test/macro_f1/n_pairs"] == 2  # dice seed 2 failed: seeds 0 and 1 only
    assert at10["test/macro_f1/diff"] == pytest.approx(((0.60 - 0.50) + (0.65 - 0.60)) / 2)
    assert diffs.loc["1", "test/macro_f1/n_pairs"] == 0  # no dice at ρ = 1: no made-up number


def test_compare_writes_tables_report_and_plots(sweep: Path) -> None:
    compare_sweep(sweep)
    for name in ["summary.csv", "cells.csv", "differences.csv", "report.md"]:
        assert (sweep / name).is_file()
    for png in ["macro_f1_vs_rho.png", "per_class_f1.png", "confusion_matrices.png"]:
        assert (sweep / png).read_bytes()[:4] == b"\x89PNG"
    report = (sweep / "report.md").read_text()
    assert "12 runs: 7 finished, 1 failed, 1 incomplete, 3 missing" in report
    assert "| 10 | dice | 2 (+1 failed, +0 missing) | **0.625 ± 0.035** |" in report
    assert "NonFiniteLossError" in report and "never started" in report
    assert "t interval over seeds" in report and "Holm" in report
    import pandas as pd

    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 12 and sorted(summary["status"].unique()) == [
        "failed",
        "incomplete",
        "missing",
        "ok",
    ]


def test_rotated_tails_get_a_macro_f1_per_tail_class(tmp_path: Path) -> None:
    """Seeds 0 and 2 make c the tail, seed 1 makes a the tail; a fixed tail gets no such table."""
    root = tmp_path / "sweep"
    write_multirun(root, "ce,dice", "10", "0,1,2")
    rotated = {0: (10, 5, 1), 1: (1, 10, 5), 2: (10, 5, 1)}
    for num, (loss, seed, f1) in enumerate(
        [("ce", 0, 0.5), ("ce", 1, 0.9), ("ce", 2, 0.7), ("dice", 0, 0.6), ("dice", 1, 0.8), ("dice", 2, 0.6)]
    ):
        make_run(root, num, loss, 10, seed, f1, counts=rotated[seed])
    table = tail_class_table(load_sweep(root)).set_index(["method", "tail_class"])
    assert table.loc[("ce", "c"), "n"] == 2 and table.loc[("ce", "c"), "mean"] == pytest.approx(0.6)
    assert table.loc[("ce", "a"), "mean"] == pytest.approx(0.9)
    assert table.loc[("dice", "c"), "mean"] == pytest.approx(0.6)
    compare_sweep(root)
    report = (root / "report.md").read_text()
    assert "| ρ | loss | tail = a | tail = c |" in report
    assert "| 10 | ce | 0.900 (1) | 0.600 (2) |" in report


def test_a_fixed_tail_gets_no_per_tail_table(sweep: Path) -> None:
    assert tail_class_table(load_sweep(sweep)).empty
    compare_sweep(sweep)
    assert "by tail class" not in (sweep / "report.md").read_text()


def test_a_sampler_sweep_uses_sampler_none_as_baseline(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    for num, (sampler, seed, f1) in enumerate(
        [("none", 0, 0.5), ("none", 1, 0.6), ("sqrt", 0, 0.7), ("sqrt", 1, 0.7)]
    ):
        run = make_run(root, num, "ce", 10, seed, f1)
        overrides = [f"data.sampler={sampler}", "data.imbalance_ratio=10", f"seed={seed}"]
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    sweep = load_sweep(root)
    assert sweep.method_keys == ["data.sampler"] and sweep.baseline == "none"
    assert paired_differences(sweep).iloc[0]["test/macro_f1/diff"] == pytest.approx(0.15)


def test_cli_bad_folders_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no runs in") and "multiruns" in err and len(err.splitlines()) == 1
    assert main([str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_cli_unknown_baseline_names_the_methods(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(sweep), "--baseline", "focal"]) == 2
    assert "methods: ce, dice" in capsys.readouterr().err


def test_two_sweep_folders_compare_as_one(sweep: Path, tmp_path: Path) -> None:
    extra = tmp_path / "ldam"
    make_run(extra, 0, "ldam", 10, 0, 0.55)
    (extra / "multirun.yaml").write_text("hydra: {}\n")
    both = load_sweep(sweep, extra)
    assert "ldam" in both.methods and len(both.runs) == 13


def test_methods_keeps_only_those_and_labels_an_unswept_key_by_its_value(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second grid that overrides one more key: its runs and the first grid's pair by seed."""
    longer = tmp_path / "longer"
    (longer / "multirun.yaml").parent.mkdir()
    (longer / "multirun.yaml").write_text("hydra: {}\n")
    run = make_run(longer, 0, "dice", 10, 0, 0.70)
    overrides = [*yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text()), "data.max_length=128"]
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    for old in (sweep / "9", sweep / "10", sweep / "11"):  # the first grid resolved max_length to 64
        cfg = yaml.safe_load((old / ".hydra" / "config.yaml").read_text())
        cfg["data"]["max_length"] = 64
        (old / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    config["data"]["max_length"] = 128
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))

    picked = ["loss=dice, data.max_length=64", "loss=dice, data.max_length=128"]
    both = load_sweep(sweep, longer, methods=picked, baseline=picked[0])
    assert both.methods == picked
    assert set(both.runs["method"]) == set(picked)  # ce and the never-started dice jobs are left out
    assert sorted(both.runs["status"]) == ["failed", "ok", "ok", "ok"]
    diff = paired_differences(both).set_index("rho").loc["10"]
    assert diff["method"] == picked[1] and diff["test/macro_f1/n_pairs"] == 1
    assert diff["test/macro_f1/diff"] == pytest.approx(0.70 - 0.60)

    assert main([str(sweep), str(longer), "--methods", "loss=dice, data.max_length=32"]) == 2
    err = capsys.readouterr().err
    assert "'loss=dice, data.max_length=32' is not in this sweep" in err and len(err.splitlines()) == 1


def test_the_sweep_callback_reports_a_sweep_without_its_baseline(tmp_path: Path) -> None:
    """`experiment=recipes_rho100 recipe=dice,dice_cover` (baseline ce, not run): a report all the same."""
    from omegaconf import OmegaConf

    from dicebert.sweeps.callback import SweepCallback

    root = tmp_path / "sweep"
    write_multirun(root, "dice,focal", "10", "0,1")
    for num, (loss, seed) in enumerate([("dice", 0), ("dice", 1), ("focal", 0), ("focal", 1)]):
        make_run(root, num, loss, 10, seed, 0.5 + 0.1 * num)
    SweepCallback(compare=True, baseline="ce").on_multirun_end(
        OmegaConf.create({"hydra": {"sweep": {"dir": str(root)}}})
    )
    report = (root / "report.md").read_text()
    assert "4 runs: 4 finished" in report and "No baseline" in report
    SweepCallback(compare=True, baseline="focal").on_multirun_end(
        OmegaConf.create({"hydra": {"sweep": {"dir": str(root)}}})
    )
    assert "Baseline: `focal`" in (root / "report.md").read_text()  # a baseline it ran: paired
