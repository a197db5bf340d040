"""The exported folder's ``README.md``: a Hugging Face model card written from the run's own files.

Everything in it is read from the run folder (``metrics.json``, ``data_summary.json``,
``.hydra/``), so the card states what the run measured, including the collapse warnings a
reader of the numbers must see, and nothing that was not measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from dicebert.inference import LoadedRun
from dicebert.reporting.tables import fmt, markdown_table


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def training_command(run_dir: Path) -> str:
    """``python train.py <overrides>`` as the run was started (Hydra saves the overrides)."""
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    if not overrides_file.is_file():
        return "(not recorded: the run folder has no .hydra/overrides.yaml)"
    overrides = OmegaConf.to_container(OmegaConf.load(overrides_file))
    return " ".join(["python train.py", *map(str, overrides if isinstance(overrides, list) else [])])


def health_warnings(metrics: dict[str, Any], class_names: list[str]) -> list[str]:
    """The run's collapse flags (``health/*``) in words."""
    lines = []
    never = [c for c in class_names if metrics.get(f"test/recall/{c}") == 0.0]
    if metrics.get("health/never_predicted", 0) and never:
        lines.append(
            f"The model never correctly predicts {len(never)} class(es) of the test split: "
            f"{', '.join(never)}."
        )
    if metrics.get("health/below_majority_baseline", 0):
        lines.append(
            "Test macro-F1 is not above always predicting the majority class "
            f"({metrics.get('health/majority_baseline_macro_f1', float('nan')):.3f}): the run learned little."
        )
    if metrics.get("health/val_never_improved", 0):
        lines.append("Validation macro-F1 never rose above its first value.")
    return lines


def _fmt(value: Any) -> str:
    return fmt(value, 4)


def model_card(run: LoadedRun, stock_class: bool) -> str:
    """The card's Markdown (with the Hub's YAML header)."""
    metrics = _read_json(run.run_dir / "metrics.json")
    summary = _read_json(run.run_dir / "data_summary.json")
    names = run.class_names
    counts = summary.get("class_counts", {})
    class_rows = [
        [
            name,
            *(str(counts.get(split, {}).get(name, "–")) for split in ("train", "val", "test")),
            _fmt(metrics.get(f"test/f1/{name}")),
            _fmt(metrics.get(f"test/recall/{name}")),
        ]
        for name in names
    ]
    headline = [
        [key, _fmt(metrics.get(f"test/{key}"))]
        for key in ("macro_f1", "accuracy", "balanced_accuracy", "mcc", "ece")
    ]
    headline.append(["val/best_macro_f1 (checkpoint selection)", _fmt(metrics.get("val/best_macro_f1"))])
    warnings = health_warnings(metrics, names)
    remote = "" if stock_class else ", trust_remote_code=True"
    sigmoid = run.probability == "sigmoid"
    data_source = OmegaConf.select(run.cfg, "data.source._target_", default="?")
    encoder_cfg = run.cfg.model.net.encoder
    encoder = f"`{encoder_cfg.name_or_path}`" + (
        f" with config overrides {dict(encoder_cfg.config_overrides)}"
        if encoder_cfg.get("config_overrides")
        else ""
    )
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-classification",
        "tags: [dicebert, text-classification]",
        "---",
        "",
        f"# {run.run_dir.name}: {len(names)}-class text classifier (loss `{run.loss_name}`)",
        "",
        "Exported from a dicebert run; everything below is read from that run's files.",
        "",
        "## Use",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        f'clf = pipeline("text-classification", model="<this folder>"{remote}, truncation=True, top_k=None)',
        'clf(["first text", "second text"])',
        "```",
        "",
        f"`truncation=True` cuts texts at {run.max_length} tokens, the length the run trained and "
        "tested with (`tokenizer.model_max_length`).",
        (
            "The head's probabilities are **one sigmoid per class** (`problem_type: "
            "multi_label_classification`), as the loss trained them; they need not sum to 1."
            if sigmoid
            else "Probabilities are the softmax of the logits, as the run scored them."
        ),
        (
            "The network is BERT with the pooler and a linear head: stock `BertForSequenceClassification`."
            if stock_class
            else "The network pools the encoder's token states as the run did (`dicebert_pooling` in "
            "config.json), which no stock Transformers class does, so the folder ships its class in "
            "`modeling_dicebert.py` (needs `trust_remote_code=True`; it imports only torch and transformers)."
        ),
        f"Weights are float32; the run tested in `{run.precision}`"
        + (", so probabilities differ from its test by bf16 rounding." if "bf16" in run.precision else "."),
        "",
        "## Training",
        "",
        f"- command: `{training_command(run.run_dir)}`",
        f"- loss: `{run.loss_name}`; seed: {run.cfg.get('seed')}; encoder: {encoder}; "
        f"max_length: {run.max_length}",
        f"- data: `{data_source}`, imbalance ratio: {summary.get('imbalance_ratio')}",
        f"- checkpoint: `{run.checkpoint.name}`",
        "",
        "## Results (test split)",
        "",
        markdown_table(["metric", "value"], headline),
        "",
        markdown_table(["class", "train", "val", "test", "test F1", "test recall"], class_rows),
        "",
    ]
    if warnings:
        lines += ["## Warnings", "", *(f"- {w}" for w in warnings), ""]
    return "\n".join(lines)
