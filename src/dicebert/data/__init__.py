"""Data: sources of raw texts, splitting and long-tail subsampling, samplers, the DataModule."""

from dicebert.data.datamodule import TextClassificationDataModule
from dicebert.data.sources import BBCNews, HFDataset, LocalFiles
from dicebert.errors import DataError

__all__ = ["BBCNews", "DataError", "HFDataset", "LocalFiles", "TextClassificationDataModule"]
