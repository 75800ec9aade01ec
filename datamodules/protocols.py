"""Split protocols: pure, seeded functions from labels to a :class:`~datamodules.split.Split`.

Every protocol returns the same five row sets, so the DataModule never needs to know which protocol made
them:

``train``         rows the method trains on;
``query``         the test queries;
``database``      the test database (never contains a test query);
``val``           queries for model selection, drawn apart from the test queries;
``val_database``  the database the ``val`` queries search (never contains a ``val`` query).

Zero-shot protocols also fill ``seen_classes`` / ``unseen_classes`` (class indices).

Protocols and their defaults live in ONE table, :data:`PROTOCOLS`; :func:`make_split` merges the defaults
with the caller's overrides, checks the names, and calls the protocol function. Every size argument
(``n_query``, ``n_train``, ``n_val``) takes an item count (int) or a fraction of its pool (float in
``(0, 1]``); a count larger than the pool raises ``ValueError`` instead of being truncated.

Randomness: each protocol draws from ``numpy.random.RandomState`` streams seeded with ``[seed, stream]``.
``RandomState`` is numpy's frozen legacy generator (its streams are guaranteed not to change between numpy
versions), so a seed reproduces the same split on another machine; the split file written beside every run
is the record regardless. The test split (stream 0), the zero-shot class draw (stream 1) and the
validation draw (stream 2) use separate streams, so changing ``n_val`` never moves a test query.

Example
-------
>>> import numpy as np
>>> labels = np.repeat(np.arange(4), 25)                      # 100 items, 4 classes
>>> split = make_split("class_balanced", labels, seed=0, n_query=20)
>>> len(split.query), len(split.database), np.bincount(labels[split.query]).tolist()
(20, 80, [5, 5, 5, 5])
"""
from __future__ import annotations

import inspect
import numbers
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .arrays import multi_hot  # noqa: F401 (the data layer's one multi-hot conversion)
from .split import Split

RowSpec = Union[None, str, Sequence[int], np.ndarray]

STREAM_TEST, STREAM_CLASSES, STREAM_VAL = 0, 1, 2
VAL_POOLS = ("auto", "held_out", "database", "exclude_from_train")


# --------------------------------------------------------------------------------------------- helpers
def _rng(seed: int, stream: int) -> np.random.RandomState:
    """A legacy (stream-stable) generator for one purpose of one seed."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < 2 ** 32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    return np.random.RandomState(np.array([int(seed), stream], dtype=np.uint32))


def _shuffled(rng: np.random.RandomState, rows: np.ndarray) -> np.ndarray:
    return rows[rng.permutation(len(rows))]


def _sorted(rows: Sequence[int]) -> np.ndarray:
    return np.sort(np.asarray(rows, dtype=np.int64))


def single_label(labels: np.ndarray, protocol: str) -> np.ndarray:
    """Class indices ``[n]``; multi-hot input is accepted only when every row has exactly one label."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return multi_hot(labels).argmax(axis=1).astype(np.int64) if labels.size else labels.astype(np.int64)
    counts = (labels > 0).sum(axis=1)
    if labels.ndim != 2 or not np.all(counts == 1):
        raise ValueError(f"protocol '{protocol}' holds out whole classes and needs single-label data; "
                         f"{int(np.sum(counts != 1))} rows have {sorted(set(counts.tolist()) - {1})} labels "
                         "(for multi-label data use protocol 'zero_shot_multilabel')")
    return (labels > 0).argmax(axis=1).astype(np.int64)


def resolve_count(value: Union[int, float, None], available: int, what: str, protocol: str) -> int:
    """An item count from a count (int) or a fraction of ``available`` (float in ``(0, 1]``).

    Raises ``ValueError`` naming ``what`` when the count is negative or larger than ``available``.

    >>> resolve_count(0.25, 200, "n_query", "demo"), resolve_count(30, 200, "n_query", "demo")
    (50, 30)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"protocol '{protocol}': {what} must be an item count (int) or a fraction in (0, 1] "
                         f"(float), got {value!r}")
    if isinstance(value, numbers.Integral):
        count = int(value)
    else:
        if not 0.0 < float(value) <= 1.0:
            raise ValueError(f"protocol '{protocol}': {what} as a fraction must lie in (0, 1], got {value}")
        count = int(round(float(value) * available))
    if count < 0:
        raise ValueError(f"protocol '{protocol}': {what} must be >= 0, got {count}")
    if count > available:
        raise ValueError(f"protocol '{protocol}': {what} = {count} but only {available} items are available for it; "
                         "ask for fewer")
    return count


def _rows(spec: RowSpec, fixed_splits: Optional[Mapping[str, np.ndarray]], n: int, what: str,
          protocol: str) -> Optional[np.ndarray]:
    """Row indices from a fixed-split name or an explicit index array (``None`` stays ``None``)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if not fixed_splits or spec not in fixed_splits:
            found = sorted(fixed_splits) if fixed_splits else []
            raise KeyError(f"protocol '{protocol}': {what} names the published split '{spec}', but the data "
                           f"has published splits {found}")
        rows = np.asarray(fixed_splits[spec])
    else:
        rows = np.asarray(spec)
    if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
        raise ValueError(f"protocol '{protocol}': {what} must be a 1-d integer row index array")
    rows = rows.astype(np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise ValueError(f"protocol '{protocol}': {what} indexes rows outside [0, {n})")
    if np.unique(rows).size != rows.size:
        raise ValueError(f"protocol '{protocol}': {what} lists some rows more than once")
    return _sorted(rows)


def _describe(spec: Any) -> Any:
    """A JSON-friendly record of a protocol argument (index arrays are summarised, not copied)."""
    if isinstance(spec, np.ndarray) or (isinstance(spec, (list, tuple)) and spec and
                                        all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                            for v in spec) and len(spec) > 32):
        return f"<{len(spec)} explicit rows>"
    if isinstance(spec, (list, tuple)):
        return [_describe(v) for v in spec]
    if isinstance(spec, numbers.Integral) and not isinstance(spec, bool):
        return int(spec)
    if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
        return float(spec)
    return spec


def class_ids(spec: Sequence[Union[str, int]], class_names: Sequence[str], what: str) -> np.ndarray:
    """Class indices from a list of class names and/or indices.

    Raises ``ValueError`` for an unknown name (listing the known ones), an index out of range, or a class
    named twice.

    >>> class_ids(["cat", 0], ["dog", "cat"], "unseen_classes").tolist()
    [1, 0]
    """
    if isinstance(spec, (str, bytes)) or not isinstance(spec, (Sequence, np.ndarray)):
        raise ValueError(f"{what} must be a list of class names or indices, got {spec!r}")
    lookup = {name: i for i, name in enumerate(class_names)}
    out: List[int] = []
    for item in spec:
        if isinstance(item, str):
            if item not in lookup:
                raise ValueError(f"{what}: unknown class '{item}'; the classes are {list(class_names)}")
            out.append(lookup[item])
        elif isinstance(item, numbers.Integral) and not isinstance(item, bool):
            if not 0 <= int(item) < len(class_names):
                raise ValueError(f"{what}: class index {item} is outside [0, {len(class_names)})")
            out.append(int(item))
        else:
            raise ValueError(f"{what}: {item!r} is neither a class name nor a class index")
    if len(set(out)) != len(out):
        raise ValueError(f"{what} names a class more than once: {list(spec)}")
    return np.asarray(out, dtype=np.int64)


def _quotas(total: int, num_classes: int, per_class: Optional[int], what: str, protocol: str) -> List[int]:
    """Per-class quotas in class order: ``per_class`` each, the first class taking the remainder.

    This is DJSRH's rule: on MIRFlickr (24 labels) 80 queries and 200 training items per label, the first label
    160 and 400, so that the totals are 2,000 and 5,000.
    """
    per = total // num_classes if per_class is None else int(per_class)
    if per < 0:
        raise ValueError(f"protocol '{protocol}': per-class {what} must be >= 0, got {per}")
    first = total - (num_classes - 1) * per
    if first < 0:
        raise ValueError(f"protocol '{protocol}': {per} {what} per class x {num_classes - 1} classes exceeds the "
                         f"total of {total}")
    return [first] + [per] * (num_classes - 1)


def _draw_val(rng: np.random.RandomState, train: np.ndarray, database: np.ndarray, n_query: int,
              n_val: Union[int, float, None], val_pool: str, protocol: str
              ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Dict[str, Any]]:
    """Validation queries drawn from the database pool (never a test query), and their database.

    ``val_pool``: ``"held_out"`` database items not used for training; ``"database"`` any database item;
    ``"exclude_from_train"`` training items, which are then removed from ``train``; ``"auto"`` (default)
    ``held_out`` when it holds enough items, else ``database``.
    Default ``n_val``: as many as the test queries, at most a tenth of the database.
    """
    if val_pool not in VAL_POOLS:
        raise ValueError(f"protocol '{protocol}': val_pool must be one of {VAL_POOLS}, got {val_pool!r}")
    held_out = np.setdiff1d(database, train)
    count = min(n_query, len(database) // 10) if n_val is None else resolve_count(n_val, len(database), "n_val",
                                                                                   protocol)
    chosen = val_pool
    if val_pool == "auto":
        chosen = "held_out" if len(held_out) >= max(count, 1) else "database"
    pool = {"held_out": held_out, "database": database,
            "exclude_from_train": np.intersect1d(train, database)}[chosen]
    if count > len(pool):
        raise ValueError(f"protocol '{protocol}': n_val = {count} but the '{chosen}' pool holds only {len(pool)} "
                         "items; ask for fewer or choose another val_pool")
    val = _sorted(_shuffled(rng, pool)[:count])
    if chosen == "exclude_from_train":
        train = np.setdiff1d(train, val)
    return val, np.setdiff1d(database, val), train, {"n_val": count, "val_pool": chosen}


# --------------------------------------------------------------------------------------------- protocols
def class_balanced_split(labels: np.ndarray, *, n_query: Union[int, float, None] = None,
                         n_train: Union[int, float, None] = None, per_class_query: Optional[int] = None,
                         per_class_train: Optional[int] = None, query_pool: RowSpec = None, strict: bool = False,
                         n_val: Union[int, float, None] = None, val_pool: str = "auto", seed: int = 0,
                         fixed_splits: Optional[Mapping[str, np.ndarray]] = None,
                         protocol: str = "class_balanced") -> Split:
    """Class-balanced queries and training items, drawn per label (DJSRH's protocol, generalised).

    For each class ``c`` in order: shuffle the not-yet-taken items having label ``c``; take the class's query
    quota (from ``query_pool`` only, when given), then its training quota. Quotas are ``per_class_*`` (default
    ``total // C``), the first class taking the remainder. Multi-label items are taken once, by the first of
    their labels reached. Shortfalls (a label with too few free items) are topped up with random free items,
    or raise ``ValueError`` when ``strict``. ``database`` = all items but the queries; ``train`` = the drawn
    training items, or the whole database when ``n_train`` is ``None``.

    Parameters
    ----------
    labels: class indices ``[n]`` or multi-hot ``[n, C]``.
    n_query, n_train: totals (count or fraction); ``n_query`` defaults to ``per_class_query * C``.
    per_class_query, per_class_train: per-class quotas (DJSRH on MIRFlickr: 80 / 200).
    query_pool: rows (or a published split's name) queries may come from, e.g. CIFAR-10's ``"test"``.
    strict: raise instead of topping up when a class cannot fill its quota.
    n_val, val_pool: validation queries, see :func:`_draw_val`.

    >>> s = class_balanced_split(np.repeat(np.arange(3), 10), n_query=6, n_train=9, seed=1)
    >>> len(s.query), len(s.train), len(np.intersect1d(s.query, s.train))
    (6, 9, 0)
    """
    mh = multi_hot(labels)
    n, num_classes = mh.shape
    if num_classes == 0:
        raise ValueError(f"protocol '{protocol}': the labels have no classes")
    pool_rows = _rows(query_pool, fixed_splits, n, "query_pool", protocol)
    in_pool = np.ones(n, dtype=bool) if pool_rows is None else np.isin(np.arange(n), pool_rows)
    if n_query is None:
        if per_class_query is None:
            raise ValueError(f"protocol '{protocol}': give n_query or per_class_query")
        n_query = int(per_class_query) * num_classes
    q_total = resolve_count(n_query, int(in_pool.sum()), "n_query", protocol)
    if q_total == 0:
        raise ValueError(f"protocol '{protocol}': n_query must be at least 1")
    t_total = None if n_train is None else resolve_count(n_train, n - q_total, "n_train", protocol)
    if q_total >= n:
        raise ValueError(f"protocol '{protocol}': n_query = {q_total} takes all {n} items; nothing is left for the "
                         "database")
    q_quota = _quotas(q_total, num_classes, per_class_query, "queries", protocol)
    t_quota = None if t_total is None else _quotas(t_total, num_classes, per_class_train, "training items",
                                                    protocol)
    rng = _rng(seed, STREAM_TEST)
    taken = np.zeros(n, dtype=bool)
    query: List[int] = []
    train: List[int] = []
    for c in range(num_classes):
        cand = _shuffled(rng, np.flatnonzero(mh[:, c] & ~taken))
        chosen_q = cand[in_pool[cand]][:q_quota[c]]
        if strict and len(chosen_q) < q_quota[c]:
            raise ValueError(f"protocol '{protocol}': class {c} has {len(chosen_q)} free items for queries but the "
                             f"protocol asks for {q_quota[c]}")
        taken[chosen_q] = True
        query.extend(chosen_q.tolist())
        if t_quota is not None:
            free = cand[~taken[cand]]
            chosen_t = free[:t_quota[c]]
            if strict and len(chosen_t) < t_quota[c]:
                raise ValueError(f"protocol '{protocol}': class {c} has {len(chosen_t)} free items for training but "
                                 f"the protocol asks for {t_quota[c]}")
            taken[chosen_t] = True
            train.extend(chosen_t.tolist())
    if len(query) < q_total:   # labels ran short: top up at random (DJSRH does the same for its training set)
        extra = _shuffled(rng, np.flatnonzero(in_pool & ~taken))[:q_total - len(query)]
        taken[extra] = True
        query.extend(extra.tolist())
    if t_total is not None and len(train) < t_total:
        extra = _shuffled(rng, np.flatnonzero(~taken))[:t_total - len(train)]
        taken[extra] = True
        train.extend(extra.tolist())
    q = _sorted(query)
    database = np.setdiff1d(np.arange(n), q)
    tr = database if t_total is None else _sorted(train)
    val, val_db, tr, val_info = _draw_val(_rng(seed, STREAM_VAL), tr, database, len(q), n_val, val_pool, protocol)
    params = dict(n_query=q_total, n_train=t_total, per_class_query=per_class_query,
                  per_class_train=per_class_train, query_pool=_describe(query_pool), strict=bool(strict), **val_info)
    return Split(train=tr, val=val, val_database=val_db, query=q, database=database, protocol=protocol,
                 seed=int(seed), params=params, num_items=n)


def random_split(labels: np.ndarray, *, n_query: Union[int, float], n_train: Union[int, float, None] = None,
                 query_pool: RowSpec = None, n_val: Union[int, float, None] = None, val_pool: str = "auto",
                 seed: int = 0, fixed_splits: Optional[Mapping[str, np.ndarray]] = None,
                 protocol: str = "random") -> Split:
    """Random queries, the rest as database, training items drawn from the database (DCMH's protocol).

    >>> s = random_split(np.zeros(50, dtype=int), n_query=10, n_train=20, seed=0)
    >>> len(s.query), len(s.database), len(s.train), set(s.train) <= set(s.database)
    (10, 40, 20, True)
    """
    lab = np.asarray(labels)
    n = lab.shape[0]
    pool = _rows(query_pool, fixed_splits, n, "query_pool", protocol)
    pool = np.arange(n, dtype=np.int64) if pool is None else pool
    q_count = resolve_count(n_query, len(pool), "n_query", protocol)
    if q_count == 0:
        raise ValueError(f"protocol '{protocol}': n_query must be at least 1")
    if q_count >= n:
        raise ValueError(f"protocol '{protocol}': n_query = {q_count} takes all {n} items; nothing is left for the "
                         "database")
    rng = _rng(seed, STREAM_TEST)
    query = _sorted(_shuffled(rng, pool)[:q_count])
    database = np.setdiff1d(np.arange(n), query)
    if n_train is None:
        train, t_count = database, None
    else:
        t_count = resolve_count(n_train, len(database), "n_train", protocol)
        train = _sorted(_shuffled(rng, database)[:t_count])
    val, val_db, train, val_info = _draw_val(_rng(seed, STREAM_VAL), train, database, q_count, n_val, val_pool,
                                             protocol)
    params = dict(n_query=q_count, n_train=t_count, query_pool=_describe(query_pool), **val_info)
    return Split(train=train, val=val, val_database=val_db, query=query, database=database, protocol=protocol,
                 seed=int(seed), params=params, num_items=n)


def fixed_split(labels: np.ndarray, *, fixed_splits: Optional[Mapping[str, np.ndarray]], query: RowSpec = "query",
                train: RowSpec = "train", database: RowSpec = None, n_val: Union[int, float, None] = None,
                val_pool: str = "auto", seed: int = 0, protocol: str = "fixed") -> Split:
    """A published split (Wiki, a bundle's own indices): ``query`` and ``train`` as published.

    ``database``: a published split's name or rows; ``None`` (default) = the training set, as in Wiki's
    standard protocol; ``"rest"`` = every item that is not a query. Only the validation queries are drawn
    (seeded), from the database.

    >>> s = fixed_split(np.arange(6) % 2, fixed_splits={"train": np.arange(4), "query": np.array([4, 5])},
    ...                 n_val=1)
    >>> s.query.tolist(), s.database.tolist(), len(s.val)
    ([4, 5], [0, 1, 2, 3], 1)
    """
    n = np.asarray(labels).shape[0]
    q = _rows(query, fixed_splits, n, "query", protocol)
    tr = _rows(train, fixed_splits, n, "train", protocol)
    if q is None or tr is None or q.size == 0:
        raise ValueError(f"protocol '{protocol}': needs non-empty published 'query' and 'train' splits")
    if database is None:
        db = tr
    elif isinstance(database, str) and database == "rest":
        db = np.setdiff1d(np.arange(n), q)
    else:
        db = _rows(database, fixed_splits, n, "database", protocol)
    val, val_db, tr, val_info = _draw_val(_rng(seed, STREAM_VAL), tr, db, len(q), n_val, val_pool, protocol)
    params = dict(query=_describe(query), train=_describe(train), database=_describe(database), **val_info)
    return Split(train=tr, val=val, val_database=val_db, query=q, database=db, protocol=protocol, seed=int(seed),
                 params=params, num_items=n)


def _test_queries_and_database(rng: np.random.RandomState, pool: np.ndarray, q_count: int, is_unseen: np.ndarray,
                               eligible: np.ndarray, database: str, protocol: str) -> Tuple[np.ndarray, np.ndarray]:
    """The zero-shot test queries (``q_count`` of ``pool``, drawn with ``rng``) and their database: ``"unseen"``
    the other unseen items, ``"all"`` every other ``eligible`` item."""
    if q_count == 0:
        raise ValueError(f"protocol '{protocol}': n_query must be at least 1 (the unseen pool has {len(pool)} items)")
    query = _sorted(_shuffled(rng, pool)[:q_count])
    not_query = ~np.isin(np.arange(is_unseen.shape[0]), query)
    if database == "unseen":
        return query, np.flatnonzero(is_unseen & not_query)
    if database == "all":
        return query, np.flatnonzero(eligible & not_query)
    raise ValueError(f"protocol '{protocol}': database must be 'unseen' or 'all', got {database!r}")


def zero_shot_split(labels: np.ndarray, *, class_names: Sequence[str],
                    unseen_classes: Optional[Sequence[Union[str, int]]] = None, n_unseen: Optional[int] = None,
                    unseen_from: RowSpec = None, val_classes: Optional[Sequence[Union[str, int]]] = None,
                    n_val_classes: int = 0, val_classes_from: RowSpec = None,
                    n_query: Union[int, float, None] = None, query_pool: RowSpec = None,
                    n_train: Union[int, float, None] = None, train_pool: RowSpec = None, database: str = "unseen",
                    n_val: Union[int, float, None] = None, seed: int = 0,
                    fixed_splits: Optional[Mapping[str, np.ndarray]] = None,
                    protocol: str = "zero_shot") -> Split:
    """Zero-shot class hold-out: train on seen classes, query and search unseen ones.

    Unseen classes come from exactly one of ``unseen_classes`` (names or indices), ``n_unseen`` (seeded draw)
    or ``unseen_from`` (the classes of a published split, e.g. xlsa17's ``"test_unseen"``).
    Optionally some seen classes are held out for model selection (``val_classes`` / ``n_val_classes`` /
    ``val_classes_from``); training never sees them.

    * ``train``: items of the training classes (``train_pool`` restricts the candidates, ``n_train`` subsamples).
    * ``query``: ``n_query`` random unseen items (from ``query_pool`` when given); default 1,000 (the
      SitNet/AgNet protocol), at most a fifth of the pool.
    * ``database``: ``"unseen"`` (default; ZSIH) the other unseen items, or ``"all"`` (AgNet/SitNet IBIR) every
      item that is not a query, seen classes included.
    * ``val``: from the validation classes when there are any (a real zero-shot check), else from seen items not
      used for training when there are enough, else from seen items; ``val_database`` likewise, minus ``val``.

    Raises ``ValueError`` for an unknown class name, a class both seen and unseen, or a split that leaves a
    class empty (an unseen class without items in the database, a training class without training items).

    >>> labels = np.repeat(np.arange(4), 10)
    >>> s = zero_shot_split(labels, class_names=list("abcd"), unseen_classes=["d"], n_query=4)
    >>> s.unseen_classes.tolist(), len(s.query), len(s.database), set(labels[s.train].tolist())
    ([3], 4, 6, {0, 1, 2})
    """
    lab = single_label(labels, protocol)
    n, num_classes = lab.shape[0], len(class_names)
    if lab.size and lab.max() >= num_classes:
        raise ValueError(f"protocol '{protocol}': labels reach class {lab.max()} but only {num_classes} class names")
    counts = np.bincount(lab, minlength=num_classes)
    sources = [s for s in (unseen_classes, n_unseen, unseen_from) if s is not None]
    if len(sources) != 1:
        raise ValueError(f"protocol '{protocol}': give exactly one of unseen_classes (names), n_unseen (a seeded "
                         "draw) or unseen_from (a published split)")
    class_rng = _rng(seed, STREAM_CLASSES)
    if unseen_classes is not None:
        unseen = class_ids(unseen_classes, class_names, "unseen_classes")
    elif n_unseen is not None:
        if isinstance(n_unseen, bool) or not isinstance(n_unseen, numbers.Integral) or not 0 < n_unseen < num_classes:
            raise ValueError(f"protocol '{protocol}': n_unseen must be an integer in [1, {num_classes - 1}], "
                             f"got {n_unseen!r}")
        # drawn among the classes that have items (a class of the names without any item cannot be tested);
        # with every class populated this is the same draw as a permutation of all classes
        populated = np.flatnonzero(counts > 0)
        if int(n_unseen) >= populated.size:
            raise ValueError(f"protocol '{protocol}': n_unseen={n_unseen} but only {populated.size} of the "
                             f"{num_classes} classes have items; lower n_unseen")
        unseen = class_rng.permutation(populated)[:int(n_unseen)]
    else:
        unseen = np.unique(lab[_rows(unseen_from, fixed_splits, n, "unseen_from", protocol)])
    unseen = np.sort(unseen.astype(np.int64))
    seen = np.setdiff1d(np.arange(num_classes), unseen)
    if unseen.size == 0 or seen.size == 0:
        raise ValueError(f"protocol '{protocol}': a zero-shot split needs both seen and unseen classes, got "
                         f"{seen.size} seen and {unseen.size} unseen")
    # validation classes, held out of the seen ones
    if (val_classes is not None) + bool(n_val_classes) + (val_classes_from is not None) > 1:
        raise ValueError(f"protocol '{protocol}': give at most one of val_classes, n_val_classes, val_classes_from")
    if val_classes is not None:
        vcls = class_ids(val_classes, class_names, "val_classes")
    elif val_classes_from is not None:
        vcls = np.unique(lab[_rows(val_classes_from, fixed_splits, n, "val_classes_from", protocol)])
    elif n_val_classes:
        if not 0 < int(n_val_classes) < seen.size:
            raise ValueError(f"protocol '{protocol}': n_val_classes must be in [0, {seen.size - 1}], "
                             f"got {n_val_classes}")
        vcls = _shuffled(class_rng, seen)[:int(n_val_classes)]
    else:
        vcls = np.zeros(0, dtype=np.int64)
    vcls = np.sort(vcls.astype(np.int64))
    if np.intersect1d(vcls, unseen).size:
        raise ValueError(f"protocol '{protocol}': validation classes "
                         f"{[class_names[c] for c in np.intersect1d(vcls, unseen)]} are also unseen test classes")
    train_classes = np.setdiff1d(seen, vcls)
    if train_classes.size == 0:
        raise ValueError(f"protocol '{protocol}': no seen class is left for training")
    for group, role in ((unseen, "unseen"), (train_classes, "seen"), (vcls, "validation")):
        empty = [class_names[c] for c in group if counts[c] == 0]
        if empty:
            raise ValueError(f"protocol '{protocol}': the zero-shot split leaves {role} class(es) {empty} empty: "
                             "the data has no items of them")
    is_unseen = np.isin(lab, unseen)
    is_train_class = np.isin(lab, train_classes)
    is_val_class = np.isin(lab, vcls)

    # test queries and database
    rng = _rng(seed, STREAM_TEST)
    pool = _rows(query_pool, fixed_splits, n, "query_pool", protocol)
    pool = np.flatnonzero(is_unseen) if pool is None else pool
    if not np.all(is_unseen[pool]):
        raise ValueError(f"protocol '{protocol}': query_pool holds items of seen classes "
                         f"{sorted({class_names[c] for c in lab[pool][~is_unseen[pool]]})}")
    q_count = min(1000, len(pool) // 5) if n_query is None else resolve_count(n_query, len(pool), "n_query", protocol)
    query, db = _test_queries_and_database(rng, pool, q_count, is_unseen, np.ones(n, dtype=bool), database,
                                           protocol)
    missing = [class_names[c] for c in unseen if not np.any(lab[db] == c)]
    if missing:
        raise ValueError(f"protocol '{protocol}': the zero-shot split leaves unseen class(es) {missing} empty in the "
                         "database (all their items became queries); ask for fewer queries")

    # training items
    cand = _rows(train_pool, fixed_splits, n, "train_pool", protocol)
    if cand is None:
        cand = np.flatnonzero(is_train_class)
    elif not np.all(is_train_class[cand]):
        bad = sorted({class_names[c] for c in lab[cand][~is_train_class[cand]]})
        raise ValueError(f"protocol '{protocol}': train_pool holds items of classes {bad} that are unseen or "
                         "held out for validation")
    if n_train is None:
        train, t_count = cand, None
    else:
        t_count = resolve_count(n_train, len(cand), "n_train", protocol)
        train = _sorted(_shuffled(rng, cand)[:t_count])
    empty = [class_names[c] for c in train_classes if not np.any(lab[train] == c)]
    if empty:
        raise ValueError(f"protocol '{protocol}': the zero-shot split leaves seen class(es) {empty} without training "
                         "items; ask for more training items")

    # validation
    vrng = _rng(seed, STREAM_VAL)
    if vcls.size:
        vpool = np.flatnonzero(is_val_class)
        base = vpool if database == "unseen" else np.flatnonzero(is_val_class | is_train_class)
        pool_name = "validation_classes"
        v_count = (min(q_count, len(vpool) // 10) if n_val is None
                   else resolve_count(n_val, len(vpool), "n_val", protocol))
    else:
        seen_rows = np.flatnonzero(~is_unseen)
        held = np.setdiff1d(seen_rows, train)
        base = seen_rows
        v_count = (min(q_count, len(seen_rows) // 10) if n_val is None
                   else resolve_count(n_val, len(seen_rows), "n_val", protocol))
        vpool, pool_name = (held, "held_out_seen") if len(held) >= max(v_count, 1) else (seen_rows, "seen")
    val = _sorted(_shuffled(vrng, vpool)[:v_count])
    val_db = np.setdiff1d(base, val)
    extra = {"val_classes": vcls} if vcls.size else {}
    params = dict(unseen_classes=_describe(unseen_classes), n_unseen=n_unseen, unseen_from=_describe(unseen_from),
                  val_classes=_describe(val_classes), n_val_classes=int(n_val_classes or 0),
                  val_classes_from=_describe(val_classes_from), n_query=q_count, query_pool=_describe(query_pool),
                  n_train=t_count, train_pool=_describe(train_pool), database=database, n_val=v_count,
                  val_pool=pool_name)
    return Split(train=train, val=val, val_database=val_db, query=query, database=db, seen_classes=seen,
                 unseen_classes=unseen, extra=extra, protocol=protocol, seed=int(seed), params=params, num_items=n,
                 class_names=list(class_names))


def zero_shot_multilabel_split(labels: np.ndarray, *, class_names: Sequence[str],
                               unseen_classes: Optional[Sequence[Union[str, int]]] = None,
                               n_unseen: Optional[int] = None, n_query: Union[int, float] = 0.2,
                               n_train: Union[int, float, None] = None, database: str = "unseen",
                               n_val: Union[int, float, None] = None, val_pool: str = "auto", seed: int = 0,
                               fixed_splits: Optional[Mapping[str, np.ndarray]] = None,
                               protocol: str = "zero_shot_multilabel") -> Split:
    """Multi-label zero-shot hold-out (NUS-WIDE / VOC / COCO with class word vectors): the classes are split into
    seen and unseen label sets, and an item is "unseen" as soon as it carries ONE unseen label.

    Labels are multi-hot ``[n, C]`` (class indices ``[n]`` are accepted too). The unseen classes come from exactly
    one of ``unseen_classes`` (names or indices) or ``n_unseen`` (a seeded draw among the classes that have items).

    * Items without any label are excluded from every set (they have no class semantics to train on and are
      relevant to nothing); their number is recorded as ``params["n_unlabelled"]``.
    * ``train``: the items whose labels are all seen (``n_train`` subsamples them). No item carrying an unseen
      label is ever trained on.
    * ``query``: ``n_query`` (default a fifth) of the items carrying at least one unseen label, drawn at random.
      As in the common protocol, a query may also carry seen labels (``params["queries_may_carry_seen"]``, which
      :meth:`Split.validate <datamodules.split.Split.validate>` reads: queries must carry an unseen class).
    * ``database``: ``"unseen"`` (default) the other items carrying an unseen label, or ``"all"`` every labelled
      item that is not a query (seen-only items included, training items too).
    * ``val`` / ``val_database``: validation queries drawn from the seen-only (training-eligible) items, never
      from the items carrying an unseen label, so never a test query; their database is the other seen-only
      items. ``val_pool`` as in :func:`_draw_val`, over the seen-only items: ``"held_out"`` those not used for
      training (with ``n_train``), ``"database"`` any of them, ``"exclude_from_train"`` removed from ``train``,
      ``"auto"`` (default) ``held_out`` when it holds enough items, else ``database``. Default ``n_val``: as many as
      the test queries, at most a tenth of the seen-only items.

    Relevance is the library's multi-label rule (sharing at least one label). Classes without any item stay
    seen (recorded as ``params["empty_classes"]``). Raises ``ValueError`` for an unknown class, an unseen class
    without items or without items left in the database, or a seen class whose items all carry an unseen label
    (or were not drawn by ``n_train``), so that it has no training item.

    >>> labels = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]])
    >>> s = zero_shot_multilabel_split(labels, class_names=list("abc"), unseen_classes=["c"], n_query=2, n_val=1)
    >>> s.unseen_classes.tolist(), s.train.tolist(), sorted(s.query.tolist() + s.database.tolist())
    ([2], [0, 1, 2, 6], [3, 4, 5, 7])
    """
    lab = np.asarray(labels)
    num_classes = len(class_names)
    if lab.ndim == 1:
        if lab.size and (not np.issubdtype(lab.dtype, np.integer) or lab.min() < 0 or lab.max() >= num_classes):
            raise ValueError(f"protocol '{protocol}': class-index labels must be integers in [0, {num_classes})")
        mh = multi_hot(lab, num_classes)
    elif lab.ndim == 2:
        if lab.shape[1] != num_classes:
            raise ValueError(f"protocol '{protocol}': labels have {lab.shape[1]} columns but there are "
                             f"{num_classes} class names")
        mh = multi_hot(lab)
    else:
        raise ValueError(f"protocol '{protocol}': labels must be multi-hot [n, C] or class indices [n], got shape "
                         f"{lab.shape}")
    n = mh.shape[0]
    counts = mh.sum(axis=0)
    labelled = mh.any(axis=1)
    if (unseen_classes is None) == (n_unseen is None):
        raise ValueError(f"protocol '{protocol}': give exactly one of unseen_classes (names or indices) or n_unseen "
                         "(a seeded draw)")
    populated = np.flatnonzero(counts > 0)
    if unseen_classes is not None:
        unseen = class_ids(unseen_classes, class_names, "unseen_classes")
    else:
        if isinstance(n_unseen, bool) or not isinstance(n_unseen, numbers.Integral) or not 0 < n_unseen < num_classes:
            raise ValueError(f"protocol '{protocol}': n_unseen must be an integer in [1, {num_classes - 1}], "
                             f"got {n_unseen!r}")
        if int(n_unseen) >= populated.size:
            raise ValueError(f"protocol '{protocol}': n_unseen={n_unseen} but only {populated.size} of the "
                             f"{num_classes} classes have items; lower n_unseen")
        unseen = _rng(seed, STREAM_CLASSES).permutation(populated)[:int(n_unseen)]
    unseen = np.sort(unseen.astype(np.int64))
    seen = np.setdiff1d(np.arange(num_classes), unseen)
    if unseen.size == 0 or seen.size == 0:
        raise ValueError(f"protocol '{protocol}': a zero-shot split needs both seen and unseen classes, got "
                         f"{seen.size} seen and {unseen.size} unseen")
    empty = [class_names[c] for c in unseen if counts[c] == 0]
    if empty:
        raise ValueError(f"protocol '{protocol}': the zero-shot split leaves unseen class(es) {empty} empty: the "
                         "data has no items of them")
    carries_unseen = mh[:, unseen].any(axis=1)
    seen_only = labelled & ~carries_unseen

    # test queries and database
    rng = _rng(seed, STREAM_TEST)
    pool = np.flatnonzero(carries_unseen)
    q_count = resolve_count(n_query, len(pool), "n_query", protocol)
    query, db = _test_queries_and_database(rng, pool, q_count, carries_unseen, labelled, database, protocol)
    missing = [class_names[c] for c in unseen if not np.any(mh[db, c])]
    if missing:
        raise ValueError(f"protocol '{protocol}': the zero-shot split leaves unseen class(es) {missing} empty in the "
                         "database (all their items became queries); ask for fewer queries")

    # training items: every label seen
    cand = np.flatnonzero(seen_only)
    if n_train is None:
        train, t_count = cand, None
    else:
        t_count = resolve_count(n_train, len(cand), "n_train", protocol)
        train = _sorted(_shuffled(rng, cand)[:t_count])
    untrained = [class_names[c] for c in seen if counts[c] > 0 and not np.any(mh[train, c])]
    if untrained:
        why = ("every item of theirs also carries an unseen label; name them unseen too or draw other unseen "
               "classes" if n_train is None else "ask for more training items")
        raise ValueError(f"protocol '{protocol}': the zero-shot split leaves seen class(es) {untrained} without "
                         f"training items: {why}")

    # validation: from the seen-only items, never an item carrying an unseen label
    val, val_db, train, val_info = _draw_val(_rng(seed, STREAM_VAL), train, cand, q_count, n_val, val_pool,
                                             protocol)
    params = dict(unseen_classes=_describe(unseen_classes), n_unseen=n_unseen, n_query=q_count, n_train=t_count,
                  database=database, **val_info, n_unlabelled=int(n - labelled.sum()),
                  empty_classes=[class_names[c] for c in np.flatnonzero(counts == 0)], queries_may_carry_seen=True)
    return Split(train=train, val=val, val_database=val_db, query=query, database=db, seen_classes=seen,
                 unseen_classes=unseen, protocol=protocol, seed=int(seed), params=params, num_items=n,
                 class_names=list(class_names))


# --------------------------------------------------------------------------------------------- the table
#: protocol name -> (function, defaults). The one place where protocols and their default sizes are defined.
PROTOCOLS: Dict[str, Tuple[Callable[..., Split], Dict[str, Any]]] = {
    # DJSRH (ICCV 2019) on MIRFlickr / NUS-WIDE: class-balanced per label, 2,000 queries, 5,000 training items,
    # database = all but the queries. (MIRFlickr's official quotas are 80/200 per label: pass per_class_*.)
    "djsrh": (class_balanced_split, dict(n_query=2000, n_train=5000)),
    # DCMH (CVPR 2017): 2,000 random queries, the rest as database, 10,000 training items from the database.
    "dcmh": (random_split, dict(n_query=2000, n_train=10000)),
    # CIFAR-10 (DVB, DGH, ITQ): 100 test images per class as queries, the other 59,000 train and database.
    "cifar10": (class_balanced_split, dict(per_class_query=100, query_pool="test", strict=True, n_train=None)),
    # generic seeded draws for data without a published protocol (fractions of the data by default)
    "class_balanced": (class_balanced_split, dict(n_query=0.1, n_train=None)),
    "random": (random_split, dict(n_query=0.1, n_train=None)),
    # a published split (Wiki: train = database = 2,173, queries = 693)
    "fixed": (fixed_split, dict(query="query", train="train", database=None)),
    # zero-shot class hold-out (SitNet / AgNet / ZSIH)
    "zero_shot": (zero_shot_split, dict(database="unseen")),
    # multi-label zero-shot hold-out (NUS-WIDE / VOC / COCO with class word vectors): items carrying any unseen
    # label never train; a fifth of them are the queries, the others the database
    "zero_shot_multilabel": (zero_shot_multilabel_split, dict(n_query=0.2, database="unseen")),
    # xlsa17 "proposed split" (Xian et al.): seen = trainval classes, unseen = test_unseen classes
    "xlsa17": (zero_shot_split, dict(unseen_from="test_unseen", train_pool="trainval", query_pool="test_unseen",
                                     database="unseen")),
}


def protocol_arguments(protocol: str) -> List[str]:
    """The argument names a protocol accepts (besides labels, seed, class names and published splits)."""
    fn, _ = _lookup(protocol)
    skip = {"labels", "seed", "class_names", "fixed_splits", "protocol"}
    return [p for p in inspect.signature(fn).parameters if p not in skip]


def _lookup(protocol: str) -> Tuple[Callable[..., Split], Dict[str, Any]]:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{protocol}'; valid protocols: {sorted(PROTOCOLS)}")
    return PROTOCOLS[protocol]


def check_arguments(protocol: str, arguments: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` listing the valid names when ``arguments`` holds one the protocol does not take."""
    valid = protocol_arguments(protocol)
    unknown = sorted(set(arguments) - set(valid))
    if unknown:
        raise ValueError(f"protocol '{protocol}' takes no argument(s) {unknown}; valid: {valid}")


def make_split(protocol: str, labels: np.ndarray, *, seed: int = 0, class_names: Optional[Sequence[str]] = None,
               fixed_splits: Optional[Mapping[str, np.ndarray]] = None, **arguments: Any) -> Split:
    """Draw a split with a named protocol: its defaults from :data:`PROTOCOLS`, overridden by ``arguments``.

    >>> split = make_split("dcmh", np.zeros(3000, dtype=int), seed=0, n_train=500)
    >>> len(split.query), len(split.database), len(split.train)
    (2000, 1000, 500)
    """
    fn, defaults = _lookup(protocol)
    check_arguments(protocol, arguments)
    kwargs = {**defaults, **arguments}
    accepted = inspect.signature(fn).parameters
    if "class_names" in accepted:
        if class_names is None:
            raise ValueError(f"protocol '{protocol}' needs the class names")
        kwargs["class_names"] = list(class_names)
    kwargs["fixed_splits"] = fixed_splits
    split = fn(np.asarray(labels), seed=seed, protocol=protocol, **kwargs)
    if class_names is not None:
        split.class_names = list(class_names)
    return split
