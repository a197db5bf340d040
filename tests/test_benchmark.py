"""The benchmark's machinery (benchmarks/, outside the package): clocks, phases, verdicts, a tiny smoke run.

The benchmark itself (minutes, real MiniLM) stays out of the suite; these check that it measures
what it says, on small work, and produces its table and JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # benchmarks/ is a top-level folder of the checkout, not installed

from benchmarks import common, cpu, gpu, runs, sections  # noqa: E402
from benchmarks.clock import phases  # noqa: E402
from benchmarks.hf_trainer import NetWithLoss, compare  # noqa: E402
from dicebert.hardware import CpuFeatures  # noqa: E402

TINY = ["model=tiny", "data.limit_per_class=24", "data.max_length=32", "data.imbalance_ratio=2"]


def test_step_clock_leaves_out_warmup_and_counts_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    times = iter([10.0, 11.0, 11.5, 12.0, 12.5, 14.5])  # step ends: 2 warm-up, then 4 measured
    monkeypatch.setattr(common.time, "perf_counter", lambda: next(times))
    clock = common.StepClock(warmup=2, steps=4)
    for size in (16, 16, 16, 16, 16, 8):
        clock.tick(size)
    assert clock.samples_per_s() == pytest.approx((16 + 16 + 16 + 8) / (14.5 - 11.0))


def test_step_clock_refuses_too_few_steps() -> None:
    clock = common.StepClock(warmup=1, steps=3)
    clock.tick(4)
    clock.tick(4)
    with pytest.raises(RuntimeError, match="fewer than warm-up"):
        clock.samples_per_s()
    with pytest.raises(ValueError, match="warmup >= 1"):
        common.StepClock(warmup=0, steps=3)


def test_phases_split_a_run_and_sum_to_its_wall_time() -> None:
    stamps = {"callbacks_built": 108.0, "first_step": 110.0, "train_end": 150.0, "test_start": 151.0}
    stamps |= {"test_end": 154.0, "atexit": 156.0}
    got = phases(100.0, 157.5, stamps)
    assert got["startup_s"] == 8.0 and got["setup_to_first_step_s"] == 2.0
    assert got["train_loop_s"] == 40.0 and got["test_loop_s"] == 3.0 and got["exit_s"] == 1.5
    assert got["total_s"] == 57.5 and got["outside_loops_s"] == 57.5 - 43.0
    parts = [v for k, v in got.items() if k not in ("total_s", "outside_loops_s")]
    assert sum(parts) == pytest.approx(got["total_s"])


@pytest.mark.parametrize(
    ("fp32", "bf16", "verdict"),
    [
        ([0.108, 0.108, 0.108], [0.108, 0.108, 0.108], "inconclusive"),  # one class predicted: proves nothing
        ([0.95, 0.96, 0.94], [0.95, 0.95, 0.96], "same"),
        ([0.95, 0.96, 0.955], [0.90, 0.91, 0.90], "worse"),
    ],
)
def test_bf16_quality_verdict(fp32: list[float], bf16: list[float], verdict: str) -> None:
    assert sections.bf16_verdict(fp32, bf16).startswith(verdict)


def test_precision_section_is_skipped_without_native_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sections, "detect_cpu", lambda: CpuFeatures("AVX2 box", frozenset({"avx2"}), "AVX2"))
    result = sections.measure_precision(sections.Settings.small(tmp_path))
    assert result["skipped"] == "skipped: no native bf16" and "emulated" in result["cpu_detected"]


def test_precision_section_measures_both_and_stops_at_the_deadline(tmp_path: Path) -> None:
    common.silence()
    settings = sections.Settings.small(tmp_path)
    settings.force_bf16, settings.precision_seeds = True, (0, 1)  # tiny sizes: emulated bf16 is fine
    settings.deadline = 0.0  # already passed: the first seed runs, the second is not started
    result = sections.measure_precision(settings)
    assert result["shortened"] == "shortened: 1 of 2 seeds fit the time budget"
    assert len(result["fp32_test_macro_f1"]) == len(result["bf16_test_macro_f1"]) == 1
    speedup = result["bf16_samples_per_s"] / result["fp32_samples_per_s"]
    assert result["bf16_speedup"] == pytest.approx(speedup)
    assert result["quality"].startswith("inconclusive")  # one tiny epoch learns nothing: no false "same"


def test_hf_trainer_side_gets_the_same_initial_weights_and_work(tmp_path: Path) -> None:
    pytest.importorskip("accelerate", reason="the transformers Trainer needs the bench extra")
    common.silence()
    cfg = common.compose_config(TINY, tmp_path / "cache")
    dm, first = common.build(cfg)
    second = common.build_module(cfg, dm)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name  # both sides start from the same weights
    batch = next(iter(dm.train_dataloader()))
    wrapped = NetWithLoss(first.net, first.loss_fn).eval()
    first.eval()
    out = wrapped(**batch)
    torch.testing.assert_close(out["logits"], first(batch))
    torch.testing.assert_close(out["loss"], first.loss_fn(first(batch), batch["labels"]))

    result = compare(cfg, dm, warmup=1, steps=2, rounds=1, work_dir=tmp_path)
    for side in ("project", "hf_trainer"):
        figures = result[side]
        assert figures["train_samples_per_s"] > 0 and figures["eval_samples_per_s"] > 0
        assert 0 <= figures["test_macro_f1"] <= 1
    ratio = result["project"]["train_samples_per_s"] / result["hf_trainer"]["train_samples_per_s"]
    assert result["trainer_ratio"] == pytest.approx(ratio)


@pytest.mark.slow
def test_benchmark_smoke_produces_its_table_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("accelerate", reason="the transformers Trainer needs the bench extra")
    out = tmp_path / "bench.json"
    args = ["--tiny", "--sections", "trainer,precision,padding,startup,default_run"]
    assert cpu.main([*args, "--work-dir", str(tmp_path / "w"), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    for row in ("| vs transformers Trainer", "| padding (headlines)", "| fixed cost per run", "| memory"):
        assert row in table
    results = json.loads(out.read_text())
    for key in ("trainer_ratio", "trainer_eval_ratio", "peak_rss_mb", "fixed_cost_s", "padding_speedup"):
        assert results[key] > 0, key
    assert "bf16_speedup" in results and "default_run_seconds" in results
    startup = results["startup"]
    assert 0 < startup["phases"]["train_loop_s"] < startup["seconds"]  # the phase clock ran in the child
    assert startup["test_macro_f1"] is not None  # a real run: it wrote metrics.json
    breakdown = startup["breakdown"]  # where the fixed cost goes, measured beside it
    assert 0 < breakdown["imports_s"] < startup["phases"]["outside_loops_s"]
    assert breakdown["outside_loops_csv_only_s"] > 0
    assert results["fixed_cost_imports_s"] == breakdown["imports_s"]
    assert (
        0 < results["fixed_cost_in_sweep_s"] == breakdown["in_sweep_s"] < startup["phases"]["outside_loops_s"]
    )
    assert "of it: imports / W&B logger" in table
    padding = results["padding"]  # measured, not assumed: padding to max_length wastes the most
    assert padding["fixed_real_token_fraction"] < padding["dynamic_real_token_fraction"]
    assert padding["dynamic_real_token_fraction"] <= padding["grouped_real_token_fraction"]


@pytest.mark.slow
def test_sweep_section_runs_both_launchers(tmp_path: Path) -> None:
    result = runs.measure_sweep(sections.Settings.small(tmp_path))
    assert result["runs"] == 2 and result["basic_runs_per_hour"] > 0 and result["parallel_runs_per_hour"] > 0


def test_benchmark_bad_sections_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cpu.main(["--sections", "trainer,cache"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown ['cache']" in err
    with pytest.raises(SystemExit):
        cpu.main(["--sections", "trainer", "--steps", "0"])
    assert capsys.readouterr().err.strip() == "error: --steps must be >= 1; got 0 (see --help)"


def test_find_max_batch_doubles_until_it_does_not_fit() -> None:
    tried: list[int] = []

    def fits(batch: int) -> bool:
        tried.append(batch)
        return batch <= 100

    assert gpu.find_max_batch(fits, 8, 1024) == 64
    assert tried == [8, 16, 32, 64, 128]
    assert gpu.find_max_batch(lambda b: True, 8, 100) == 64  # the cap is never exceeded
    assert gpu.find_max_batch(lambda b: False, 8, 100) == 0


def test_gpu_bench_uses_the_product_module_and_catches_only_oom(monkeypatch: pytest.MonkeyPatch) -> None:
    from dicebert.models import ClassifierModule

    bench = gpu.Bench(tiny=True, device=torch.device("cpu"), seq_len=8, bf16=False)
    assert isinstance(bench.module, ClassifierModule)
    flops = bench.flops_per_step(2)
    assert flops > 0 and bench.flops_per_step(4) == pytest.approx(2 * flops, rel=0.01)  # linear in batch
    real_step = bench.step

    def step(batch: dict[str, torch.Tensor]) -> None:
        if len(batch["labels"]) > 16:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        real_step(batch)

    monkeypatch.setattr(bench, "step", step)
    assert gpu.find_max_batch(bench.fits, 2, 1024) == 16

    def broken(_: dict[str, torch.Tensor]) -> None:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(bench, "step", broken)
    with pytest.raises(RuntimeError, match="shapes"):
        bench.fits(2)


def test_gpu_script_logic_on_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gpu.json"
    args = ["--device", "cpu", "--tiny", "--seq-len", "16", "--start-batch", "2", "--max-batch", "4"]
    args += ["--min-run-time", "0.05", "--warmup", "0", "--compile-warmup", "1", "--compile-backend", "eager"]
    assert gpu.main([*args, "--peak-tflops", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["batch_size"] == 4 and result["seq_len"] == 16 and result["peak_tflops"] == 2.0
    for mode in ("eager", "compile"):
        run = result["runs"][mode]
        assert run["tokens_per_s"] == pytest.approx(run["samples_per_s"] * 16)
        assert run["mfu"] == pytest.approx(result["flops_per_step"] / run["step_s"] / 2e12)
    table = capsys.readouterr().out
    assert "| eager" in table and "| compile" in table and "peak 2 TFLOP/s" in table


def test_gpu_script_bad_input_is_one_line() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_benchmark.py"), "--device", "cpu", "--seq-len", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --seq-len must be >= 1; got 0 (see --help)"


def test_sections_past_the_time_budget_are_skipped_and_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sections that would run are skipped; those that only read a kept measurement still report it."""
    monkeypatch.setattr(runs, "LAST_RHO100_GRID", tmp_path / "last_grid.json")
    monkeypatch.setattr(runs, "LAST_DEFAULT_RUN", tmp_path / "last_run.json")
    out = tmp_path / "bench.json"
    sections = "trainer,sweep,default_run,rho100_grid"
    args = ["--tiny", "--sections", sections, "--budget-s", "0", "--out", str(out)]
    assert cpu.main([*args, "--work-dir", str(tmp_path / "w")]) == 0
    results = json.loads(out.read_text())
    for name in ("trainer", "sweep"):
        assert results[name]["skipped"].startswith("skipped: the 0 s budget was spent"), name
    for name in ("default_run", "rho100_grid"):  # nothing kept here yet: they say so, not "budget"
        assert "never measured" in results[name]["skipped"], name
    assert results["trainer_ratio"] is None and results["runs_per_hour_tiny_grid"] is None
    table = capsys.readouterr().out
    assert "| trainer " in table and "| sweep " in table and "budget was spent" in table


def test_rho100_grid_throughput_is_read_from_a_grid_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--rho100-sweep`` reads a finished grid's runs/hour; later runs report that measurement."""
    monkeypatch.setattr(runs, "LAST_RHO100_GRID", tmp_path / "last.json")
    assert "never measured" in runs.rho100_grid(None)["skipped"]
    grid = tmp_path / "grid"
    for num, (begin, end) in enumerate([(0.0, 300.0), (0.0, 320.0), (300.0, 600.0)]):
        job = grid / str(num)
        (job / ".hydra").mkdir(parents=True)
        for name, stamp in ((".hydra/config.yaml", begin), ("metrics.json", end)):
            (job / name).write_text("{}")
            os.utime(job / name, (1e6 + stamp, 1e6 + stamp))
    (grid / "multirun.yaml").write_text(
        "hydra:\n  launcher:\n"
        "    _target_: hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher\n"
        "    n_jobs: 2\n"
    )
    measured = runs.rho100_grid([grid])
    assert measured["runs"] == 3 and measured["runs_per_hour"] == pytest.approx(3 * 3600 / 600)
    assert measured["launcher"] == "JoblibLauncher n_jobs=2"
    assert measured["source"] == "read from the given grid"
    kept = runs.rho100_grid(None)
    assert kept["runs_per_hour"] == measured["runs_per_hour"] and kept["source"].startswith("last measured")
    assert cpu.headline({"rho100_grid": kept})["runs_per_hour_rho100"] == kept["runs_per_hour"]
    with pytest.raises(RuntimeError, match="no finished run under"):
        runs.rho100_grid([tmp_path / "grid" / "0" / ".hydra"])
