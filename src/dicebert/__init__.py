"""dicebert: which loss and which sampler for BERT text classification at which imbalance ratio."""

__version__ = "0.1.0"
