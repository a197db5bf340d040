"""A BERT sequence classifier with the pooling and head of a dicebert run, for exported folders.

This file is copied into every export whose network Transformers has no stock class for (mean or
[CLS] pooling, or a cosine head) and is loaded from there with ``trust_remote_code=True``; it
imports nothing from dicebert, so the folder works where dicebert is not installed. Stock
``BertForSequenceClassification`` reads the pooler (dense + tanh over [CLS]), which a mean-pooled
run never trained. Parameter names follow ``BertForSequenceClassification`` (``bert.*``,
``classifier.*``), so a pooler/linear run exports to the stock class with the same tensors.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class CosineClassifier(nn.Module):
    """Logits ``scale · cos(feature, class weight)`` (LDAM's normalised head)."""

    def __init__(self, hidden_size: int, num_labels: int, scale: float) -> None:
        super().__init__()
        self.scale = float(scale)
        self.weight = nn.Parameter(torch.zeros(num_labels, hidden_size))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * (F.normalize(features, dim=-1) @ F.normalize(self.weight, dim=-1).T)


class DicebertBertForSequenceClassification(BertPreTrainedModel):
    """BERT encoder → pooled vector (``config.dicebert_pooling``: mean | cls | pooler) → dropout → head.

    ``config.dicebert_head``: ``linear``, or ``cosine`` with ``config.dicebert_cosine_scale``.
    ``config.problem_type`` says how the logits become probabilities: ``single_label_classification``
    (softmax) or ``multi_label_classification`` (one sigmoid per class, as a sigmoid-trained run).
    """

    config_class = BertConfig

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.num_labels = int(config.num_labels or 2)
        self.pooling = str(getattr(config, "dicebert_pooling", "mean"))
        self.bert = BertModel(config, add_pooling_layer=self.pooling == "pooler")
        dropout = getattr(config, "classifier_dropout", None)
        self.dropout = nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.classifier: nn.Module
        if getattr(config, "dicebert_head", "linear") == "cosine":
            scale = float(getattr(config, "dicebert_cosine_scale", 30.0))
            self.classifier = CosineClassifier(config.hidden_size, self.num_labels, scale)
        else:
            self.classifier = nn.Linear(config.hidden_size, self.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        if attention_mask is None and input_ids is not None:
            attention_mask = torch.ones_like(input_ids)
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        if self.pooling == "pooler":
            pooled = out.pooler_output
        elif self.pooling == "cls":
            pooled = out.last_hidden_state[:, 0]
        else:  # mask-aware mean of the token states
            assert attention_mask is not None
            mask = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
            pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            if self.config.problem_type == "multi_label_classification":
                target = F.one_hot(labels, self.num_labels).to(logits.dtype) if labels.ndim == 1 else labels
                loss = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
            else:
                loss = F.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)
