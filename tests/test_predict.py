"""Prediction from a checkpoint: label names, probabilities, and the run's own test metrics back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import FAST  # tests/ is on sys.path (pytest's prepend import mode)

from dicebert.predict import PredictConfig, PredictError, main, parse_options, predict
from dicebert.train import train


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished run with checkpoints (tiny model, two epochs), its config saved as Hydra does."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from dicebert.train import config_dir

    out = tmp_path_factory.mktemp("predict") / "run"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DICEBERT_CACHE", str(out.parent / "cache"))
        env.setenv("HF_HUB_OFFLINE", "1")
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            overrides = [*FAST, "loss=ce", "trainer.max_epochs=2", "data.imbalance_ratio=1"]
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
        with open_dict(cfg):
            cfg.paths.output_dir = str(out)
            cfg.hydra.runtime.output_dir = str(out)
        HydraConfig.instance().set_config(cfg)
        (out / ".hydra").mkdir(parents=True)
        OmegaConf.save({k: v for k, v in cfg.items() if k != "hydra"}, out / ".hydra" / "config.yaml")
        train(cfg)
        GlobalHydra.instance().clear()
    return out


def best_ckpt(run: Path) -> Path:
    (ckpt,) = (run / "checkpoints").glob("best-*.ckpt")
    return ckpt


def test_predicting_the_test_split_reproduces_the_run(trained_run: Path) -> None:
    output, metrics = predict(PredictConfig(ckpt_path=str(best_ckpt(trained_run)), input="test"))
    assert output == trained_run / "predictions_test.csv"
    recorded = json.loads((trained_run / "metrics.json").read_text())
    for key in ["test/macro_f1", "test/accuracy", "test/balanced_accuracy", "test/ece"]:
        assert metrics[key] == pytest.approx(recorded[key], abs=1e-6), key
    table = pd.read_csv(output)
    names = list(json.loads((trained_run / "label_map.json").read_text()).values())
    assert len(table) == 12 and set(table["prediction"]) <= set(names)
    probs = table[[f"prob_{n}" for n in names]]
    assert probs.sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-5)
    assert (table["prediction"] == probs.idxmax(axis=1).str[len("prob_") :]).all()
    saved = json.loads((trained_run / "predictions_test.metrics.json").read_text())
    assert saved["test/macro_f1"] == pytest.approx(recorded["test/macro_f1"], abs=1e-6)


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
            f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}",
            f"input={source}",
            "text_column=body",
            f"output={out}",
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
    output, metrics = predict(PredictConfig(ckpt_path=str(best_ckpt(trained_run)), input=str(source)))
    assert output == tmp_path / "labelled.predictions.csv"
    assert metrics is not None and 0.0 <= metrics["test/accuracy"] <= 1.0


def test_bad_options_are_one_clear_line(trained_run: Path, tmp_path: Path) -> None:
    with pytest.raises(PredictError, match="ckpt_path is required"):
        parse_options(["input=test"])
    with pytest.raises(PredictError, match="bad argument 'inptu=x'; use key=value with keys: ckpt_path"):
        parse_options(["ckpt_path=x", "inptu=x"])
    with pytest.raises(PredictError, match="neither a file nor one of train, val, test"):
        predict(PredictConfig(ckpt_path=str(best_ckpt(trained_run)), input="tset"))
    stray = tmp_path / "model.ckpt"
    stray.write_bytes((trained_run / "checkpoints" / "last.ckpt").read_bytes())
    with pytest.raises(PredictError, match=r"no .hydra/config.yaml .* pass run_dir="):
        predict(PredictConfig(ckpt_path=str(stray), input="test"))
    (tmp_path / "x.csv").write_text("body\nhello\n")
    with pytest.raises(PredictError, match=r"column 'text' not in .*columns: body.*text_column="):
        predict(PredictConfig(ckpt_path=str(stray), input=str(tmp_path / "x.csv"), run_dir=str(trained_run)))


def test_cli_unreadable_checkpoint_is_one_line(trained_run: Path, tmp_path: Path) -> None:
    """Any dicebert error ends the CLI in one line (here a file that is no torch checkpoint)."""
    broken = tmp_path / "checkpoints" / "last.ckpt"
    broken.parent.mkdir()
    broken.write_text("not a checkpoint")
    with pytest.raises(SystemExit) as exc:
        main([f"ckpt_path={broken}", "input=test", f"run_dir={trained_run}"])
    message = str(exc.value.code)
    assert message.startswith(f"error: cannot read {broken}: ") and "\n" not in message
