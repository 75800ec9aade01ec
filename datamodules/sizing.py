"""Split sizes drawn from the data, and the guard against splits too small to search.

Shared by the DataModules whose default protocol sizes could exceed a user's file (``multiview``,
``handwritten``): queries per class sized from the data, and a split whose queries outnumber its database
refused with the setting to change.
"""
from __future__ import annotations

import warnings

import numpy as np

from .arrays import DatasetArrays
from .split import Split

#: default share of the items drawn as queries (per class, see the module docstring)
QUERY_FRACTION = 0.1


def _class_counts(arrays: DatasetArrays) -> np.ndarray:
    return arrays.multi_hot().sum(axis=0).astype(np.int64)


def default_per_class_query(arrays: DatasetArrays) -> int:
    """Queries per class sized from the data: about :data:`QUERY_FRACTION` of the items, at most half of the
    smallest class, at least one."""
    counts = _class_counts(arrays)
    present = counts[counts > 0]
    if not present.size:
        return 1
    per = int(round(QUERY_FRACTION * arrays.num_items / present.size))
    return max(1, min(per, int(present.min()) // 2))


def check_split_sizes(name: str, split: Split, arrays: DatasetArrays) -> None:
    """Refuse a split whose queries outnumber its database; warn about classes left without database items.

    A file smaller than a DataModule's default query count (e.g. 210 items with ``handwritten``'s 200 queries)
    would otherwise leave a handful of items to train on and to search.
    """
    n, q, db = arrays.num_items, len(split.query), len(split.database)
    if db < q:
        trains = " and the training set" if np.array_equal(split.train, split.database) else ""
        raise ValueError(f"{name}: the split draws {q} queries from {n} items, leaving only {db} for the "
                         f"database{trains} ({arrays.source}). Ask for fewer queries, e.g. --set data.n_query="
                         f"{max(1, int(round(QUERY_FRACTION * n)))} (n_query=) or --set data.per_class_query="
                         f"{default_per_class_query(arrays)} (per_class_query=)")
    if not split.zero_shot:
        mh = arrays.multi_hot() > 0
        asked = mh[split.query].any(axis=0)
        missing = [arrays.class_names[c] for c in np.flatnonzero(asked & ~mh[split.database].any(axis=0))]
        if missing:
            shown = missing if len(missing) <= 10 else missing[:10] + ["..."]
            warnings.warn(f"{name}: the queries of class(es) {shown} have no item of their class in the database "
                          "(every item of it is a query); ask for fewer queries per class", stacklevel=3)
