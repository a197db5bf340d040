"""The write-up's classifier: encoder → pooled output → dropout → linear head."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from transformers import PreTrainedModel

POOLINGS = ("pooler", "cls", "mean")
HEADS = ("linear", "cosine")


class CosineHead(nn.Module):
    """Cosine-similarity logits in [−1, 1]: what LDAM's scale s assumes (normalised features and weights)."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, features: Tensor) -> Tensor:
        return F.normalize(features, dim=-1) @ F.normalize(self.weight, dim=-1).T


class BertClassifier(nn.Module):
    """Encoder plus a classification head over a pooled sentence vector.

    ``pooling``: ``pooler`` (the encoder's tanh pooler over [CLS], as in the write-up), ``cls``
    (raw [CLS] hidden state) or ``mean`` (mask-aware mean of token states). ``dropout`` defaults
    to the encoder's ``hidden_dropout_prob``.
    """

    def __init__(
        self,
        encoder: PreTrainedModel,
        num_classes: int,
        pooling: str = "pooler",
        dropout: float | None = None,
        head: str = "linear",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"model.net.pooling={pooling!r} is not one of {', '.join(POOLINGS)}")
        if head not in HEADS:
            raise ValueError(f"model.net.head={head!r} is not one of {', '.join(HEADS)}")
        if num_classes < 2:
            raise ValueError(f"need at least 2 classes; got {num_classes}")
        if pooling == "pooler" and getattr(encoder, "pooler", None) is None:
            raise ValueError(
                "model.net.pooling=pooler but the encoder has no pooler; use pooling=cls or mean"
            )
        self.encoder = encoder
        self.pooling = pooling
        hidden = encoder.config.hidden_size
        p = encoder.config.hidden_dropout_prob if dropout is None else dropout
        self.dropout = nn.Dropout(p)
        self.head = nn.Linear(hidden, num_classes) if head == "linear" else CosineHead(hidden, num_classes)
        self.num_classes = num_classes
        # from_pretrained returns the encoder in eval mode, and Lightning keeps each submodule's
        # mode: without this, dropout would silently stay off during training.
        self.train()

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        if self.pooling == "pooler":
            pooled = out.pooler_output
        elif self.pooling == "cls":
            pooled = out.last_hidden_state[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
            pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return self.head(self.dropout(pooled))
