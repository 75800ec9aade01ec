"""Published splits of the generic bundle, and damaged files (issue #17, items 7 and 10).

Every bundle here is written with numpy / h5py alone, as a user would; expected rows come from what the test
wrote. Each test fails on the code before the fix: the docstring's example bundle was served with a random
split, malformed split keys were read silently, and truncated files ended in raw decoder tracebacks.
"""
from __future__ import annotations

import zipfile

import h5py
import numpy as np
import pytest
import scipy.io

import datamodules
from datamodules import readers as R
from datamodules.datamodules import BundleDataModule
from datamodules.readers._common import DamagedFileError

N = 100


def features(seed=0):
    rng = np.random.default_rng(seed)
    return dict(image=rng.random((N, 16)), text=rng.random((N, 12)), labels=np.arange(N) % 5,
                class_names=np.array(list("abcde")))


def docstring_bundle(path):
    """The module docstring's example: 100 items, split_query 10 rows, split_database 90 rows, no split_train."""
    np.savez(path, image=np.random.rand(100, 512), text=np.random.rand(100, 300),
             labels=np.arange(100) % 5, class_names=np.array(list("abcde")),
             split_query=np.arange(10), split_database=np.arange(10, 100))
    return path


def bundle(path, **splits):
    np.savez(path, **features(), **splits)
    return path


def cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


# ------------------------------------------------------------------------------------------------ the rule


def test_docstring_example_keeps_its_published_query_and_database(tmp_path):
    path = docstring_bundle(tmp_path / "mine.npz")
    for dm in (BundleDataModule(path=path), datamodules.create(str(path), seed=3)):
        dm.setup("fit")
        np.testing.assert_array_equal(dm.split.query, np.arange(10))
        np.testing.assert_array_equal(dm.split.database, np.arange(10, 100))
        np.testing.assert_array_equal(dm.split.train, np.arange(10, 100))      # train = database
        assert dm.split.protocol == "fixed"
        assert "no split_train" in dm.split.params["published"]
        assert not np.intersect1d(dm.split.val, dm.split.query).size


def test_train_query_database_and_val_are_served_as_published(tmp_path):
    path = bundle(tmp_path / "b.npz", split_train=np.arange(20, 60), split_query=np.arange(10),
                  split_database=np.arange(20, 100), split_val=np.arange(10, 15))
    dm = BundleDataModule(path=path)
    dm.setup()
    np.testing.assert_array_equal(dm.split.train, np.arange(20, 60))
    np.testing.assert_array_equal(dm.split.query, np.arange(10))
    np.testing.assert_array_equal(dm.split.database, np.arange(20, 100))
    np.testing.assert_array_equal(dm.split.val, np.arange(10, 15))
    np.testing.assert_array_equal(dm.split.val_database, np.arange(20, 100))
    with pytest.raises(ValueError, match="split_val.*n_val / val_pool do not apply"):
        BundleDataModule(path=path, n_val=3).setup()


def test_h5_bundle_follows_the_same_rule(tmp_path):
    path = tmp_path / "b.h5"
    with h5py.File(path, "w") as f:
        for k, v in features().items():
            if k == "class_names":
                f.create_dataset(k, data=list(v), dtype=h5py.string_dtype())
            else:
                f[k] = v
        f["split_query"] = np.arange(90, 100)
        f["split_database"] = np.arange(90)
    dm = BundleDataModule(path=path)
    dm.setup()
    np.testing.assert_array_equal(dm.split.query, np.arange(90, 100))
    np.testing.assert_array_equal(dm.split.train, np.arange(90))


def test_a_protocol_does_not_silently_replace_the_published_split(tmp_path):
    path = docstring_bundle(tmp_path / "mine.npz")
    for kwargs in (dict(protocol="random"), dict(n_query=20), dict(zero_shot=True, n_unseen=2)):
        with pytest.raises(ValueError, match=r"mine\.npz holds its own split.*ignore_published_split=True"):
            datamodules.create(str(path), **kwargs).setup()
    drawn = datamodules.create(str(path), protocol="random", n_query=20, ignore_published_split=True)
    drawn.setup()
    assert len(drawn.split.query) == 20
    assert drawn.split.params["published_split_ignored"] == ["split_database", "split_query"]
    pooled = datamodules.create(str(path), protocol="random", n_query=5, query_pool="query")   # published pool
    pooled.setup()
    assert set(pooled.split.query) <= set(range(10))


def test_cifar10_protocol_uses_a_train_test_bundle_as_its_pools(tmp_path):
    labels = np.repeat(np.arange(2), 50)
    test = np.concatenate([np.arange(0, 10), np.arange(50, 60)])
    np.savez(tmp_path / "gist.npz", image=np.random.rand(N, 8), labels=labels, class_names=np.array(["a", "b"]),
             split_train=np.setdiff1d(np.arange(N), test), split_test=test)
    with pytest.raises(ValueError, match=r"gist\.npz.*no split_query.*protocol='cifar10'"):
        datamodules.create(str(tmp_path / "gist.npz")).setup()
    dm = datamodules.create(str(tmp_path / "gist.npz"), protocol="cifar10", per_class_query=5)
    dm.setup()
    assert set(dm.split.query) <= set(test.tolist()) and len(dm.split.query) == 10


# ------------------------------------------------------------------------------------------------ malformed


@pytest.mark.parametrize("key, right", [("split_querry", "split_query"), ("split_databse", "split_database"),
                                        ("split_trian", "split_train"), ("split-query", "split_query"),
                                        ("Split_val", "split_val")])
def test_misspelt_split_key_names_it_and_suggests_the_right_one(tmp_path, key, right):
    path = bundle(tmp_path / "typo.npz", split_query=np.arange(10), split_database=np.arange(10, 100),
                  **{key: np.arange(50)})
    with pytest.raises(ValueError, match=rf"typo\.npz.*'{key}'.*did you mean '{right}'"):
        R.read_bundle(path)
    with pytest.raises(ValueError, match=rf"'{key}'.*did you mean '{right}'"):
        BundleDataModule(path=path).setup()


def test_custom_split_name_is_accepted_when_a_protocol_argument_names_it(tmp_path):
    path = bundle(tmp_path / "mine.npz", split_holdout=np.arange(30))
    with pytest.raises(ValueError, match="unknown split key 'split_holdout'"):
        R.read_bundle(path)
    dm = BundleDataModule(path=path, protocol="random", query_pool="holdout", n_query=10)
    dm.setup()
    assert set(dm.split.query) <= set(range(30))


@pytest.mark.parametrize("splits, message", [
    (dict(split_query=np.zeros(0, np.int64), split_database=np.arange(100)), r"'split_query' is empty"),
    (dict(split_query=np.array([1, 2, 2, 3]), split_database=np.arange(10, 100)),
     r"'split_query' lists 1 rows more than once \(e\.g\. \[2\]\)"),
    (dict(split_query=np.arange(10), split_database=np.arange(10, 101)), r"'split_database' has 1 row indices outside"),
    (dict(split_query=np.array([-1, 0, 1]), split_database=np.arange(10, 100)), r"'split_query' has 1 row indices"),
    (dict(split_query=np.arange(10.0), split_database=np.arange(10, 100)), r"'split_query' must hold integer"),
    (dict(split_query=np.arange(100) < 10, split_database=np.arange(10, 100)), r"'split_query' is a boolean mask"),
    (dict(split_query=np.arange(1, 11), split_database=np.arange(11, 101)), r"look 1-based"),
])
def test_malformed_split_arrays_are_errors_naming_file_and_key(tmp_path, splits, message):
    path = bundle(tmp_path / "bad.npz", **splits)
    with pytest.raises(ValueError, match=r"bad\.npz: .*" + message):
        BundleDataModule(path=path).setup()


def test_only_split_train_says_that_query_is_missing(tmp_path):
    path = bundle(tmp_path / "train_only.npz", split_train=np.arange(80))
    with pytest.raises(ValueError, match=r"train_only\.npz.*split_train \(80 rows\) but no split_query"):
        BundleDataModule(path=path).setup()


def test_query_without_train_or_database_says_what_is_missing(tmp_path):
    path = bundle(tmp_path / "q.npz", split_query=np.arange(10))
    with pytest.raises(ValueError, match=r"q\.npz.*split_query \(10 rows\) but neither split_train nor "
                                         r"split_database"):
        BundleDataModule(path=path).setup()


def test_queries_inside_the_database_are_an_error_naming_the_file(tmp_path):
    path = bundle(tmp_path / "overlap.npz", split_query=np.arange(10), split_database=np.arange(5, 100))
    with pytest.raises(ValueError, match=r"overlap\.npz: the published split is inconsistent: .*share 5 rows.*"
                                         r"train = split_database \(the file has no split_train\)"):
        BundleDataModule(path=path).setup()


def test_write_bundle_refuses_what_read_bundle_would_refuse(tmp_path):
    arr = R.read_bundle(docstring_bundle(tmp_path / "ok.npz"))
    arr.fixed_splits["holdout"] = np.arange(3)
    with pytest.raises(ValueError, match="unknown split key 'split_holdout'"):
        R.write_bundle(tmp_path / "w.npz", arr)
    R.write_bundle(tmp_path / "w.npz", arr, split_names=["holdout"])
    assert "holdout" in R.read_bundle(tmp_path / "w.npz", split_names=["holdout"]).fixed_splits


# ------------------------------------------------------------------------------------------------ damaged files


def check_damaged(excinfo, path):
    err = excinfo.value
    assert isinstance(err, DamagedFileError) and isinstance(err, ValueError)
    assert str(path) in str(err) and "damaged or truncated" in str(err)
    assert err.__cause__ is not None                      # the decoder's own error, chained


def test_truncated_npz_bundle(tmp_path):
    path = docstring_bundle(tmp_path / "cut.npz")
    assert sorted(R.read_bundle(path).fixed_splits) == ["database", "query"]     # intact, it reads
    cut_in_half(path)
    with pytest.raises(DamagedFileError) as e:
        R.read_bundle(path)
    check_damaged(e, path)
    assert isinstance(e.value.__cause__, zipfile.BadZipFile)
    with pytest.raises(ValueError, match=r"cut\.npz: cannot be read as a \.npz"):
        datamodules.create(str(path)).setup()


def test_npz_that_is_not_a_zip_archive(tmp_path):
    path = tmp_path / "array.npz"
    with open(path, "wb") as f:
        np.save(f, np.arange(5))
    with pytest.raises(DamagedFileError, match=r"array\.npz.*does not start with a zip header"):
        R.read_bundle(path)


def test_truncated_h5_bundle(tmp_path):
    path = tmp_path / "cut.h5"
    with h5py.File(path, "w") as f:
        f["image"] = np.random.rand(N, 64)
        f["labels"] = np.arange(N) % 5
    cut_in_half(path)
    with pytest.raises(DamagedFileError) as e:
        BundleDataModule(path=path).setup()
    check_damaged(e, path)
    assert isinstance(e.value.__cause__, OSError)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_mat_v5(tmp_path, compress):
    path = tmp_path / "cut5.mat"
    scipy.io.savemat(str(path), {"A": np.random.rand(N, 50), "B": np.random.rand(N, 3)}, do_compression=compress)
    assert R.mat_keys(path) == ["A", "B"] and R.load_mat(path)["B"].shape == (N, 3)   # intact, it reads
    cut_in_half(path)
    for call in (lambda: R.mat_keys(path), lambda: R.load_mat(path), lambda: R.load_mat(path, ["A", "B"]),
                 lambda: R.read_unified(path)):
        with pytest.raises(DamagedFileError) as e:
            call()
        check_damaged(e, path)


def test_truncated_mat_v73(tmp_path):
    from test_readers import savemat_v73
    path = savemat_v73(tmp_path / "cut73.mat", {"I_tr": np.random.rand(N, 40), "L_tr": np.ones((N, 1))})
    assert R.is_v73(path)
    cut_in_half(path)
    with pytest.raises(DamagedFileError) as e:
        R.load_mat(path, ["I_tr"])
    check_damaged(e, path)
    assert isinstance(e.value.__cause__, OSError)


def test_a_file_that_is_not_matlab(tmp_path):
    path = tmp_path / "notes.mat"
    path.write_text("these are not MATLAB data\n" * 20)
    with pytest.raises(DamagedFileError, match=r"notes\.mat: cannot be read as a MATLAB \.mat file"):
        R.load_mat(path)


def test_one_based_split_below_n_is_detected(tmp_path):
    """A 1-based split whose largest index is below n passes the range check; no split lists row 0 and the
    smallest index is 1, so it is refused (saying so) unless the user states that row 0 is unused."""
    path = bundle(tmp_path / "matlab.npz", split_query=np.arange(1, 11), split_database=np.arange(11, 91))
    with pytest.raises(ValueError, match=r"matlab\.npz: .*never list row 0.*look 1-based.*Subtract 1.*"
                                         r"check_index_base=false"):
        BundleDataModule(path=path).setup()
    dm = BundleDataModule(path=path, check_index_base=False)
    dm.setup()
    assert sorted(dm.split.query) == list(range(1, 11))
    fixed = bundle(tmp_path / "fixed.npz", split_query=np.arange(0, 10), split_database=np.arange(10, 90))
    BundleDataModule(path=fixed).setup()   # 0-based: row 0 listed, accepted
