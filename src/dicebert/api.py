"""The notebook API: ``clf = dicebert.load(run); clf.predict(texts)``.

A thin object over :mod:`dicebert.inference` and :func:`dicebert.predict.predict_probabilities`,
so it predicts exactly as ``dicebert-predict`` does (same tokenizer, length, precision and
probability function) and exports through :mod:`dicebert.export`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from dicebert.inference import LoadedRun, load_run
from dicebert.predict import predict_probabilities, prediction_table


class TextClassifier:
    """A trained run, ready to predict: ``classes``, ``predict``, ``predict_proba``, ``export``."""

    def __init__(
        self, run: LoadedRun, device: str = "auto", precision: str | None = None, batch_size: int = 64
    ) -> None:
        self.run = run
        self.device = device
        self.precision = precision or run.precision
        self.batch_size = batch_size

    @property
    def classes(self) -> list[str]:
        """Class names in the order of the probability columns."""
        return list(self.run.class_names)

    def predict_proba(self, texts: Iterable[str]) -> np.ndarray:
        """Class probabilities, one row per text (softmax, or sigmoid where the loss trained sigmoids)."""
        probs = predict_probabilities(
            self.run.net,
            list(texts),
            self.run.tokenizer,
            self.run.max_length,
            self.batch_size,
            self.device,
            self.precision,
            self.run.probability,
        )
        return probs.numpy()

    def predict(self, texts: Iterable[str] | str) -> pd.DataFrame:
        """A table with ``prediction``, ``confidence`` and ``prob_<class>`` per text (a string: one row)."""
        import torch

        items = [texts] if isinstance(texts, str) else list(texts)
        return prediction_table(torch.from_numpy(self.predict_proba(items)), self.classes)

    def export(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write a Hugging Face folder a plain ``transformers`` pipeline loads (:mod:`dicebert.export`)."""
        from dicebert.export import export_run

        return export_run(self.run, out_dir)

    def __repr__(self) -> str:
        return (
            f"TextClassifier({self.run.run_dir}, classes={self.classes}, loss={self.run.loss_name}, "
            f"max_length={self.run.max_length}, device={self.device!r}, precision={self.precision!r})"
        )


def load(
    run: str | os.PathLike[str],
    device: str = "auto",
    precision: str | None = None,
    batch_size: int = 64,
    run_dir: str | os.PathLike[str] | None = None,
) -> TextClassifier:
    """Load a finished run (its folder, or a ``.ckpt`` inside it) for prediction.

    ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda:1`` ...; ``precision``: default the
    one the run tested in (e.g. ``bf16-mixed``), ``32-true`` for float32.
    """
    return TextClassifier(load_run(run, run_dir), device=device, precision=precision, batch_size=batch_size)
