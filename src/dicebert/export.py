"""Export a run to the Hugging Face format: ``dicebert-export <run> <out_dir>``.

The folder holds ``config.json`` (with ``id2label``/``label2id`` and the probability function as
``problem_type``), ``model.safetensors``, the tokenizer files (``model_max_length`` = the run's
token length) and a model card (``README.md``, :mod:`dicebert.model_card`), and loads with
``transformers.pipeline("text-classification", model=out_dir, truncation=True)`` where dicebert
is not installed. A run with BERT's pooler and a linear head exports to stock
``BertForSequenceClassification``; mean or [CLS] pooling and the cosine head have no stock class,
so those folders carry :mod:`dicebert.modeling_dicebert` and need ``trust_remote_code=True``
(docs/after_the_run.md says why this route).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import BertForSequenceClassification, PreTrainedModel

from dicebert.cli import report_error
from dicebert.errors import DicebertError, ExportError
from dicebert.inference import LoadedRun, load_run

#: State-dict prefixes: dicebert's classifier → the Transformers classifier (stock and ours alike).
RENAMES = (("encoder.", "bert."), ("head.", "classifier."))


def hf_state_dict(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The network's tensors under ``BertForSequenceClassification``'s names."""
    out = {}
    for key, value in net.state_dict().items():
        for old, new in RENAMES:
            if key.startswith(old):
                out[new + key[len(old) :]] = value.detach().clone().float()
                break
        else:
            raise ExportError(f"the network has a tensor {key!r} the export does not know; cannot export")
    return out


def build_hf_model(run: LoadedRun) -> tuple[PreTrainedModel, bool]:
    """The Transformers model holding the run's weights, and whether it is a stock class."""
    net = run.net
    encoder_config = getattr(getattr(net, "encoder", None), "config", None)
    if encoder_config is None or getattr(encoder_config, "model_type", None) != "bert":
        kind = getattr(encoder_config, "model_type", type(net).__name__)
        raise ExportError(
            f"export supports BERT-architecture encoders (model_type bert); this run's is {kind}"
        )
    config = copy.deepcopy(encoder_config)
    config.num_labels = len(run.class_names)
    config.id2label = dict(enumerate(run.class_names))
    config.label2id = {name: i for i, name in enumerate(run.class_names)}
    sigmoid = run.probability == "sigmoid"
    config.problem_type = "multi_label_classification" if sigmoid else "single_label_classification"
    scale = getattr(getattr(net, "head", None), "scale", None)  # the cosine head's s; linear has none
    pooling, head = str(getattr(net, "pooling", "pooler")), "linear" if scale is None else "cosine"
    config.classifier_dropout = float(getattr(getattr(net, "dropout", None), "p", config.hidden_dropout_prob))
    stock = pooling == "pooler" and head == "linear"
    model: PreTrainedModel
    if stock:
        model = BertForSequenceClassification(config)
    else:
        from dicebert.modeling_dicebert import DicebertBertForSequenceClassification

        config.dicebert_pooling, config.dicebert_head = pooling, head
        if scale is not None:
            config.dicebert_cosine_scale = float(scale)
        DicebertBertForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
        model = DicebertBertForSequenceClassification(config)
    model.load_state_dict(hf_state_dict(net), strict=True)
    return model.eval(), stock


def export_run(run: LoadedRun, out_dir: str | os.PathLike[str]) -> Path:
    """Write the Hugging Face folder (model, tokenizer, card) for ``run`` into ``out_dir``."""
    from dicebert.model_card import model_card
    from dicebert.models.encoders import load_tokenizer

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} exists and is not empty; pass a new folder")
    model, stock = build_hf_model(run)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer = load_tokenizer(run.tokenizer)
    tokenizer.model_max_length = run.max_length  # truncation=True then cuts where the run did
    tokenizer.save_pretrained(out)
    (out / "README.md").write_text(model_card(run, stock))
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dicebert-export",
        description="Write a trained run as a Hugging Face folder (config, safetensors, tokenizer, model "
        "card) that transformers.pipeline('text-classification') loads without dicebert.",
    )
    parser.add_argument("run", help="a run folder (uses its best checkpoint) or a .ckpt file")
    parser.add_argument("out_dir", help="a new folder to write")
    parser.add_argument("--run-dir", help="the run folder, when the checkpoint was moved out of it")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (``dicebert-export``)."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        out = export_run(load_run(args.run, args.run_dir), args.out_dir)
    except DicebertError as err:
        return report_error(err)
    print(f"exported: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
