"""Leak-free splitting: identical texts stay in one split; the val split keeps every class.

A corpus with duplicate texts (BBC News: 2,225 files, 2,127 distinct texts) split row by row can
put one article in training and in test, which inflates every test figure. Here rows are grouped
by their whitespace-normalised text and whole groups are split, stratified by the group's label.
For splits the user gives, :func:`cross_split_duplicates` counts what is shared instead.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from dicebert.errors import DataError

log = logging.getLogger(__name__)


def normalise_text(text: str) -> str:
    """The duplicate key of a text: runs of whitespace become one space, ends stripped."""
    return " ".join(str(text).split())


def val_minimum(available: int, min_per_class: int) -> int:
    """Examples of a class the val split must hold: ``min(min_per_class, available // 2)``.

    ``available`` is the class's count in the pool val is drawn from; half of it at most, so
    training always keeps at least as many examples of the class as val takes.
    """
    return min(min_per_class, available // 2)


def group_stratified_split(
    frame: pd.DataFrame, fraction: float, seed: int, what: str, min_per_class: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off about ``fraction`` of the rows; returns ``(rest, split_off)``.

    Rows with the same normalised text form one group and go to the same side; groups are drawn
    stratified by label (a group whose copies disagree takes its most frequent label). Afterwards
    each class with fewer than :func:`val_minimum` rows in the split gets more of its groups moved
    over, drawn with the same seed.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"data.{what}_fraction must be in (0, 1); got {fraction}")
    if min_per_class < 0:
        raise DataError(f"data.min_val_per_class must be >= 0; got {min_per_class}")
    keys = frame["text"].map(normalise_text).to_numpy()
    labels = frame["label"].astype(str).to_numpy()
    group_of = pd.factorize(keys)[0]
    group_labels = label_per_group(group_of, labels)
    counts = group_labels.value_counts()
    too_small = counts[counts < 2]
    if len(too_small):
        raise DataError(
            f"cannot split off a {what} set: class {too_small.index[0]!r} has "
            f"{int(too_small.iloc[0])} distinct text(s); give data.source.{what}_path or drop the class"
        )
    n_split = max(round(len(group_labels) * fraction), len(counts))
    n_split = min(n_split, len(group_labels) - len(counts))  # leave every class a group to train on
    _, split_groups = train_test_split(
        group_labels.index.to_numpy(),
        test_size=n_split,
        stratify=group_labels.to_numpy(),
        random_state=seed,
    )
    in_split = np.zeros(len(group_labels), dtype=bool)
    in_split[split_groups] = True
    if min_per_class:
        _top_up(in_split, group_of, labels, group_labels, min_per_class, seed)
    rows_in_split = in_split[group_of]
    rest = frame.loc[~rows_in_split].reset_index(drop=True)
    split = frame.loc[rows_in_split].reset_index(drop=True)
    return rest, split


def label_per_group(group_of: np.ndarray, labels: np.ndarray) -> pd.Series:
    """Each group's label (index: group number): its most frequent one when the copies disagree.

    Vectorised for the usual group whose copies agree; the per-group ``value_counts`` (about 0.5 ms
    a group, over a second per split of BBC News) runs only for the few groups with mixed labels.
    """
    by_group = pd.DataFrame({"group": group_of, "label": labels}).groupby("group")["label"]
    group_labels = by_group.first()
    mixed = by_group.nunique() > 1
    if mixed.any():
        disagreeing = pd.DataFrame({"group": group_of, "label": labels})
        disagreeing = disagreeing[mixed.to_numpy()[group_of]]
        group_labels[mixed] = disagreeing.groupby("group")["label"].agg(lambda s: s.value_counts().index[0])
    return group_labels


def _top_up(
    in_split: np.ndarray,
    group_of: np.ndarray,
    labels: np.ndarray,
    group_labels: pd.Series,
    min_per_class: int,
    seed: int,
) -> None:
    """Move seeded random groups of each short class into the split until it has its minimum."""
    rng = np.random.default_rng(seed)
    rows_per_group = np.bincount(group_of)
    for name in sorted(set(labels)):
        need = val_minimum(int((labels == name).sum()), min_per_class)
        have = int(((labels == name) & in_split[group_of]).sum())
        candidates = rng.permutation(np.flatnonzero((group_labels.to_numpy() == name) & ~in_split))
        for group in candidates:
            if have >= need:
                break
            in_split[group] = True
            have += int(rows_per_group[group])


def cross_split_duplicates(tables: Mapping[str, pd.DataFrame]) -> dict[str, int]:
    """Distinct normalised texts found in more than one split: per pair of splits and in total."""
    keys = {role: set(frame["text"].map(normalise_text)) for role, frame in tables.items()}
    report = {f"{a}&{b}": len(keys[a] & keys[b]) for a, b in itertools.combinations(keys, 2)}
    seen: dict[str, int] = {}
    for texts in keys.values():
        for text in texts:
            seen[text] = seen.get(text, 0) + 1
    report["total"] = sum(1 for n in seen.values() if n > 1)
    return report


def duplicate_summary(
    source: Mapping[str, pd.DataFrame], tables: Mapping[str, pd.DataFrame], given: list[str]
) -> dict[str, object]:
    """What ``data_summary.json`` says about duplicates; warns when given splits share texts.

    ``source``: the cleaned tables as loaded (rows and distinct texts are counted there);
    ``tables``: the final splits (shared texts are counted there). ``given``: the splits the
    user supplied; with train only, the project made the others and
    :func:`group_stratified_split` kept every text on one side, so nothing can be shared.
    """
    rows = sum(len(f) for f in source.values())
    distinct = len(set(itertools.chain.from_iterable(f["text"].map(normalise_text) for f in source.values())))
    shared = cross_split_duplicates(tables)
    if shared["total"] and len(given) > 1:
        log.warning(
            "%d distinct text(s) occur in more than one of the given splits (%s): test figures are "
            "inflated by what training saw; deduplicate the files or let the project split them",
            shared["total"],
            ", ".join(f"{k}: {v}" for k, v in shared.items() if k != "total" and v),
        )
    return {
        "source_rows": rows,
        "source_distinct_texts": distinct,
        "source_duplicate_rows": rows - distinct,
        "splits_given": given,
        "cross_split": shared,
    }
