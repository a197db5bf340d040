"""Reference baselines fitted on exactly the DataModule's splits: TF-IDF + LR, frozen encoder + LR.

A fine-tuned model's figure means something only beside what a 10-line scikit-learn model gets on
the same training split (after imbalance subsampling) and the same test split. Both baselines
pick nothing on test: their settings are fixed in the config, and val is only reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader

from dicebert.errors import ConfigError

CLASS_WEIGHTS = ("balanced", None)


def _check_class_weight(class_weight: str | None) -> None:
    if class_weight not in CLASS_WEIGHTS:
        raise ConfigError(f"model.class_weight={class_weight!r}: use balanced or null")


class TfidfLogisticRegression:
    """TF-IDF of word n-grams + logistic regression (scikit-learn's defaults otherwise).

    ``net`` only carries the tokenizer name that the data config reads (``data.tokenizer``,
    ``max_length=auto``); TF-IDF uses its own word tokenizer on the full texts.
    """

    name = "tfidf_lr"

    def __init__(
        self,
        ngram_range: Sequence[int] = (1, 2),
        C: float = 10.0,
        class_weight: str | None = "balanced",
        min_df: int = 1,
        sublinear_tf: bool = False,
        max_iter: int = 2000,
        baseline: bool = True,
        net: Any = None,
    ) -> None:
        _check_class_weight(class_weight)
        if len(ngram_range) != 2 or ngram_range[0] < 1 or ngram_range[1] < ngram_range[0]:
            raise ConfigError(f"model.ngram_range={list(ngram_range)}: give [min, max] with 1 <= min <= max")
        self.vectorizer = TfidfVectorizer(
            ngram_range=(int(ngram_range[0]), int(ngram_range[1])), sublinear_tf=sublinear_tf, min_df=min_df
        )
        self.classifier = LogisticRegression(C=C, class_weight=class_weight, max_iter=max_iter)

    def fit_predict(self, datamodule: Any) -> dict[str, np.ndarray]:
        """Fit on the training texts; class probabilities for val and test (columns: class ids)."""
        tables, labels = datamodule.tables, datamodule.datasets["train"].labels
        features = self.vectorizer.fit_transform(tables["train"]["text"])
        self.classifier.fit(features, labels)
        return {
            role: _probabilities(self.classifier, self.vectorizer.transform(tables[role]["text"]), datamodule)
            for role in ("val", "test")
        }


class FrozenEncoderLogisticRegression:
    """The encoder's mask-aware mean-pooled token states (no fine-tuning) + standardised LR.

    It reads the DataModule's own token ids, so it sees exactly what the fine-tuned model sees
    (same ``max_length``).
    """

    name = "frozen_lr"

    def __init__(
        self,
        net: Mapping[str, Any],
        C: float = 1.0,
        class_weight: str | None = "balanced",
        batch_size: int = 64,
        max_iter: int = 2000,
        baseline: bool = True,
    ) -> None:
        _check_class_weight(class_weight)
        if "encoder" not in net:
            raise ConfigError("model.net.encoder is missing: frozen_lr needs an encoder to embed with")
        self.encoder = net["encoder"]
        self.batch_size = batch_size
        self.classifier = make_pipeline(
            StandardScaler(), LogisticRegression(C=C, class_weight=class_weight, max_iter=max_iter)
        )

    @torch.no_grad()
    def embed(self, datamodule: Any, role: str) -> np.ndarray:
        """Mean-pooled last hidden states of one split, in its order."""
        self.encoder.eval()
        loader = DataLoader(
            datamodule.datasets[role], batch_size=self.batch_size, collate_fn=datamodule.collator
        )
        out = []
        for batch in loader:
            hidden = self.encoder(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                token_type_ids=batch.get("token_type_ids"),
            ).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(((hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)).float().numpy())
        return np.concatenate(out)

    def fit_predict(self, datamodule: Any) -> dict[str, np.ndarray]:
        self.classifier.fit(self.embed(datamodule, "train"), datamodule.datasets["train"].labels)
        return {
            role: _probabilities(self.classifier, self.embed(datamodule, role), datamodule)
            for role in ("val", "test")
        }


def _probabilities(classifier: Any, features: Any, datamodule: Any) -> np.ndarray:
    """``predict_proba`` with one column per class id, also for classes absent from training."""
    probs = np.zeros((features.shape[0], datamodule.num_classes))
    probs[:, classifier.classes_] = classifier.predict_proba(features)
    return probs
