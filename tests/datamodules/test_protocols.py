"""Split protocols: sizes, disjointness, class balance, seeding, zero-shot hold-out, bad input.

References are computed here independently (bincounts, set algebra, the protocols' published numbers),
never by calling the code under test a second way.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from datamodules.base import Split
from datamodules.protocols import (PROTOCOLS, class_balanced_split, fixed_split, make_split, random_split,
                                   resolve_count, zero_shot_split)


def single_labels(n_per_class, seed=0):
    """Shuffled class indices with the given number of items per class."""
    labels = np.concatenate([np.full(k, c) for c, k in enumerate(n_per_class)]).astype(np.int64)
    return labels[np.random.RandomState(seed).permutation(len(labels))]


def multi_labels(n, c, seed=0):
    rng = np.random.RandomState(seed)
    y = (rng.rand(n, c) < 0.15).astype(np.float32)
    y[np.arange(n), rng.randint(0, c, n)] = 1.0       # every item has a label
    return y


def assert_disjoint(a, b):
    assert len(np.intersect1d(a, b)) == 0


def assert_common_invariants(split: Split, n: int):
    for name in ("train", "val", "val_database", "query", "database"):
        rows = getattr(split, name)
        assert rows.dtype == np.int64
        assert len(np.unique(rows)) == len(rows)
        assert rows.size == 0 or (rows.min() >= 0 and rows.max() < n)
    assert_disjoint(split.train, split.query)
    assert_disjoint(split.query, split.database)
    assert_disjoint(split.val, split.query)
    assert_disjoint(split.val, split.val_database)
    split.validate(n)


# ------------------------------------------------------------------------------------------------ DJSRH
def test_djsrh_defaults_give_published_sizes_on_multilabel_data():
    y = multi_labels(20015, 24)                         # MIRFlickr-sized, 24 labels
    s = make_split("djsrh", y, seed=0)
    n = y.shape[0]
    assert len(s.query) == 2000 and len(s.train) == 5000
    assert len(s.database) == n - 2000
    np.testing.assert_array_equal(np.union1d(s.query, s.database), np.arange(n))   # database = all but queries
    assert set(s.train.tolist()) <= set(s.database.tolist())
    assert_common_invariants(s, n)


def test_djsrh_per_label_quotas_follow_the_official_rule():
    # DJSRH on MIRFlickr: 80 queries / 200 training items per label, the first label 160 / 400
    labels = single_labels([1000] * 24)
    s = make_split("djsrh", labels, seed=3, per_class_query=80, per_class_train=200)
    np.testing.assert_array_equal(np.bincount(labels[s.query], minlength=24), [160] + [80] * 23)
    np.testing.assert_array_equal(np.bincount(labels[s.train], minlength=24), [400] + [200] * 23)


def test_class_balanced_default_quota_is_even():
    labels = single_labels([60] * 10)
    s = class_balanced_split(labels, n_query=300, n_train=200, seed=0)
    np.testing.assert_array_equal(np.bincount(labels[s.query], minlength=10), [30] * 10)
    np.testing.assert_array_equal(np.bincount(labels[s.train], minlength=10), [20] * 10)


def test_class_balanced_tops_up_short_labels_without_truncating():
    labels = single_labels([5, 100, 100])             # class 0 cannot fill its quota of 10
    s = class_balanced_split(labels, n_query=30, n_train=60, seed=0)
    assert len(s.query) == 30 and len(s.train) == 60
    assert np.bincount(labels[s.query], minlength=3)[0] == 5
    with pytest.raises(ValueError, match="class 0"):
        class_balanced_split(labels, n_query=30, seed=0, strict=True)


# ------------------------------------------------------------------------------------------------ DCMH
def test_dcmh_sizes_and_nesting():
    y = multi_labels(15000, 10)
    s = make_split("dcmh", y, seed=1)
    assert len(s.query) == 2000 and len(s.database) == 13000 and len(s.train) == 10000
    assert set(s.train.tolist()) <= set(s.database.tolist())
    np.testing.assert_array_equal(np.union1d(s.query, s.database), np.arange(15000))
    assert_common_invariants(s, 15000)


# ------------------------------------------------------------------------------------------------ CIFAR-10
def test_cifar10_protocol_100_test_queries_per_class():
    train = np.repeat(np.arange(10), 5000)
    test = np.repeat(np.arange(10), 1000)
    labels = np.concatenate([train, test])
    fixed = {"train": np.arange(50000), "test": np.arange(50000, 60000)}
    s = make_split("cifar10", labels, seed=0, fixed_splits=fixed)
    assert len(s.query) == 1000 and s.query.min() >= 50000                 # queries from the test set only
    np.testing.assert_array_equal(np.bincount(labels[s.query]), [100] * 10)
    assert len(s.database) == 59000
    np.testing.assert_array_equal(s.train, s.database)                     # the other 59,000: train and db
    assert_common_invariants(s, 60000)


def test_cifar10_protocol_refuses_a_class_short_of_queries():
    labels = np.concatenate([np.repeat(np.arange(10), 50), np.repeat(np.arange(10), 120)])
    labels[500:620] = 1                                                      # class 0 has no test items
    fixed = {"test": np.arange(500, 1700)}
    with pytest.raises(ValueError, match="class 0"):
        make_split("cifar10", labels, seed=0, fixed_splits=fixed)


# ------------------------------------------------------------------------------------------------ fixed
def test_fixed_split_wiki_layout():
    n_tr, n_te = 2173, 693
    labels = np.arange(n_tr + n_te) % 10
    fixed = {"train": np.arange(n_tr), "database": np.arange(n_tr), "query": np.arange(n_tr, n_tr + n_te)}
    s = make_split("fixed", labels, seed=0, fixed_splits=fixed, database="database")
    np.testing.assert_array_equal(s.train, np.arange(n_tr))
    np.testing.assert_array_equal(s.database, np.arange(n_tr))
    np.testing.assert_array_equal(s.query, np.arange(n_tr, n_tr + n_te))
    assert set(s.val.tolist()) <= set(range(n_tr)) and len(s.val) == 217    # min(693, 2173 // 10)
    assert_common_invariants(s, n_tr + n_te)


def test_fixed_split_missing_published_split_lists_what_exists():
    with pytest.raises(KeyError, match=r"'query'.*\['test', 'train'\]"):
        fixed_split(np.zeros(10, int), fixed_splits={"train": np.arange(5), "test": np.arange(5, 10)})


# ------------------------------------------------------------------------------------------------ validation
def test_val_is_drawn_apart_from_test_queries_and_prefers_held_out_items():
    labels = single_labels([200] * 5)
    s = class_balanced_split(labels, n_query=100, n_train=300, seed=0, n_val=50)
    assert len(s.val) == 50
    assert_disjoint(s.val, s.train)                       # 'auto' took held-out database items
    assert set(s.val.tolist()) <= set(s.database.tolist())
    np.testing.assert_array_equal(s.val_database, np.setdiff1d(s.database, s.val))
    s2 = class_balanced_split(labels, n_query=100, n_train=300, seed=0, n_val=50, val_pool="exclude_from_train")
    assert set(s2.val.tolist()) <= set(s.train.tolist()) and len(s2.train) == 250
    assert_disjoint(s2.val, s2.train)


def test_changing_n_val_never_moves_a_test_query():
    labels = single_labels([100] * 4)
    a = random_split(labels, n_query=40, seed=5, n_val=10)
    b = random_split(labels, n_query=40, seed=5, n_val=30)
    np.testing.assert_array_equal(a.query, b.query)
    np.testing.assert_array_equal(a.train, b.train)


# ------------------------------------------------------------------------------------------------ seeding
@pytest.mark.parametrize("protocol,kwargs", [("djsrh", dict(n_query=100, n_train=300)),
                                             ("dcmh", dict(n_query=100, n_train=300)),
                                             ("class_balanced", {}), ("random", {})])
def test_same_seed_same_split_different_seed_different_split(protocol, kwargs):
    y = multi_labels(1500, 8, seed=2)
    a = make_split(protocol, y, seed=11, **kwargs)
    b = make_split(protocol, y, seed=11, **kwargs)
    c = make_split(protocol, y, seed=12, **kwargs)
    assert a.to_json() == b.to_json()
    assert not np.array_equal(a.query, c.query)
    assert not np.array_equal(a.train, c.train) or protocol in ("class_balanced", "random")


# ------------------------------------------------------------------------------------------------ bad sizes
def test_more_queries_than_items_is_an_error():
    with pytest.raises(ValueError, match="n_query = 200 but only 100"):
        random_split(np.zeros(100, int), n_query=200)
    with pytest.raises(ValueError, match="n_query"):
        make_split("djsrh", multi_labels(1000, 5))             # 2,000 queries asked of 1,000 items


def test_queries_plus_training_items_beyond_the_data_is_an_error():
    with pytest.raises(ValueError, match="n_train = 950 but only 900"):
        class_balanced_split(single_labels([100] * 10), n_query=100, n_train=950)


@pytest.mark.parametrize("value", [1.5, -3, 0.0, "10", True])
def test_bad_size_values_are_rejected(value):
    with pytest.raises(ValueError, match="n_query"):
        resolve_count(value, 100, "n_query", "demo")


def test_fractions_and_per_class_overflow():
    assert resolve_count(0.1, 1797, "n_query", "demo") == 180
    with pytest.raises(ValueError, match="exceeds"):
        class_balanced_split(single_labels([50] * 10), n_query=20, per_class_query=5)
    with pytest.raises(ValueError, match="n_val"):
        random_split(np.zeros(100, int), n_query=10, n_val=500)


def test_unknown_protocol_and_argument_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid protocols"):
        make_split("nope", np.zeros(10, int))
    with pytest.raises(ValueError, match="n_query"):
        make_split("dcmh", np.zeros(10, int), n_querry=3)


def test_every_protocol_in_the_table_is_callable_with_its_defaults():
    assert {"djsrh", "dcmh", "cifar10", "fixed", "zero_shot", "xlsa17"} <= set(PROTOCOLS)


# ------------------------------------------------------------------------------------------------ zero-shot
NAMES = [f"c{i}" for i in range(8)]


def test_zero_shot_named_classes():
    labels = single_labels([50] * 8)
    s = zero_shot_split(labels, class_names=NAMES, unseen_classes=["c6", "c2"], n_query=30, seed=0)
    assert s.unseen_classes.tolist() == [2, 6]
    assert s.seen_classes.tolist() == [0, 1, 3, 4, 5, 7]
    assert_disjoint(s.seen_classes, s.unseen_classes)
    assert set(labels[s.train].tolist()) == {0, 1, 3, 4, 5, 7}
    assert set(labels[s.query].tolist()) <= {2, 6} and len(s.query) == 30
    assert set(labels[s.database].tolist()) == {2, 6} and len(s.database) == 70
    assert set(labels[s.val].tolist()) <= {0, 1, 3, 4, 5, 7}
    assert_common_invariants(s, len(labels))
    s.validate(len(labels), labels)


def test_zero_shot_database_all_adds_seen_items():
    labels = single_labels([50] * 8)
    s = zero_shot_split(labels, class_names=NAMES, unseen_classes=[7], n_query=20, database="all")
    np.testing.assert_array_equal(s.database, np.setdiff1d(np.arange(400), s.query))


def test_zero_shot_seeded_class_draw():
    labels = single_labels([30] * 8)
    draws = [tuple(zero_shot_split(labels, class_names=NAMES, n_unseen=3, n_query=10, seed=s).unseen_classes)
             for s in range(6)]
    again = tuple(zero_shot_split(labels, class_names=NAMES, n_unseen=3, n_query=10, seed=0).unseen_classes)
    assert draws[0] == again and len(set(draws)) > 1
    assert all(len(d) == 3 for d in draws)


def test_zero_shot_validation_classes_are_not_trained_on():
    labels = single_labels([40] * 8)
    s = zero_shot_split(labels, class_names=NAMES, unseen_classes=["c0"], val_classes=["c1"], n_query=10, n_val=8)
    assert s.extra["val_classes"].tolist() == [1]
    assert 1 not in set(labels[s.train].tolist()) and 0 not in set(labels[s.train].tolist())
    assert set(labels[s.val].tolist()) == {1} and set(labels[s.val_database].tolist()) == {1}


def test_zero_shot_unknown_class_name_is_an_error():
    with pytest.raises(ValueError, match=r"unknown class 'c9'.*'c0'"):
        zero_shot_split(single_labels([10] * 8), class_names=NAMES, unseen_classes=["c9"])


def test_zero_shot_split_leaving_a_class_empty_is_an_error():
    labels = single_labels([20] * 7 + [0])               # class c7 has no items
    with pytest.raises(ValueError, match=r"unseen class\(es\) \['c7'\] empty"):
        zero_shot_split(labels, class_names=NAMES, unseen_classes=["c7"])
    with pytest.raises(ValueError, match=r"seen class\(es\) \['c7'\] empty"):
        zero_shot_split(labels, class_names=NAMES, unseen_classes=["c0"], n_query=5)
    full = single_labels([20] * 8)
    with pytest.raises(ValueError, match="empty in the database"):
        zero_shot_split(full, class_names=NAMES, unseen_classes=["c0"], n_query=20)   # every c0 item a query
    with pytest.raises(ValueError, match="without training"):
        zero_shot_split(full, class_names=NAMES, unseen_classes=["c0"], n_query=5, n_train=3, seed=0)


def test_zero_shot_argument_errors():
    labels = single_labels([10] * 8)
    with pytest.raises(ValueError, match="exactly one"):
        zero_shot_split(labels, class_names=NAMES, unseen_classes=["c1"], n_unseen=2)
    with pytest.raises(ValueError, match="more than once"):
        zero_shot_split(labels, class_names=NAMES, unseen_classes=["c1", 1])
    with pytest.raises(ValueError, match="single-label"):
        zero_shot_split(multi_labels(100, 8), class_names=NAMES, unseen_classes=["c1"])
    with pytest.raises(ValueError, match="seen classes"):
        zero_shot_split(labels, class_names=NAMES, unseen_classes=["c1"], query_pool=np.arange(80))


def test_xlsa17_protocol_uses_the_published_lists():
    labels = single_labels([30] * 8)
    unseen_rows = np.flatnonzero(labels >= 6)
    seen_rows = np.flatnonzero(labels < 6)
    fixed = {"trainval": seen_rows[:150], "test_seen": seen_rows[150:], "test_unseen": unseen_rows}
    s = make_split("xlsa17", labels, seed=0, class_names=NAMES, fixed_splits=fixed, n_query=20)
    assert s.unseen_classes.tolist() == [6, 7]
    np.testing.assert_array_equal(s.train, np.sort(seen_rows[:150]))
    assert set(s.query.tolist()) <= set(unseen_rows.tolist())
    assert set(s.val.tolist()) <= set(seen_rows[150:].tolist())          # held-out seen items (test_seen)


# ------------------------------------------------------------------------------------------------ split file
def test_split_round_trip_and_deterministic_json(tmp_path):
    labels = single_labels([40] * 8)
    s = zero_shot_split(labels, class_names=NAMES, unseen_classes=["c3"], n_query=10, seed=4)
    path = s.save(tmp_path / "split.json")
    content = json.loads(path.read_text())
    assert content["unseen_class_names"] == ["c3"] and content["seed"] == 4
    assert content["indices"]["query"] == s.query.tolist()
    back = Split.load(path)
    assert back == s and back.to_json() == s.to_json()


def test_split_validate_rejects_overlaps():
    bad = Split(train=[0, 1], val=[], val_database=[], query=[1, 2], database=[3])
    with pytest.raises(ValueError, match="'train' and 'query' share"):
        bad.validate(5)
    with pytest.raises(ValueError, match="outside"):
        Split(train=[0], val=[], val_database=[], query=[9], database=[1]).validate(5)


def test_split_file_that_is_not_a_split(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"a": 1}')
    with pytest.raises(ValueError, match="not a lightning-hash split file"):
        Split.load(p)
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        Split.load(tmp_path / "nothing.json")
