"""Group-aware splits: no group (patient, case) on both sides of a train/test split or of a k-fold."""

from __future__ import annotations

import datasets
import numpy as np

__all__ = ["group_kfold", "group_train_test_split"]


def group_train_test_split(
    ds: datasets.Dataset, test_size: float = 0.2, seed: int = 0, group_column: str = "group"
) -> datasets.DatasetDict:
    """Split so that no group (patient, case) appears on both sides (scikit-learn's GroupShuffleSplit)."""
    from sklearn.model_selection import GroupShuffleSplit

    groups = ds[group_column]
    if len(set(groups)) < 2:
        raise ValueError(f"need at least 2 distinct groups to split, got {len(set(groups))}")
    train_idx, test_idx = next(
        GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed).split(
            np.zeros(len(groups)), groups=groups
        )
    )
    return datasets.DatasetDict({"train": ds.select(sorted(train_idx)), "test": ds.select(sorted(test_idx))})


def group_kfold(
    ds: datasets.Dataset, k: int = 5, seed: int = 0, group_column: str = "group", fold_column: str | None = None
) -> list[tuple[list[int], list[int]]]:
    """K (train, validation) index lists. With ``fold_column`` (e.g. BUS-BRA's ``kFold``) the dataset's own folds
    are used (fold f = rows whose value is f); otherwise scikit-learn's GroupKFold with shuffling, by group."""
    if fold_column is not None:
        if fold_column not in ds.column_names:
            raise ValueError(f"fold column {fold_column!r} not in dataset columns {ds.column_names}")
        values = [str(v) for v in ds[fold_column]]
        folds = sorted(set(values), key=lambda v: (len(v), v))
        return [
            ([i for i, v in enumerate(values) if v != f], [i for i, v in enumerate(values) if v == f]) for f in folds
        ]
    from sklearn.model_selection import GroupKFold

    groups = ds[group_column]
    if len(set(groups)) < k:
        raise ValueError(f"{k}-fold needs at least {k} distinct groups, got {len(set(groups))}")
    splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [
        (sorted(tr.tolist()), sorted(va.tolist())) for tr, va in splitter.split(np.zeros(len(groups)), groups=groups)
    ]
