"""Models: encoder loading, the classifier (encoder + head), and the LightningModule."""

from dicebert.errors import ModelLoadError, NonFiniteLossError
from dicebert.models.classifier import BertClassifier
from dicebert.models.encoders import load_encoder, load_tokenizer, resolve_name_or_path
from dicebert.models.module import ClassifierModule

__all__ = [
    "BertClassifier",
    "ClassifierModule",
    "ModelLoadError",
    "NonFiniteLossError",
    "load_encoder",
    "load_tokenizer",
    "resolve_name_or_path",
]
