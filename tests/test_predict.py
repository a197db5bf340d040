"""Prediction from a checkpoint: label names, probabilities, and the run's own test metrics back."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import FAST  # tests/ is on sys.path (pytest's prepend import mode)

from dicebert import hardware
from dicebert.hardware import ALLOW_SLOW_BF16, CpuFeatures
from dicebert.predict import PredictConfig, PredictError, main, parse_options, predict
from tests.helpers.runs import train_saved_run


def finished_run(out: Path, *overrides: str) -> Path:
    """One finished run with checkpoints (tiny model, two epochs), its config saved as Hydra does."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DICEBERT_CACHE", str(out.parent / "cache"))
        env.setenv("HF_HUB_OFFLINE", "1")
        env.setenv(ALLOW_SLOW_BF16, "1")  # the tiny model is cheap in bf16 even where it is emulated
        base = [*FAST, "loss=ce", "trainer.max_epochs=2", "data.imbalance_ratio=1"]
        return train_saved_run([*base, *overrides], out)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run at the default precision (bf16 or float32, whichever this CPU runs natively).

    It keeps its full last.ckpt too (``keep_last_ckpt=true``), to predict from that as well.
    """
    return finished_run(tmp_path_factory.mktemp("predict") / "run", "keep_last_ckpt=true")


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run in bf16-mixed on any CPU."""
    return finished_run(tmp_path_factory.mktemp("predict_bf16") / "run", "trainer.precision=bf16-mixed")


def best_ckpt(run: Path) -> Path:
    (ckpt,) = (run / "checkpoints").glob("best-*.ckpt")
    return ckpt


def test_predicting_the_test_split_reproduces_the_run(trained_run: Path) -> None:
    output, metrics = predict(PredictConfig(run=str(best_ckpt(trained_run)), input="test"))
    assert output == trained_run / "predictions_test.csv"
    recorded = json.loads((trained_run / "metrics.json").read_text())
    for key in TEST_KEYS:
        assert metrics[key] == pytest.approx(recorded[key], abs=1e-6), key
    table = pd.read_csv(output)
    names = list(json.loads((trained_run / "label_map.json").read_text()).values())
    assert len(table) == 12 and set(table["prediction"]) <= set(names)
    probs = table[[f"prob_{n}" for n in names]]
    assert probs.sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-5)
    assert (table["prediction"] == probs.idxmax(axis=1).str[len("prob_") :]).all()
    saved = json.loads((trained_run / "predictions_test.metrics.json").read_text())
    assert saved["test/macro_f1"] == pytest.approx(recorded["test/macro_f1"], abs=1e-6)


TEST_KEYS = ["test/macro_f1", "test/accuracy", "test/balanced_accuracy", "test/ece"]


def test_a_bf16_run_is_predicted_in_bf16_and_reproduces_its_test(
    bf16_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint says the run tested in bf16-mixed; prediction uses it (float32 would not match)."""
    assert torch.load(best_ckpt(bf16_run), weights_only=True)["precision"] == "bf16-mixed"
    native = CpuFeatures("test CPU", frozenset({"avx512_bf16"}), "AVX512")
    monkeypatch.setattr(hardware, "detect_cpu", lambda: native)
    recorded = json.loads((bf16_run / "metrics.json").read_text())
    _, metrics = predict(PredictConfig(run=str(best_ckpt(bf16_run)), input="test"))
    assert metrics is not None
    for key in TEST_KEYS:
        assert metrics[key] == pytest.approx(recorded[key], abs=1e-6), key
    _, fp32 = predict(
        PredictConfig(
            run=str(best_ckpt(bf16_run)),
            input="test",
            precision="32-true",
            output=str(tmp_path / "p.csv"),
        )
    )
    assert fp32 is not None and abs(fp32["test/ece"] - recorded["test/ece"]) > 1e-6  # precision matters


def test_a_bf16_run_on_a_cpu_without_bf16_is_predicted_in_float32(
    bf16_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hardware, "detect_cpu", lambda: CpuFeatures("old CPU", frozenset({"avx2"}), "AVX2"))
    ckpt = str(best_ckpt(bf16_run))
    with caplog.at_level(logging.WARNING, logger="dicebert"):
        _, fallback = predict(PredictConfig(run=ckpt, input="test", output=str(tmp_path / "a.csv")))
    assert "no native bf16: predicting in float32" in caplog.text
    _, fp32 = predict(
        PredictConfig(run=ckpt, input="test", precision="32-true", output=str(tmp_path / "b.csv"))
    )
    assert fallback == fp32


@pytest.mark.slow
def test_cli_predicts_a_jsonl_file_without_labels(trained_run: Path, tmp_path: Path) -> None:
    source = tmp_path / "new.jsonl"
    rows = [
        {"id": 1, "body": "Shares fell as the bank cut its profit forecast."},
        {"id": 2, "body": "A late goal won the cup."},
    ]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dicebert.predict",
            str(trained_run / "checkpoints" / "last.ckpt"),  # an explicit full checkpoint
            str(source),
            "--text-column",
            "body",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in result] == [1, 2]
    assert all("prediction" in r and "prob_tech" in r and 0 <= r["confidence"] <= 1 for r in result)
    assert not (tmp_path / "out.metrics.json").exists()  # no labels: nothing to score


def test_a_labelled_csv_is_scored(trained_run: Path, tmp_path: Path) -> None:
    source = tmp_path / "labelled.csv"
    pd.DataFrame(
        {"text": ["Stocks rallied.", "The band toured."], "label": ["business", "entertainment"]}
    ).to_csv(source, index=False)
    output, metrics = predict(PredictConfig(run=str(best_ckpt(trained_run)), input=str(source)))
    assert output == tmp_path / "labelled.predictions.csv"
    assert metrics is not None and 0.0 <= metrics["test/accuracy"] <= 1.0


def test_bad_options_are_one_clear_line(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_options([str(trained_run)])
    assert exc.value.code == 2 and "the following arguments are required: input" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_options([str(trained_run), "test", "--inptu", "x"])
    assert "unrecognized arguments: --inptu x" in capsys.readouterr().err
    with pytest.raises(PredictError, match="neither a file nor one of train, val, test"):
        predict(PredictConfig(run=str(best_ckpt(trained_run)), input="tset"))
    stray = tmp_path / "model.ckpt"
    stray.write_bytes((trained_run / "checkpoints" / "last.ckpt").read_bytes())
    with pytest.raises(PredictError, match=r"no \.hydra/config\.yaml .*\(run_dir\)"):
        predict(PredictConfig(run=str(stray), input="test"))
    (tmp_path / "x.csv").write_text("body\nhello\n")
    with pytest.raises(PredictError, match=r"column 'text' not in .*columns: body.*--text-column"):
        predict(PredictConfig(run=str(stray), input=str(tmp_path / "x.csv"), run_dir=str(trained_run)))


def test_cli_unreadable_checkpoint_is_one_line(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Any dicebert error ends the CLI in one line (here a file that is no torch checkpoint)."""
    broken = tmp_path / "checkpoints" / "last.ckpt"
    broken.parent.mkdir()
    broken.write_text("not a checkpoint")
    assert main([str(broken), "test", "--run-dir", str(trained_run)]) == 2
    message = capsys.readouterr().err
    assert message.startswith(f"error: cannot read {broken}: ") and message.count("\n") == 1
