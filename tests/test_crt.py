"""Two-stage cRT: class-balanced re-training of a fresh head lifts rare classes on real features,
and a run with ``crt=balanced`` adds the crt/* keys its sweep report reads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import f1_score, recall_score

from dicebert.config import config_dir
from dicebert.crt import ClassifierRetraining
from dicebert.data import BBCNews
from dicebert.data.imbalance import make_long_tailed
from dicebert.errors import ConfigError
from dicebert.train import train

SHIPPED = OmegaConf.to_container(OmegaConf.load(Path(config_dir()) / "crt" / "balanced.yaml"))
assert isinstance(SHIPPED, dict) and SHIPPED.pop("_target_") == "dicebert.crt.ClassifierRetraining"


def crt(**options: object) -> ClassifierRetraining:
    """The shipped ``crt=balanced`` settings, with ``options`` changed."""
    return ClassifierRetraining(**{**SHIPPED, "seed": 0, **options})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def headline_features() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """TF-IDF + SVD features of BBC headlines: 70 held out per class, the rest long-tailed at ρ = 50."""
    frame = BBCNews(text_field="title").load().train.sample(frac=1.0, random_state=0).reset_index(drop=True)
    held = frame.groupby("label").head(70)
    train = make_long_tailed(frame.drop(held.index).reset_index(drop=True), ratio=50, seed=0)
    val, test = held.groupby("label").head(10), held.drop(held.groupby("label").head(10).index)
    names = sorted(frame["label"].unique())
    words = TfidfVectorizer(sublinear_tf=True).fit(train["text"])
    svd = TruncatedSVD(48, random_state=0).fit(words.transform(train["text"]))

    def split(part: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.tensor(svd.transform(words.transform(part["text"])) * 10, dtype=torch.float32)
        return x, torch.tensor([names.index(label) for label in part["label"]])

    return {"train": split(train), "val": split(val), "test": split(test)}


def test_class_balanced_retraining_lifts_the_rare_classes(headline_features) -> None:
    _, y = headline_features["train"]
    counts = torch.bincount(y).tolist()
    assert max(counts) >= 40 * min(counts)  # a real long tail: the tail has a handful of headlines
    recalls, macro = {}, {}
    for sampler in ("none", "inverse"):
        head, step = crt(sampler=sampler).fit(headline_features["train"], headline_features["val"], 5)
        assert 0 <= step <= 500
        tx, ty = headline_features["test"]
        predicted = head(tx).argmax(1)
        recalls[sampler] = recall_score(ty, predicted, average=None)
        macro[sampler] = f1_score(ty, predicted, average="macro")
    tail = counts.index(min(counts))
    # instance-balanced re-training leaves the rare classes behind; class-balanced draws lift them
    assert recalls["inverse"].min() > recalls["none"].min() + 0.1
    assert recalls["inverse"][tail] > recalls["none"][tail] + 0.1
    assert macro["inverse"] > macro["none"] + 0.05


def test_bad_options_are_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"callbacks\.crt\.sampler='balanced' is not one of none, inverse"):
        crt(sampler="balanced")
    with pytest.raises(ConfigError, match=r"steps=0"):
        crt(steps=0)


def test_crt_run_adds_its_keys(compose_fast, tmp_path: Path) -> None:
    # cRT is a callback: it joins callbacks=minimal too, and its options are callbacks.crt.<option>
    cfg = compose_fast(tmp_path / "run", "crt=balanced", "callbacks=minimal", "callbacks.crt.steps=50")
    record = train(cfg)
    names = [k.removeprefix("train/count/") for k in record if k.startswith("train/count/")]
    assert len(names) == 5
    per_class = [record[f"crt/test/f1/{name}"] for name in names]
    assert all(0.0 <= f <= 1.0 for f in per_class)
    assert record["crt/test/macro_f1"] == pytest.approx(sum(per_class) / 5)
    assert 0 <= record["crt/step"] <= 50 and 0.0 <= record["crt/test/accuracy"] <= 1.0
    assert "crt/test/macro_f1" not in train(compose_fast(tmp_path / "plain"))  # off unless asked
