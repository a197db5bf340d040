"""Tokenize once, cache on disk, pad per batch.

Texts are tokenized without padding (the collator pads each batch to its longest member), and the
token ids are cached under a fingerprint of the texts, the tokenizer and the max length, so a
sweep of dozens of runs tokenizes the corpus once and an edited file or tokenizer invalidates it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """Hash of what decides the ids: the tokenizer's full serialised state (vocab, normaliser, ...)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        state = json.dumps(tokenizer.get_vocab(), sort_keys=True)
    else:
        # Truncation/padding settings are mutated by every call: they are not part of its identity.
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None)
        spec.pop("padding", None)
        state = json.dumps(spec, sort_keys=True)
    return hashlib.sha256(state.encode()).hexdigest()[:16]


def texts_fingerprint(texts: Sequence[str], tokenizer_id: str, max_length: int) -> str:
    digest = hashlib.sha256(f"{tokenizer_id}|{max_length}|{len(texts)}".encode())
    for text in texts:
        digest.update(text.encode("utf-8", errors="surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def tokenize(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    cache_dir: str | os.PathLike[str] | None = None,
) -> list[list[int]]:
    """Token ids per text, truncated to ``max_length``; read from/written to ``cache_dir`` if given."""
    path = None
    if cache_dir is not None:
        key = texts_fingerprint(texts, tokenizer_fingerprint(tokenizer), max_length)
        path = Path(cache_dir) / f"tokens-{key}.pt"
        if path.is_file():
            try:
                return [ids.tolist() for ids in torch.load(path, weights_only=True)]
            except Exception as err:  # a corrupt cache is rebuilt, never trusted
                log.warning("ignoring unreadable token cache %s (%s)", path, err)
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)["input_ids"]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save([torch.tensor(ids, dtype=torch.int32) for ids in encoded], tmp)
        os.replace(tmp, path)  # atomic: concurrent sweep jobs never read a half-written cache
    return encoded
