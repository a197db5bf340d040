"""Data: sources of raw texts, splitting and long-tail subsampling, samplers, the DataModule."""

from dicebert.data.datamodule import TextClassificationDataModule
from dicebert.data.sources import BBCNews, DataError, HFDataset, LocalFiles

__all__ = ["BBCNews", "DataError", "HFDataset", "LocalFiles", "TextClassificationDataModule"]
