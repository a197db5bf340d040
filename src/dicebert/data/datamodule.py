"""The LightningDataModule: source → clean → split → long-tail train split → tokens → loaders."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
from torch.utils.data import DataLoader, Dataset
from transformers import DataCollatorWithPadding

from dicebert.atomic import atomic_path
from dicebert.data.batching import LengthGroupedBatchSampler
from dicebert.data.imbalance import limit_per_class, make_long_tailed, match_profile
from dicebert.data.sampling import SAMPLERS, ClassCoveringBatchSampler, build_sampler
from dicebert.data.sources import RawSplits, label_strings
from dicebert.data.splits import duplicate_summary, group_stratified_split
from dicebert.data.tokenization import auto_max_length, tokenize, tokenizer_fingerprint
from dicebert.errors import DataError
from dicebert.models.encoders import load_tokenizer

log = logging.getLogger(__name__)

BAD_ROWS = ("drop", "error")


class TokenizedDataset(Dataset):
    """Token ids + label ids; padding is left to the collator."""

    def __init__(self, input_ids: list[list[int]], labels: Sequence[int]) -> None:
        self.input_ids = input_ids
        self.labels = list(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"input_ids": self.input_ids[index], "labels": self.labels[index]}


class TextClassificationDataModule(L.LightningDataModule):
    """Text classification data with a configurable long-tailed training split.

    ``imbalance_ratio`` ρ subsamples the training split to the profile of
    :func:`~dicebert.data.imbalance.long_tail_counts` (ρ = 1: balanced); None keeps it as it is.
    ``val_imbalance`` subsamples validation to the training split's class proportions too (at
    least ``min_val_per_class`` per class), so that checkpoints and post-hoc τ are chosen on the
    class mix training sees rather than on a near-balanced validation split; test is never touched.
    Splits the project makes keep identical texts together and give val at least
    ``min_val_per_class`` examples of each class (:mod:`dicebert.data.splits`); texts shared by
    given splits are counted in ``summary["duplicates"]``. ``max_length="auto"``: see
    :func:`~dicebert.data.tokenization.auto_max_length`.

    After :meth:`setup` it exposes ``class_names`` (id → name), ``num_classes`` and the training
    ``class_counts`` (after imbalance subsampling): the model and the loss read them from here.
    """

    def __init__(
        self,
        source: Any,
        tokenizer: str,
        max_length: int | str = 128,
        max_length_percentile: float = 95.0,
        max_length_limit: int | None = None,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        min_val_per_class: int = 0,
        imbalance_ratio: float | None = None,
        val_imbalance: bool = False,
        class_order: str | Sequence[str] = "descending",
        sampler: str = "none",
        sampler_beta: float = 0.999,
        cover_classes: bool = False,
        limit_per_class: int | None = None,
        on_bad_rows: str = "drop",
        cache_dir: str | None = None,
        pad_to_multiple_of: int | None = None,
        group_by_length: bool = False,
        seed: int = 0,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__()
        if batch_size is None or batch_size < 1:
            raise DataError(f"data.batch_size must be a positive integer; got {batch_size}")
        if max_length != "auto" and (not isinstance(max_length, int) or max_length < 1):
            raise DataError(f"data.max_length must be a positive integer or auto; got {max_length}")
        if not 0 < max_length_percentile <= 100:
            raise DataError(f"data.max_length_percentile must be in (0, 100]; got {max_length_percentile}")
        if max_length_limit is not None and max_length_limit < 1:
            raise DataError(
                f"data.max_length_limit must be a positive integer or null; got {max_length_limit}"
            )
        if min_val_per_class < 0:
            raise DataError(f"data.min_val_per_class must be >= 0; got {min_val_per_class}")
        if num_workers < 0:
            raise DataError(f"data.num_workers must be >= 0; got {num_workers}")
        if sampler not in SAMPLERS:
            raise DataError(f"data.sampler={sampler!r} is not one of {', '.join(SAMPLERS)}")
        if cover_classes and group_by_length:
            raise DataError(
                "data.cover_classes and data.group_by_length both build the batches; turn one of them off"
            )
        if on_bad_rows not in BAD_ROWS:
            raise DataError(f"data.on_bad_rows={on_bad_rows!r} is not one of {', '.join(BAD_ROWS)}")
        if imbalance_ratio is not None and imbalance_ratio < 1:
            raise DataError(
                f"data.imbalance_ratio must be >= 1 (head/tail size ratio); got {imbalance_ratio}"
            )
        self.source = source
        self.tokenizer_name = tokenizer
        self.max_length = max_length
        self.max_length_percentile = max_length_percentile
        self.max_length_limit = max_length_limit
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.min_val_per_class = min_val_per_class
        self.imbalance_ratio = imbalance_ratio
        self.val_imbalance = val_imbalance
        self.class_order = class_order
        self.sampler = sampler
        self.sampler_beta = sampler_beta
        self.cover_classes = cover_classes
        self.limit_per_class = limit_per_class
        self.on_bad_rows = on_bad_rows
        self.cache_dir = cache_dir
        self.pad_to_multiple_of = pad_to_multiple_of
        self.group_by_length = group_by_length
        self.seed = seed
        self.trust_remote_code = trust_remote_code
        self.class_names: list[str] = []
        self.datasets: dict[str, TokenizedDataset] = {}
        self.summary: dict[str, Any] = {}
        self.tables: dict[str, pd.DataFrame] = {}  # the texts behind ``datasets`` (for the baselines)

    # ----------------------------------------------------------------------------------- public
    @property
    def num_classes(self) -> int:
        self._require_setup()
        return len(self.class_names)

    @property
    def class_counts(self) -> list[int]:
        """Training examples per class id, after the imbalance profile is applied."""
        self._require_setup()
        return list(self.summary["class_counts"]["train"].values())

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:  # idempotent: train.py sets up before the Trainer does
            return
        tables = self.load_tables()
        self.tables = tables
        self.class_names = _class_names(tables["train"]["label"])
        to_id = {name: i for i, name in enumerate(self.class_names)}
        for role in ("val", "test"):
            unseen = sorted(set(tables[role]["label"]) - set(to_id))
            if unseen:
                raise DataError(
                    f"{role} labels never seen in training: {unseen[:5]}; "
                    f"training classes: {self.class_names}"
                )
        self.tokenizer = load_tokenizer(self.tokenizer_name, trust_remote_code=self.trust_remote_code)
        self.collator = DataCollatorWithPadding(self.tokenizer, pad_to_multiple_of=self.pad_to_multiple_of)
        counts: dict[str, dict[str, int]] = {}
        tokenizer_id = tokenizer_fingerprint(self.tokenizer) if self.cache_dir is not None else None
        if self.max_length == "auto":
            self.max_length, self.summary["max_length"] = auto_max_length(
                tables["train"]["text"].tolist(),
                self.tokenizer,
                self.max_length_percentile,
                self.max_length_limit,
            )
            log.info(
                "data.max_length=auto: %d tokens (%s)",
                self.max_length,
                ", ".join(f"{k}={v}" for k, v in self.summary["max_length"].items()),
            )
        else:
            self.summary["max_length"] = {"value": self.max_length, "auto": False}
        assert isinstance(self.max_length, int)  # "auto" was resolved to a token count above
        for role, frame in tables.items():
            ids = tokenize(
                frame["text"].tolist(), self.tokenizer, self.max_length, self.cache_dir, tokenizer_id
            )
            labels = [to_id[name] for name in frame["label"]]
            self.datasets[role] = TokenizedDataset(ids, labels)
            counts[role] = {name: int((frame["label"] == name).sum()) for name in self.class_names}
        self.summary["class_names"] = self.class_names
        self.summary["class_counts"] = counts
        log.info("training class counts after imbalance (rho=%s): %s", self.imbalance_ratio, counts["train"])

    def train_dataloader(self) -> DataLoader:
        data = self.datasets["train"]
        sampler = build_sampler(data.labels, self.class_counts, self.sampler, self.seed, self.sampler_beta)
        if self.cover_classes:  # every class in every batch (batch-level Dice losses need it)
            batches: Any = ClassCoveringBatchSampler(sampler, data.labels, self.batch_size)
            return self._loader(data, self.batch_size, batch_sampler=batches)
        if self.group_by_length:  # the sampler's draws, batched by similar length: less padding
            batches = LengthGroupedBatchSampler(
                sampler, self.batch_size, lengths=[len(ids) for ids in data.input_ids], seed=self.seed
            )
            return self._loader(data, self.batch_size, batch_sampler=batches)
        return self._loader(data, self.batch_size, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self.ordered_dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.ordered_dataloader("test")

    def ordered_dataloader(self, split: str) -> DataLoader:
        """One split in its stored order, no sampler (evaluation, and cRT's features of train)."""
        return self._loader(self.datasets[split], self.eval_batch_size)

    # ---------------------------------------------------------------------------------- helpers
    def _loader(
        self, data: Dataset, batch_size: int, sampler: Any = None, batch_sampler: Any = None
    ) -> DataLoader:
        if batch_sampler is not None:  # DataLoader refuses batch_size together with batch_sampler
            return DataLoader(
                data,
                batch_sampler=batch_sampler,
                collate_fn=self.collator,
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,
            )
        return DataLoader(
            data,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self.collator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def _require_setup(self) -> None:
        if not self.datasets:
            raise RuntimeError("call datamodule.setup() first: class names and counts come from the data")

    def load_tables(self) -> dict[str, pd.DataFrame]:
        """The cleaned train/val/test text tables, split and subsampled exactly as :meth:`setup` does.

        Deterministic for the seed, so :mod:`dicebert.predict` can re-create a run's test split.
        """
        raw = self._load_raw()
        tables: dict[str, pd.DataFrame | None] = {"train": raw.train, "val": raw.val, "test": raw.test}
        dropped = {}
        for role, frame in tables.items():
            if frame is not None:
                tables[role], dropped[role] = self._clean(frame, role)
        if self.limit_per_class is not None:
            tables = {
                r: f if f is None else limit_per_class(f, self.limit_per_class, self.seed)
                for r, f in tables.items()
            }
        train = tables["train"]
        assert train is not None
        given = [role for role, frame in tables.items() if frame is not None]
        source = {role: tables[role] for role in given}
        if tables["test"] is None:  # identical texts never straddle a split the project makes
            train, tables["test"] = group_stratified_split(train, self.test_fraction, self.seed, "test")
        if tables["val"] is None:
            train, tables["val"] = group_stratified_split(
                train, self.val_fraction, self.seed, "val", self.min_val_per_class
            )
        if train["label"].nunique() < 2:
            raise DataError(
                f"the training split has one class only ({train['label'].iloc[0]!r}); need at least 2"
            )
        if self.imbalance_ratio is not None:
            rotate_counts = None
            if self.class_order == "rotate":  # rotate one order for every seed: that of all labelled rows
                labels = pd.concat([f["label"] for f in source.values() if f is not None]).astype(str)
                rotate_counts = labels.value_counts().to_dict()
            train = make_long_tailed(train, self.imbalance_ratio, self.seed, self.class_order, rotate_counts)
            if self.val_imbalance:  # select checkpoints and τ on the class mix the model trains on
                train_counts = train["label"].astype(str).value_counts().to_dict()
                tables["val"] = match_profile(tables["val"], train_counts, self.min_val_per_class, self.seed)
        tables["train"] = train
        self.summary["duplicates"] = duplicate_summary(source, tables, given)
        self.summary["dropped_rows"] = dropped
        self.summary["imbalance_ratio"] = self.imbalance_ratio
        self.summary["val_imbalance"] = bool(self.val_imbalance and self.imbalance_ratio is not None)
        return tables

    def _load_raw(self) -> RawSplits:
        """The source's tables, from a parquet copy while the source's files are unchanged.

        Parsing 2,225 BBC files costs more than tokenizing from the token cache; a source that can
        fingerprint itself (file paths, sizes, mtimes) is read once per change, not once per run.
        """
        fingerprint = getattr(self.source, "fingerprint", None)
        key = fingerprint() if callable(fingerprint) and self.cache_dir is not None else None
        if key is None or self.cache_dir is None:
            return self.source.load()
        paths = {
            role: Path(self.cache_dir) / f"source-{key}-{role}.parquet" for role in ("train", "val", "test")
        }
        if paths["train"].is_file():  # written last: if it is there, val/test are complete
            try:
                return RawSplits(**{r: pd.read_parquet(p) if p.is_file() else None for r, p in paths.items()})
            except Exception as err:  # a broken copy is re-read from the source, never trusted
                log.warning("ignoring unreadable source cache %s (%s)", paths["train"], err)
        raw = self.source.load()
        try:
            for role in ("val", "test", "train"):
                frame = getattr(raw, role)
                if frame is not None:
                    with atomic_path(paths[role]) as tmp:
                        frame.to_parquet(tmp, index=False)
        except Exception as err:  # e.g. a label column mixing types: parquet cannot store it; no cache
            log.info("source tables not cached (%s)", err)
        return raw

    def _clean(self, frame: pd.DataFrame, role: str) -> tuple[pd.DataFrame, int]:
        """Drop (or refuse) rows with empty/null text or label; labels become strings."""
        if frame.empty:
            raise DataError(f"the {role} data is empty (0 rows)")
        text = frame["text"]
        bad = text.isna() | frame["label"].isna() | (text.astype(str).str.strip() == "")
        n_bad = int(bad.sum())
        if n_bad and self.on_bad_rows == "error":
            first = int(bad.to_numpy().nonzero()[0][0])
            raise DataError(
                f"{n_bad} {role} row(s) have an empty/null text or label (first at row {first}); "
                "fix the data or set data.on_bad_rows=drop"
            )
        if n_bad:
            log.warning("dropped %d %s row(s) with empty/null text or label", n_bad, role)
        frame = frame.loc[~bad]
        if frame.empty:
            raise DataError(f"the {role} data has no usable rows after dropping {n_bad} empty/null one(s)")
        return pd.DataFrame(
            {"text": frame["text"].astype(str).to_numpy(), "label": label_strings(frame["label"])}
        ), n_bad


def _class_names(labels: pd.Series) -> list[str]:
    """Class id order: numeric order for integer labels, alphabetical otherwise."""
    names = sorted(set(labels))
    if all(n.lstrip("-").isdigit() for n in names):
        names.sort(key=int)
    return names
