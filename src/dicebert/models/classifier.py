"""The write-up's classifier: encoder → pooled output → dropout → linear head."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from transformers import PreTrainedModel

from dicebert.errors import ConfigError

#: The cosine head's default scale s: LDAM's (Cao et al. 2019), whose loss default is the same value,
#: so ``head=cosine`` with ``loss=ldam`` agree without options (the module checks that they do).
COSINE_SCALE = 30.0

POOLINGS = ("pooler", "cls", "mean")
HEADS = ("linear", "cosine")


class CosineHead(nn.Module):
    """Logits ``s·cos(feature, class weight)`` in [−s, s] (LDAM's normalised head, Cao et al. 2019).

    The scale belongs to the model, not to the loss: softmax of bare cosines in [−1, 1] can never
    be confident (top probability ≤ 0.65 with 5 classes), so probabilities, predictions and ECE
    must come from the scaled logits, the ones the loss is trained on.
    """

    def __init__(self, in_features: int, num_classes: int, scale: float = COSINE_SCALE) -> None:
        super().__init__()
        if scale <= 0:
            raise ConfigError(f"model.net.cosine_scale must be > 0; got {scale}")
        self.scale = float(scale)
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, features: Tensor) -> Tensor:
        return self.scale * (F.normalize(features, dim=-1) @ F.normalize(self.weight, dim=-1).T)


class BertClassifier(nn.Module):
    """Encoder plus a classification head over a pooled sentence vector.

    ``pooling``: ``pooler`` (the encoder's tanh pooler over [CLS], as in the write-up), ``cls``
    (raw [CLS] hidden state) or ``mean`` (mask-aware mean of token states). ``dropout`` defaults
    to the encoder's ``hidden_dropout_prob``. ``head``: ``linear`` or ``cosine`` (logits
    ``cosine_scale · cos``, for ``ldam``, whose ``scale`` must match).
    """

    def __init__(
        self,
        encoder: PreTrainedModel,
        num_classes: int,
        pooling: str = "pooler",
        dropout: float | None = None,
        head: str = "linear",
        cosine_scale: float = COSINE_SCALE,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"model.net.pooling={pooling!r} is not one of {', '.join(POOLINGS)}")
        if head not in HEADS:
            raise ConfigError(f"model.net.head={head!r} is not one of {', '.join(HEADS)}")
        if num_classes < 2:
            raise ValueError(f"need at least 2 classes; got {num_classes}")
        if pooling == "pooler" and getattr(encoder, "pooler", None) is None:
            raise ConfigError(
                "model.net.pooling=pooler but the encoder has no pooler; use pooling=cls or mean"
            )
        self.encoder = encoder
        if pooling != "pooler" and getattr(encoder, "pooler", None) is not None:
            # Unused weights: dropping them saves a matmul and keeps DDP from failing on parameters
            # that get no gradient (BertModel skips a pooler that is None).
            encoder.pooler = None  # type: ignore[assignment]  # BertModel accepts a None pooler
        self.pooling = pooling
        hidden = encoder.config.hidden_size
        p = encoder.config.hidden_dropout_prob if dropout is None else dropout
        self.dropout = nn.Dropout(p)
        self.head = (
            nn.Linear(hidden, num_classes)
            if head == "linear"
            else CosineHead(hidden, num_classes, cosine_scale)
        )
        self.num_classes = num_classes
        #: The factor the logits carry (1 for the linear head); losses with margins check it.
        self.logit_scale = self.head.scale if isinstance(self.head, CosineHead) else 1.0
        # from_pretrained returns the encoder in eval mode, and Lightning keeps each submodule's
        # mode: without this, dropout would silently stay off during training.
        self.train()

    def features(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """The pooled sentence vector the head reads (two-stage cRT re-trains a head on these)."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        if self.pooling == "pooler":
            return out.pooler_output
        if self.pooling == "cls":
            return out.last_hidden_state[:, 0]
        mask = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        return (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        return self.head(self.dropout(self.features(input_ids, attention_mask, token_type_ids)))
