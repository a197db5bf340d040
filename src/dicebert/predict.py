"""Predict with a trained run: label names and class probabilities for a file or the run's own split.

``dicebert-predict <run> new.csv`` (or ``python -m dicebert.predict``). The checkpoint carries the
weights and class names; the run folder (``<run>/.hydra/config.yaml``, ``data_summary.json``) says
how to rebuild the network and tokenizer (:mod:`dicebert.inference`), so predictions use exactly the
run's model, tokenizer, ``max_length`` and probability function. ``test`` (or ``val``, ``train``)
as the input rebuilds the run's own split from its config (same seed, same split) and so
reproduces its test metrics; a file with a label column is scored too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from omegaconf import DictConfig

from dicebert.cli import report_error
from dicebert.data.sources import label_strings, read_table
from dicebert.errors import DicebertError, PredictError
from dicebert.inference import apply_probability, load_run

SPLITS = ("train", "val", "test")
log = logging.getLogger("dicebert")


@dataclasses.dataclass
class PredictConfig:
    """The options of ``dicebert-predict`` (see :func:`build_parser`)."""

    run: str  # a run folder (its best checkpoint) or a .ckpt file
    input: str  # a csv/tsv/jsonl/parquet file, or train/val/test: the run's own split
    output: str | None = None  # default: <input>.predictions.csv, or <run>/predictions_<split>.csv
    run_dir: str | None = None  # default: the run folder, or the folder above checkpoints/
    text_column: str = "text"
    label_column: str | None = "label"  # scored when present in the input
    batch_size: int | None = None  # default: the run's data.eval_batch_size
    device: str = "auto"  # auto | cpu | cuda | cuda:1 ...
    precision: str | None = None  # default: the precision the run tested in (saved in the checkpoint)
    max_length: int | None = None  # default: the run's (data_summary.json for max_length=auto)


def read_input(spec: str, cfg: DictConfig, text_column: str) -> tuple[pd.DataFrame, str | None]:
    """The rows to predict: a file's table, or the run's split rebuilt from its config.

    Returns the table and the split name (None for a file). A split comes back with ``text`` and
    ``label`` columns, exactly the rows the run trained/validated/tested on.
    """
    if spec in SPLITS:
        from hydra.utils import instantiate

        datamodule = instantiate(cfg.data)
        tables = datamodule.load_tables()  # the same seeded cleaning, splitting and subsampling
        return tables[spec].reset_index(drop=True), spec
    path = Path(spec)
    if not path.is_file():
        raise PredictError(f"input={spec} is neither a file nor one of {', '.join(SPLITS)}")
    frame = read_table(path)
    if text_column not in frame.columns:
        raise PredictError(
            f"column {text_column!r} not in {path} (columns: {', '.join(map(str, frame.columns))}); "
            "pass --text-column <name>"
        )
    return frame, None


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype that reproduces a run's ``trainer.precision`` on ``device`` (None: float32).

    bf16 on a CPU that would emulate it (about 20x slower) falls back to float32 with a warning:
    predictions then differ from the run's test only by rounding.
    """
    if "bf16" in precision:
        from dicebert.hardware import detect_cpu

        if device.type == "cpu" and not detect_cpu().native_bf16:
            log.warning("the run tested in %s; this CPU has no native bf16: predicting in float32", precision)
            return None
        return torch.bfloat16
    if precision.startswith("16"):
        return torch.float16
    return None


@torch.no_grad()
def predict_probabilities(
    net: torch.nn.Module,
    texts: Sequence[str],
    tokenizer_name: str,
    max_length: int,
    batch_size: int = 64,
    device: str = "auto",
    precision: str = "32-true",
    probability: str = "softmax",
) -> torch.Tensor:
    """Class probabilities (N × C) through the run's ``probability`` function (softmax, or sigmoid
    for ``seed_dice``), tokenized and padded per batch, in the precision of testing."""
    from transformers import DataCollatorWithPadding

    from dicebert.data.tokenization import tokenize
    from dicebert.models.encoders import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_name)
    collator = DataCollatorWithPadding(tokenizer)
    ids = tokenize(["" if pd.isna(t) else str(t) for t in texts], tokenizer, max_length)
    target = _device(device)
    net = net.to(target)
    dtype = autocast_dtype(precision, target)
    out = []
    for start in range(0, len(ids), batch_size):
        batch = collator([{"input_ids": x} for x in ids[start : start + batch_size]])
        batch = {k: v.to(target) for k, v in batch.items()}
        with torch.autocast(target.type, dtype=dtype, enabled=dtype is not None):
            logits = net(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        out.append(apply_probability(logits.float(), probability).cpu())
    if not out:
        return torch.empty(0, getattr(net, "num_classes", 0))
    return torch.cat(out)


def score(probs: torch.Tensor, labels: Sequence[Any], class_names: Sequence[str]) -> dict[str, float]:
    """The training run's test metrics (same torchmetrics) for predictions with known labels."""
    from dicebert.metrics import build_metrics
    from dicebert.reporting.run_outputs import to_float_dict

    to_id = {name: i for i, name in enumerate(class_names)}
    names = label_strings(labels)
    unknown = sorted(set(names) - set(to_id))
    if unknown:
        raise PredictError(f"labels {unknown[:5]} are not classes of this model ({', '.join(class_names)})")
    metrics = build_metrics(list(class_names), "test/")
    metrics.update(probs, torch.tensor([to_id[n] for n in names]))
    return to_float_dict(metrics.compute())


def write_table(result: pd.DataFrame, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix in (".jsonl", ".json"):
        result.to_json(output, orient="records", lines=True, force_ascii=False)
    elif output.suffix == ".parquet":
        result.to_parquet(output, index=False)
    else:
        result.to_csv(output, index=False)


def prediction_table(probs: torch.Tensor, class_names: Sequence[str]) -> pd.DataFrame:
    """``prediction``, ``confidence`` and ``prob_<class>`` columns, one row per text."""
    columns: dict[str, Any] = {
        "prediction": [class_names[i] for i in probs.argmax(-1).tolist()],
        "confidence": probs.max(-1).values.numpy(),
    }
    columns.update({f"prob_{name}": probs[:, i].numpy() for i, name in enumerate(class_names)})
    return pd.DataFrame(columns)


def predict(options: PredictConfig) -> tuple[Path, dict[str, float] | None]:
    """Write the predictions file (and ``<output>.metrics.json`` when labels are known)."""
    run = load_run(options.run, options.run_dir, options.max_length)
    cfg = run.cfg
    frame, split = read_input(options.input, cfg, options.text_column)
    text_column = "text" if split else options.text_column
    label_column = "label" if split else options.label_column
    batch_size = options.batch_size or int(cfg.data.eval_batch_size or cfg.data.batch_size)
    probs = predict_probabilities(
        run.net,
        frame[text_column].tolist(),
        run.tokenizer,
        run.max_length,
        batch_size,
        options.device,
        options.precision or run.precision,
        run.probability,
    )
    table = prediction_table(probs, run.class_names)
    result = pd.concat([frame.reset_index(drop=True), table], axis=1)
    if options.output:
        output = Path(options.output)
    elif split:
        output = run.run_dir / f"predictions_{split}.csv"
    else:
        output = Path(options.input).with_suffix(".predictions.csv")
    write_table(result, output)
    metrics = None
    if label_column and label_column in frame.columns and len(frame):
        metrics = score(probs, frame[label_column].tolist(), run.class_names)
        output.with_name(output.stem + ".metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return output, metrics


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dicebert-predict",
        description="Predict labels and class probabilities with a trained run, for a file or the run's "
        "own split; a label column is scored with the run's test metrics.",
    )
    parser.add_argument("run", help="a run folder (uses its best checkpoint) or a .ckpt file")
    parser.add_argument(
        "input", help="a csv/tsv/jsonl/parquet file, or train/val/test (the run's own split, rebuilt)"
    )
    parser.add_argument(
        "--output",
        help="where to write (csv/jsonl/parquet; default: <input>.predictions.csv, "
        "or <run>/predictions_<split>.csv)",
    )
    parser.add_argument("--run-dir", help="the run folder, when the checkpoint was moved out of it")
    parser.add_argument("--text-column", default="text", help="the input's text column (default: text)")
    parser.add_argument(
        "--label-column", default="label", help="scored when the input has it (default: label)"
    )
    parser.add_argument("--batch-size", type=int, help="default: the run's data.eval_batch_size")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:1 (default: auto)")
    parser.add_argument("--precision", help="e.g. 32-true (default: the precision the run tested in)")
    parser.add_argument("--max-length", type=int, help="tokens per text (default: the run's)")
    return parser


def parse_options(argv: Sequence[str]) -> PredictConfig:
    """Command-line arguments → :class:`PredictConfig` (argparse exits with a usage line on bad ones)."""
    args = build_parser().parse_args(list(argv))
    return PredictConfig(**vars(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (``dicebert-predict``)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    options = parse_options(sys.argv[1:] if argv is None else argv)
    try:
        output, metrics = predict(options)
    except DicebertError as err:  # bad options, data, model or checkpoint: one line
        return report_error(err)
    print(f"predictions: {output}")
    if metrics is not None:
        print(
            "  ".join(
                f"{k}={metrics[f'test/{k}']:.4f}" for k in ("macro_f1", "accuracy", "balanced_accuracy")
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
