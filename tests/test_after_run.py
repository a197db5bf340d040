"""After the run, on a user's own CSV: predict, the Python API and the Hugging Face export.

The run is trained as the README's own-data command would (``data=files``, ``max_length=auto``),
with a weights-only best checkpoint and no ``last.ckpt``: what a finished run folder keeps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import dicebert
from dicebert.errors import ExportError, PredictError
from dicebert.export import export_run
from dicebert.export import main as export_main
from dicebert.inference import load_run
from dicebert.predict import main as predict_main
from tests.helpers.runs import files_run, split_texts, user_csv

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def own_data_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Float32 (so a float32 export can match to 1e-4), weights-only best checkpoint, last.ckpt removed."""
    tmp = tmp_path_factory.mktemp("own_data")
    csv = user_csv(tmp / "mine.csv")
    run = files_run(
        tmp / "run", csv, "trainer.precision=32-true", "++callbacks.model_checkpoint.save_weights_only=true"
    )
    (run / "checkpoints" / "last.ckpt").unlink(missing_ok=True)  # a finished run keeps no resume point
    return run


def run_test_probabilities(run: Path, probability: str = "softmax") -> np.ndarray:
    """The probabilities the run scored its test split with (its saved test logits)."""
    with np.load(run / "logits.npz") as saved:
        logits = torch.from_numpy(saved["test_logits"])
    return (torch.sigmoid(logits) if probability == "sigmoid" else torch.softmax(logits, -1)).numpy()


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "DICEBERT_CACHE": str(tmp / "cache")}


def test_the_run_resolved_max_length_auto_and_keeps_only_a_weights_only_best(own_data_run: Path) -> None:
    summary = json.loads((own_data_run / "data_summary.json").read_text())
    assert summary["max_length"]["auto"] is True
    (best,) = (own_data_run / "checkpoints").iterdir()
    state = torch.load(best, map_location="cpu", weights_only=True)
    assert best.name.startswith("best-") and "optimizer_states" not in state  # weights only
    assert load_run(own_data_run).max_length == summary["max_length"]["value"]


@pytest.mark.slow
def test_predict_cli_on_the_run_folder(own_data_run: Path, tmp_path: Path) -> None:
    """The installed command's module on a run folder (``max_length=auto`` read from its outputs)."""
    new = tmp_path / "new.csv"
    pd.DataFrame({"body": ["Shares fell as the bank cut its forecast.", "A late goal won the cup."]}).to_csv(
        new, index=False
    )
    command = [sys.executable, "-m", "dicebert.predict", str(own_data_run), str(new), "--text-column", "body"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=_env(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_csv(tmp_path / "new.predictions.csv")
    assert len(table) == 2 and {"body", "prediction", "confidence", "prob_sports"} <= set(table.columns)


def test_predicting_the_test_split_reproduces_the_runs_metrics(own_data_run: Path) -> None:
    assert predict_main([str(own_data_run), "test"]) == 0
    recorded = json.loads((own_data_run / "metrics.json").read_text())
    scored = json.loads((own_data_run / "predictions_test.metrics.json").read_text())
    for key in ("test/macro_f1", "test/accuracy", "test/ece"):
        assert scored[key] == pytest.approx(recorded[key], abs=1e-6), key


def test_predict_bad_arguments_are_one_line(
    own_data_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, expected in [
        ([str(tmp_path / "nowhere"), "test"], "does not exist; pass a run folder"),
        ([str(tmp_path), "test"], "no checkpoints/best-*.ckpt or last.ckpt in"),
        ([str(own_data_run), "tset"], "neither a file nor one of train, val, test"),
    ]:
        assert predict_main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
    with pytest.raises(SystemExit) as exc:
        predict_main([str(own_data_run)])
    assert exc.value.code == 2 and "the following arguments are required: input" in capsys.readouterr().err


def test_python_api_predicts_as_the_run_scored(own_data_run: Path) -> None:
    clf = dicebert.load(own_data_run, device="cpu")
    names = list(json.loads((own_data_run / "label_map.json").read_text()).values())
    assert clf.classes == names and clf.precision == "32-true"
    test = split_texts(own_data_run)
    table = clf.predict(test["text"].tolist())
    assert list(table.columns) == ["prediction", "confidence", *(f"prob_{n}" for n in names)]
    got = table[[f"prob_{n}" for n in names]].to_numpy()
    np.testing.assert_allclose(got, run_test_probabilities(own_data_run), atol=1e-5)
    assert (table["prediction"] == [names[i] for i in got.argmax(1)]).all()
    one = clf.predict("Shares fell as the bank cut its forecast.")
    assert len(one) == 1 and one["prediction"].iloc[0] in names
    (ckpt,) = (own_data_run / "checkpoints").glob("best-*.ckpt")
    from_ckpt = dicebert.load(ckpt, device="cpu", precision="32-true")
    np.testing.assert_allclose(from_ckpt.predict_proba(test["text"].head(3)), got[:3], atol=1e-6)


#: Runs in a fresh interpreter where importing dicebert fails, as on a machine without it.
PIPELINE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import importlib.abc

    class NoDicebert(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "dicebert":
                raise ImportError("dicebert is not installed here")
            return None

    sys.meta_path.insert(0, NoDicebert())
    from transformers import pipeline

    folder, texts_file, out_file, remote = sys.argv[1:5]
    clf = pipeline("text-classification", model=folder, trust_remote_code=remote == "1",
                   truncation=True, top_k=None, device="cpu")
    texts = json.load(open(texts_file))
    order = [clf.model.config.id2label[i] for i in range(clf.model.config.num_labels)]
    rows = [{d["label"]: d["score"] for d in scores} for scores in clf(texts)]
    json.dump({"probs": [[row[name] for name in order] for row in rows], "classes": order,
               "dicebert_loaded": any(m.split(".")[0] == "dicebert" for m in sys.modules)},
              open(out_file, "w"))
    """
)


def pipeline_probabilities(folder: Path, texts: list[str], tmp: Path, remote: bool) -> dict:
    (tmp / "texts.json").write_text(json.dumps(texts))
    (tmp / "pipe.py").write_text(PIPELINE_SCRIPT)
    done = subprocess.run(
        [
            sys.executable,
            str(tmp / "pipe.py"),
            str(folder),
            str(tmp / "texts.json"),
            str(tmp / "out.json"),
            "1" if remote else "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp,  # not the repository: nothing of dicebert on the path
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp / "out.json").read_text())


@pytest.mark.slow
def test_export_loads_in_a_plain_pipeline_and_matches_the_run(
    own_data_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hf"
    done = subprocess.run(
        [sys.executable, "-m", "dicebert.export", str(own_data_run), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "modeling_dicebert.py"} <= {
        p.name for p in out.iterdir()
    }
    config = json.loads((out / "config.json").read_text())
    names = list(json.loads((own_data_run / "label_map.json").read_text()).values())
    assert (
        config["id2label"] == {str(i): n for i, n in enumerate(names)}
        and config["dicebert_pooling"] == "mean"
    )
    assert config["problem_type"] == "single_label_classification"  # dice trains softmax probabilities
    test = split_texts(own_data_run)
    result = pipeline_probabilities(out, test["text"].tolist(), tmp_path, remote=True)
    assert result["classes"] == names and not result["dicebert_loaded"]
    np.testing.assert_allclose(np.array(result["probs"]), run_test_probabilities(own_data_run), atol=1e-4)

    assert export_main([str(own_data_run), str(out)]) == 2  # never over an earlier export
    assert capsys.readouterr().err == f"error: {out} exists and is not empty; pass a new folder\n"


def test_model_card_shows_the_runs_figures(own_data_run: Path, tmp_path: Path) -> None:
    card = (export_run(load_run(own_data_run), tmp_path / "hf") / "README.md").read_text()
    metrics = json.loads((own_data_run / "metrics.json").read_text())
    summary = json.loads((own_data_run / "data_summary.json").read_text())
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: text-classification\n")
    assert f"| macro_f1 | {metrics['test/macro_f1']:.4f} |" in card
    for name, count in summary["class_counts"]["train"].items():
        test_count = summary["class_counts"]["test"][name]
        assert (
            f"| {name} | {count} | " in card
            and f" | {test_count} | {metrics[f'test/f1/{name}']:.4f} |" in card
        )
    assert "loss: `dice`; seed: 0" in card and "python train.py data=files" in card
    assert "trust_remote_code=True" in card and f"at {load_run(own_data_run).max_length} tokens" in card
    if metrics["health/never_predicted"]:  # the tiny run collapses: the card must say so
        assert "## Warnings" in card and "never correctly predicts" in card


@pytest.mark.slow
def test_a_pooler_run_with_sigmoid_probabilities_exports_to_the_stock_class(tmp_path: Path) -> None:
    """BERT's pooler + linear head is stock BertForSequenceClassification; seed_dice's sigmoids carry over."""
    run = files_run(
        tmp_path / "run",
        user_csv(tmp_path / "mine.csv", per_class=12),
        "trainer.precision=32-true",
        "model.net.pooling=pooler",
        "loss=seed_dice",
    )
    clf = dicebert.load(run, device="cpu")
    assert clf.run.probability == "sigmoid"
    out = clf.export(tmp_path / "hf")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"] and "auto_map" not in config
    assert config["problem_type"] == "multi_label_classification"
    assert not (out / "modeling_dicebert.py").exists()
    texts = split_texts(run)["text"].tolist()
    result = pipeline_probabilities(out, texts, tmp_path, remote=False)
    want = run_test_probabilities(run, "sigmoid")
    np.testing.assert_allclose(np.array(result["probs"]), want, atol=1e-4)
    np.testing.assert_allclose(clf.predict_proba(texts), want, atol=1e-5)


def test_unusable_runs_are_refused_in_one_line(own_data_run: Path, tmp_path: Path) -> None:
    with pytest.raises(PredictError, match=r"no \.hydra/config\.yaml"):
        stray = tmp_path / "checkpoints"
        stray.mkdir()
        (ckpt,) = (own_data_run / "checkpoints").glob("best-*.ckpt")
        (stray / "best.ckpt").write_bytes(ckpt.read_bytes())
        dicebert.load(stray / "best.ckpt")
    clf = dicebert.load(stray / "best.ckpt", run_dir=own_data_run)  # a moved checkpoint, with its run
    assert clf.classes == load_run(own_data_run).class_names
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "x").write_text("")
    with pytest.raises(ExportError, match="exists and is not empty"):
        clf.export(occupied)
