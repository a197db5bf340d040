"""Predict with a trained run: label names and class probabilities for a file or the run's own split.

``python -m dicebert.predict ckpt_path=<run>/checkpoints/best-*.ckpt input=new.csv`` (or the
``dicebert-predict`` console script). The checkpoint carries the weights and class names; the run
folder beside it (``<run>/.hydra/config.yaml``) says how to rebuild the network and tokenizer, so
predictions use exactly the run's model, tokenizer and ``max_length``. ``input=test`` (or ``val``)
rebuilds the run's own split from its config (same seed, same split) and so reproduces its test
metrics; a file with a label column is scored too.
"""

from __future__ import annotations

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
from omegaconf import DictConfig, OmegaConf, open_dict

from dicebert.data.sources import label_strings, read_table
from dicebert.errors import DicebertError, PredictError

SPLITS = ("train", "val", "test")
log = logging.getLogger("dicebert")


@dataclasses.dataclass
class PredictConfig:
    """Options, given as ``key=value`` like the training command."""

    ckpt_path: str = "???"
    input: str = "???"  # a csv/tsv/jsonl/parquet file, or train/val/test: the run's own split
    output: str | None = None  # default: <input>.predictions.csv, or <run>/predictions_<split>.csv
    run_dir: str | None = None  # default: the folder above checkpoints/
    text_column: str = "text"
    label_column: str | None = "label"  # scored when present in the input
    batch_size: int | None = None  # default: the run's data.eval_batch_size
    device: str = "auto"  # auto | cpu | cuda | cuda:1 ...
    precision: str | None = None  # default: the precision the run tested in (saved in the checkpoint)


def load_run(
    ckpt_path: str | os.PathLike[str], run_dir: str | os.PathLike[str] | None = None
) -> tuple[torch.nn.Module, list[str], DictConfig]:
    """The trained network (eval mode, on CPU), its class names and the run's config."""
    from hydra.utils import instantiate

    ckpt_file = Path(ckpt_path)
    if not ckpt_file.is_file():
        raise PredictError(f"ckpt_path={ckpt_path} does not exist; pass <run>/checkpoints/best-*.ckpt")
    folder = Path(run_dir) if run_dir is not None else ckpt_file.resolve().parent.parent
    config_file = folder / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise PredictError(
            f"no .hydra/config.yaml in {folder}; pass run_dir=<the run folder the checkpoint came from>"
        )
    cfg = OmegaConf.load(config_file)
    if not isinstance(cfg, DictConfig):
        raise PredictError(f"{config_file} is not a run config (a mapping); pass the run folder as run_dir")
    try:
        ckpt = torch.load(ckpt_file, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated copy, not a torch file, unsafe pickle
        raise PredictError(
            f"cannot read {ckpt_file}: {str(err).splitlines()[0]}; pass a training checkpoint"
        ) from None
    if "class_names" not in ckpt or "state_dict" not in ckpt:
        raise PredictError(f"{ckpt_file} is not a dicebert training checkpoint (no class_names/state_dict)")
    class_names = [str(c) for c in ckpt["class_names"]]
    with open_dict(cfg):
        cfg.paths.output_dir = str(folder)  # was ${hydra:runtime.output_dir}: no Hydra run here
        # What the run tested in (trainer=default resolves per machine): older checkpoints were float32.
        cfg.trainer.precision = str(ckpt.get("precision", "32-true"))
        cfg.model.net.encoder.pretrained = False  # the checkpoint's weights replace any download
    net = instantiate(cfg.model.net)(num_classes=len(class_names))
    state = {k[len("net.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    net.load_state_dict(state, strict=True)
    return net.eval(), class_names, cfg


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
            "pass text_column=<name>"
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
) -> torch.Tensor:
    """Softmax probabilities (N × C), tokenized and padded per batch, in the precision of testing."""
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
        out.append(logits.float().softmax(-1).cpu())
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


def predict(options: PredictConfig) -> tuple[Path, dict[str, float] | None]:
    """Write the predictions file (and ``<output>.metrics.json`` when labels are known)."""
    net, class_names, cfg = load_run(options.ckpt_path, options.run_dir)
    frame, split = read_input(options.input, cfg, options.text_column)
    text_column = "text" if split else options.text_column
    label_column = "label" if split else options.label_column
    batch_size = options.batch_size or int(cfg.data.eval_batch_size or cfg.data.batch_size)
    probs = predict_probabilities(
        net,
        frame[text_column].tolist(),
        str(cfg.data.tokenizer),
        int(cfg.data.max_length),
        batch_size,
        options.device,
        options.precision or str(cfg.trainer.precision),
    )
    result = frame.copy()
    result["prediction"] = [class_names[i] for i in probs.argmax(-1).tolist()]
    result["confidence"] = probs.max(-1).values.numpy()
    for i, name in enumerate(class_names):
        result[f"prob_{name}"] = probs[:, i].numpy()
    if options.output:
        output = Path(options.output)
    elif split:
        output = Path(cfg.paths.output_dir) / f"predictions_{split}.csv"
    else:
        output = Path(options.input).with_suffix(".predictions.csv")
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix in (".jsonl", ".json"):
        result.to_json(output, orient="records", lines=True, force_ascii=False)
    elif output.suffix == ".parquet":
        result.to_parquet(output, index=False)
    else:
        result.to_csv(output, index=False)
    metrics = None
    if label_column and label_column in frame.columns and len(frame):
        metrics = score(probs, frame[label_column].tolist(), class_names)
        output.with_name(output.stem + ".metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return output, metrics


def parse_options(argv: Sequence[str]) -> PredictConfig:
    """``key=value`` arguments → :class:`PredictConfig`; unknown or missing keys → one clear line."""
    known = [f.name for f in dataclasses.fields(PredictConfig)]
    for arg in argv:
        key = arg.split("=", 1)[0]
        if "=" not in arg or key not in known:
            raise PredictError(f"bad argument {arg!r}; use key=value with keys: {', '.join(known)}")
    merged = OmegaConf.merge(OmegaConf.structured(PredictConfig), OmegaConf.from_dotlist(list(argv)))
    missing = [k for k in ("ckpt_path", "input") if OmegaConf.is_missing(merged, k)]
    if missing:
        raise PredictError(
            f"{missing[0]} is required: python -m dicebert.predict ckpt_path=<run>/checkpoints/best-*.ckpt "
            "input=<csv/jsonl file, or test>"
        )
    return PredictConfig(**OmegaConf.to_container(merged))  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``dicebert-predict``)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv)
        output, metrics = predict(options)
    except DicebertError as err:  # bad options, data, model or checkpoint: one line
        raise SystemExit(f"error: {err}") from None
    print(f"predictions: {output}")
    if metrics is not None:
        print(
            "  ".join(
                f"{k}={metrics[f'test/{k}']:.4f}" for k in ("macro_f1", "accuracy", "balanced_accuracy")
            )
        )


if __name__ == "__main__":
    main()
