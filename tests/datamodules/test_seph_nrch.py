"""Tests of the SePH/RoPH struct reader (``seph``) and the NRCH-style HDF5 reader (``nrch``) and their DataModules.

Tiny files are written here in the published layouts: SePH ``.mat`` v5 through scipy (the struct as a dict and as
a numpy record), v7.3 as MATLAB writes it (HDF5 with the 512-byte MATLAB header, reversed axes, structs as groups,
sparse matrices as ``data``/``ir``/``jc`` groups); NRCH files through h5py row-major, MATLAB-style transposed, and
as a MATLAB v7.3 ``.mat``. Expected values come from what the test wrote, never from the readers.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

import datamodules
from datamodules.readers._common import DamagedFileError
from datamodules.readers.nrch import read_nrch
from datamodules.readers.seph import read_seph
from datamodules.seph import NrchDataModule, SephDataModule

datamodules.register("seph")(SephDataModule)
datamodules.register("nrch")(NrchDataModule)

# ------------------------------------------------------------------------------------------- MATLAB v7.3 writer
_MCLASS = {np.dtype(np.float64): "double", np.dtype(np.float32): "single", np.dtype(np.uint8): "uint8",
           np.dtype(np.int32): "int32", np.dtype(np.bool_): "logical"}


def _h5_write(group, name, value):
    """One MATLAB value in the v7.3 convention: dict -> struct group, scipy sparse -> sparse group, arrays with
    reversed axes (MATLAB column-major)."""
    if isinstance(value, dict):
        g = group.create_group(name)
        g.attrs["MATLAB_class"] = np.bytes_("struct")
        fields = np.empty(len(value), dtype=h5py.vlen_dtype(np.dtype("S1")))
        for i, k in enumerate(value):
            fields[i] = np.array(list(k), dtype="S1")
        g.attrs.create("MATLAB_fields", fields, dtype=h5py.vlen_dtype(np.dtype("S1")))
        for k, v in value.items():
            _h5_write(g, k, v)
        return
    if sp.issparse(value):
        m = sp.csc_matrix(value)
        m.sort_indices()
        g = group.create_group(name)
        logical = m.dtype == np.bool_
        g.attrs["MATLAB_class"] = np.bytes_("logical" if logical else "double")
        g.attrs["MATLAB_sparse"] = np.uint64(m.shape[0])
        g.create_dataset("data", data=m.data.astype(np.uint8 if logical else np.float64))
        g.create_dataset("ir", data=m.indices.astype(np.uint64))
        g.create_dataset("jc", data=m.indptr.astype(np.uint64))
        return
    arr = np.asarray(value)
    if arr.ndim == 1:
        arr = arr[None, :]          # MATLAB has no 1-d arrays: a row vector (1 x k)
    ds = group.create_dataset(name, data=np.ascontiguousarray(arr.T))
    ds.attrs["MATLAB_class"] = np.bytes_(_MCLASS[arr.dtype])


def savemat_v73(path: Path, variables: dict) -> Path:
    with h5py.File(path, "w", userblock_size=512) as f:
        for k, v in variables.items():
            _h5_write(f, k, v)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write((header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM").ljust(512, b"\x00"))
    return path


def savemat_v5(path: Path, variables: dict) -> Path:
    scipy.io.savemat(str(path), variables, format="5")
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[:int(len(raw) * keep)])
    return path


# ------------------------------------------------------------------------------------------------- SePH data
N, D1, D2, C = 200, 16, 12, 4    # val/test databases above cca_itq's P@100 cut-off


def seph_content(seed=0, one_hot=False):
    """Items (one column each), labels C x n, 1-based indices: 160 train, 20 test, 20 in neither."""
    rng = np.random.default_rng(seed)
    if one_hot:
        cls = np.arange(N) % C
        Y = np.zeros((C, N))
        Y[cls, np.arange(N)] = 1
    else:
        Y = (rng.random((C, N)) < 0.4).astype(np.float64)
        Y[0, Y.sum(axis=0) == 0] = 1
        Y[:, 5] = [1, 1, 0, 1]                       # a clearly multi-label item
    X1 = rng.normal(size=(D1, N)) + 2.0 * np.repeat(Y[:1], D1, axis=0)
    X2 = rng.normal(size=(D2, N)) + 2.0 * np.repeat(Y[:1], D2, axis=0)
    perm = rng.permutation(N) + 1                    # 1-based, unsorted as MATLAB randperm gives them
    ind_test, ind_train = perm[:20].astype(np.float64), perm[20:180].astype(np.float64)
    return X1, X2, Y, ind_train, ind_test


def write_seph(path: Path, version="v5", *, split_where="inside", sparse=True, one_hot=False, seed=0,
               ind_train=None, ind_test=None, drop=(), record=False):
    X1, X2, Y, tr, te = seph_content(seed, one_hot)
    tr = tr if ind_train is None else np.asarray(ind_train, dtype=np.float64)
    te = te if ind_test is None else np.asarray(ind_test, dtype=np.float64)
    Yv = sp.csc_matrix(Y.astype(bool) if version == "v73" else Y) if sparse else Y
    split = {"ind_train": tr[None, :], "ind_test": te[None, :]} if version == "v5" else \
        {"ind_train": tr, "ind_test": te}
    data = {"X1": X1, "X2": sp.csc_matrix(X2) if sparse else X2, "Y": Yv}
    if split_where in ("inside", "both"):
        data["split"] = split
    for k in drop:
        data.pop(k)
    variables = {"data": data}
    if split_where in ("top", "both"):
        variables["split"] = split
    if record and version == "v5":   # the struct as a numpy record (1x1 structured array of object fields)
        rec = np.empty((1, 1), dtype=[(k, object) for k in data])
        for k, v in data.items():
            rec[0, 0][k] = v
        variables["data"] = rec
    (savemat_v5 if version == "v5" else savemat_v73)(path, variables)
    return X1, X2, Y, tr, te


@pytest.mark.parametrize("version, split_where, record", [("v5", "inside", False), ("v5", "top", True),
                                                           ("v73", "inside", False), ("v73", "top", False)])
def test_seph_reads_struct_file(tmp_path, version, split_where, record):
    path = tmp_path / "seph.mat"
    X1, X2, Y, tr, te = write_seph(path, version, split_where=split_where, record=record)
    a = read_seph(path)
    assert a.modalities["image"].shape == (N, D1) and a.modalities["text"].shape == (N, D2)
    assert a.modalities["image"].dtype == np.float32
    np.testing.assert_allclose(a.modalities["image"], X1.T, rtol=1e-6)   # columns -> rows
    np.testing.assert_allclose(a.modalities["text"], X2.T, rtol=1e-6)
    assert a.labels.dtype == np.float32 and a.labels.shape == (N, C)
    np.testing.assert_array_equal(a.labels, Y.T)
    assert a.labels[5].tolist() == [1, 1, 0, 1]
    assert a.class_names == ["0", "1", "2", "3"]
    # 1-based -> 0-based, the file's order (no sorting, nothing dropped)
    assert a.fixed_splits["train"].tolist() == (tr.astype(int) - 1).tolist()
    assert a.fixed_splits["query"].tolist() == (te.astype(int) - 1).tolist()
    assert a.fixed_splits["database"].tolist() == a.fixed_splits["train"].tolist()
    assert a.num_items == N                          # the 20 items in neither index stay


def test_seph_one_hot_labels_dense_and_folder_root(tmp_path):
    X1, X2, Y, tr, te = write_seph(tmp_path / "wiki_seph.mat", "v73", split_where="both", sparse=True, one_hot=True)
    a = read_seph(tmp_path, class_names=list("abcd"))         # the folder holding exactly one .mat
    assert a.labels.dtype == np.int64 and a.labels.tolist() == (np.arange(N) % C).tolist()
    assert a.class_names == list("abcd")
    write_seph(tmp_path / "v5.mat", "v5", sparse=False, one_hot=True)
    assert read_seph(tmp_path / "v5.mat").labels.tolist() == (np.arange(N) % C).tolist()
    with pytest.raises(FileNotFoundError, match="2 candidate .mat files"):
        read_seph(tmp_path)
    with pytest.raises(ValueError, match="class_names has 2 names but data.Y has 4 classes"):
        read_seph(tmp_path / "v5.mat", class_names=["a", "b"])


def test_seph_rows_per_item_variant(tmp_path):
    """A file re-saved with one row per item (n x d, Y n x C) reads to the same arrays."""
    X1, X2, Y, tr, te = seph_content()
    path = savemat_v5(tmp_path / "rows.mat", {"data": {"X1": X1.T, "X2": X2.T, "Y": Y.T,
                                                       "split": {"ind_train": tr, "ind_test": te}}})
    a = read_seph(path)
    np.testing.assert_allclose(a.modalities["image"], X1.T, rtol=1e-6)
    np.testing.assert_array_equal(a.labels, Y.T)


def test_seph_square_matrices_read_as_published_columns(tmp_path):
    X1 = np.arange(16.0).reshape(4, 4)
    Y = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 1.0]])    # C = n = 4, not symmetric
    path = savemat_v5(tmp_path / "sq.mat", {"data": {"X1": X1, "X2": X1 + 1, "Y": Y,
                                                     "split": {"ind_train": [[1, 2, 3]], "ind_test": [[4]]}}})
    a = read_seph(path)
    np.testing.assert_array_equal(a.modalities["image"], X1.T)
    np.testing.assert_array_equal(a.labels, Y.T)


def test_seph_separate_split_file(tmp_path):
    X1, X2, Y, tr, te = write_seph(tmp_path / "data.mat", "v5", split_where="none")
    with pytest.raises(KeyError, match=r"no split: neither data.split nor a top-level 'split'"):
        read_seph(tmp_path / "data.mat")
    savemat_v5(tmp_path / "split.mat", {"ind_train": tr, "ind_test": te})
    a = read_seph(tmp_path / "data.mat", split_path=tmp_path / "split.mat")
    assert a.fixed_splits["query"].tolist() == (te.astype(int) - 1).tolist()


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_seph_refuses_bad_indices(tmp_path, version):
    path = tmp_path / "bad.mat"
    _, _, _, tr, te = seph_content()
    write_seph(path, version, ind_train=np.arange(0, 90), ind_test=np.arange(90, 110))   # 0-based: 0..109
    with pytest.raises(ValueError, match=r"bad\.mat: 'data\.split\.ind_train' has the index 0: it looks 0-based"):
        read_seph(path)
    write_seph(path, version, split_where="top", ind_train=np.r_[tr[:-1], N + 1])
    with pytest.raises(ValueError, match=rf"bad\.mat: 'split\.ind_train' has the index {N + 1}, outside the "
                                         rf"1-based range 1\.\.{N}"):
        read_seph(path)
    write_seph(path, version, ind_train=np.r_[tr, te[:1]])
    with pytest.raises(ValueError, match=r"1 items are in both ind_train and ind_test"):
        read_seph(path)
    write_seph(path, version, ind_train=np.r_[tr, tr[:2]])
    with pytest.raises(ValueError, match=r"'data\.split\.ind_train' lists 2 indices more than once"):
        read_seph(path)
    write_seph(path, version, ind_test=np.r_[te[:-1], 2.5])
    with pytest.raises(ValueError, match=r"must hold integer indices"):
        read_seph(path)


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_seph_missing_keys_and_damaged_file(tmp_path, version):
    path = tmp_path / "m.mat"
    write_seph(path, version, drop=("X2",))
    with pytest.raises(KeyError, match=r"m\.mat: struct 'data' has no field 'X2'; fields found: "
                                       r"\['X1', 'Y', 'split'\]"):
        read_seph(path)
    (savemat_v5 if version == "v5" else savemat_v73)(path, {"features": np.ones((2, 2))})
    with pytest.raises(KeyError, match=r"no variable 'data'; keys found: \['features'\]"):
        read_seph(path)
    write_seph(path, version, split_where="both", ind_test=None)
    assert read_seph(path).fixed_splits["query"].size == 20     # both, equal: fine
    write_seph(path, version)
    with pytest.raises(DamagedFileError, match=r"m\.mat: cannot be read"):
        read_seph(truncate(path))


def test_seph_disagreeing_splits_and_non_struct(tmp_path):
    X1, X2, Y, tr, te = seph_content()
    path = savemat_v5(tmp_path / "x.mat", {"data": {"X1": X1, "X2": X2, "Y": Y,
                                                    "split": {"ind_train": tr, "ind_test": te}},
                                           "split": {"ind_train": tr[1:], "ind_test": te}})
    with pytest.raises(ValueError, match="data.split and the top-level 'split' hold different indices"):
        read_seph(path)
    savemat_v5(path, {"data": X1})
    with pytest.raises(ValueError, match="'data' must be a MATLAB struct"):
        read_seph(path)
    savemat_v5(path, {"data": {"X1": X1, "X2": X2[:, :-1], "Y": Y, "split": {"ind_train": tr, "ind_test": te}}})
    with pytest.raises(ValueError, match="features do not have one column per item"):
        read_seph(path)


def test_seph_datamodule_database_choices(tmp_path):
    _, _, _, tr, te = write_seph(tmp_path / "s.mat", "v73")
    dm = datamodules.create("seph", root=tmp_path / "s.mat")
    dm.setup()
    assert dm.split.query.tolist() == sorted(te.astype(int) - 1)
    assert dm.split.train.tolist() == dm.split.database.tolist() == sorted(tr.astype(int) - 1)
    assert [t.name for t in dm.tasks] == ["image->text", "text->image"]
    dm = datamodules.create("seph", path=tmp_path / "s.mat", database="all")
    dm.setup()
    assert dm.split.database.tolist() == sorted(set(range(N)) - set(te.astype(int) - 1))   # train + the 20 unused
    assert dm.split.train.tolist() == sorted(tr.astype(int) - 1)
    dm2 = datamodules.create("seph", root=tmp_path / "s.mat", protocol_args={"database": "all"})
    dm2.setup()
    assert dm2.split.database.tolist() == dm.split.database.tolist()
    with pytest.raises(FileNotFoundError, match="seph: data not found"):
        datamodules.create("seph", root=tmp_path / "nope.mat").setup()


# ------------------------------------------------------------------------------------------------- NRCH data
SIZES = {"Train": 60, "Query": 10, "DataBase": 160}
TR, Q, DB = SIZES.values()
QUERY_ROWS, DB_ROWS = list(range(TR, TR + Q)), list(range(TR + Q, TR + Q + DB))
DI, DT, CL = 10, 8, 3


def nrch_content(seed=0, one_hot=False):
    rng = np.random.default_rng(seed)
    out = {}
    for s, n in SIZES.items():
        if one_hot:
            L = np.eye(CL)[np.arange(n) % CL]
        else:
            L = (rng.random((n, CL)) < 0.5).astype(np.float64)
            L[L.sum(1) == 0, 0] = 1
            L[0] = 1                                   # multi-label
        out[f"Lab{s}"] = L
        out[f"Img{s}"] = (rng.normal(size=(n, DI)) + 2 * L[:, :1]).astype(np.float32)
        out[f"Tag{s}"] = (rng.random((n, DT)) < 0.3).astype(np.float32)
    out["ImgDataBase"][:SIZES["Train"]] = out["ImgTrain"]      # the training set stored again in the database
    return out


def write_nrch(path: Path, content: dict, transposed=False, drop=()):
    with h5py.File(path, "w") as f:
        for k, v in content.items():
            if k not in drop:
                f.create_dataset(k, data=v.T if transposed else v)
    return path


def expected(content):
    order = ("Train", "Query", "DataBase")
    return {m: np.concatenate([content[f"{m}{s}"] for s in order]) for m in ("Img", "Tag", "Lab")}


@pytest.mark.parametrize("form", ["rows", "transposed", "matlab_v73"])
def test_nrch_reads_published_sets(tmp_path, form):
    content = nrch_content()
    if form == "matlab_v73":    # MATLAB variables n x d: HDF5 stores them d x n, load_mat undoes it
        path = savemat_v73(tmp_path / "nrch.mat", {k: v.astype(np.float64) for k, v in content.items()})
    else:
        path = write_nrch(tmp_path / "nrch.h5", content, transposed=(form == "transposed"))
    a = read_nrch(path)
    e = expected(content)
    total = sum(SIZES.values())
    assert a.modalities["image"].shape == (total, DI) and a.modalities["text"].shape == (total, DT)
    np.testing.assert_allclose(a.modalities["image"], e["Img"], rtol=1e-6)
    np.testing.assert_array_equal(a.modalities["text"], e["Tag"])
    assert a.labels.dtype == np.float32
    np.testing.assert_array_equal(a.labels, e["Lab"])
    assert a.class_names == ["0", "1", "2"]
    assert a.fixed_splits["train"].tolist() == list(range(TR))
    assert a.fixed_splits["query"].tolist() == QUERY_ROWS
    assert a.fixed_splits["database"].tolist() == DB_ROWS
    # the training items stored twice are kept as written
    np.testing.assert_array_equal(a.modalities["image"][:TR], a.modalities["image"][TR + Q:TR + Q + TR])


def test_nrch_one_hot_folder_and_orientation(tmp_path):
    write_nrch(tmp_path / "only.hdf5", nrch_content(one_hot=True))
    (tmp_path / "notes.txt").write_text("not data")
    a = read_nrch(tmp_path)                              # the folder holding exactly one HDF5 file
    assert a.labels.dtype == np.int64
    assert a.labels.tolist() == [i % CL for n in SIZES.values() for i in range(n)]
    dm = datamodules.create("nrch", root=tmp_path, class_names=["x", "y", "z"])
    dm.setup()
    assert dm.class_names == ["x", "y", "z"] and dm.split.query.tolist() == QUERY_ROWS
    assert dm.split.database.tolist() == DB_ROWS and dm.split.train.tolist() == list(range(TR))
    write_nrch(tmp_path / "second.h5", nrch_content(seed=1))
    with pytest.raises(FileNotFoundError, match="holds 2 HDF5 files with these datasets"):
        read_nrch(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    savemat_v5(empty / "old.mat", {"x": np.ones(2)})       # a v5 .mat is not an HDF5 file
    with pytest.raises(FileNotFoundError, match=r"holds no .h5 / .hdf5 / v7.3 .mat file \(old.mat are not HDF5"):
        read_nrch(empty)


def test_nrch_ambiguous_orientation_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    # every array square: fits n x d and d x n alike
    content = {}
    for s, n in (("Train", 4), ("Query", 4), ("DataBase", 4)):
        content[f"Img{s}"] = rng.normal(size=(n, n))
        content[f"Tag{s}"] = rng.normal(size=(n, n))
        content[f"Lab{s}"] = np.eye(n)
    path = write_nrch(tmp_path / "square.h5", content)
    with pytest.raises(ValueError, match="orientation is ambiguous.*orientation='rows' or 'columns'"):
        read_nrch(path)
    rows, cols = read_nrch(path, orientation="rows"), read_nrch(path, orientation="columns")
    np.testing.assert_allclose(rows.modalities["image"][:4], content["ImgTrain"])
    np.testing.assert_allclose(cols.modalities["image"][:4], content["ImgTrain"].T)
    bad = nrch_content()
    bad["TagQuery"] = bad["TagQuery"][:-1]
    with pytest.raises(ValueError, match=r"fit neither one row per item.*TagQuery \(9, 8\)"):
        read_nrch(write_nrch(tmp_path / "bad.h5", bad))
    with pytest.raises(ValueError, match="orientation='columns', but the array shapes do not fit it"):
        read_nrch(write_nrch(tmp_path / "rows.h5", nrch_content()), orientation="columns")


def test_nrch_missing_datasets_and_damaged_file(tmp_path):
    path = write_nrch(tmp_path / "part.h5", nrch_content(), drop=("TagQuery", "LabDataBase"))
    with pytest.raises(KeyError, match=r"part\.h5: missing the datasets \['TagQuery', 'LabDataBase'\]; datasets "
                                       r"found: \['ImgDataBase', 'ImgQuery', 'ImgTrain', 'LabQuery', 'LabTrain', "
                                       r"'TagDataBase', 'TagTrain'\]"):
        read_nrch(path)
    path = write_nrch(tmp_path / "cut.h5", nrch_content())
    with pytest.raises(DamagedFileError, match=r"cut\.h5: cannot be read as an HDF5 file"):
        read_nrch(truncate(path, 0.6))
    with pytest.raises(FileNotFoundError, match="nope.h5: not found"):
        read_nrch(tmp_path / "nope.h5")


# ------------------------------------------------------------------------------------------------ end to end
def _run(tmp_path, data, root):
    from lightning_hash.experiment import main
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = main(["--method", "cca_itq", "--data", data, "--data-root", str(root), "--bits", "8",
                    "--logger", "none", "--no-progress-bar", "--output", str(out)])
    assert np.isfinite(res["metrics"]["test/mAP@all/image->text"])
    assert np.isfinite(res["metrics"]["test/mAP@all/text->image"])
    return json.loads((out / "split.json").read_text())


def _rows(split, name):
    """A set's rows as split.json records them."""
    return split["indices"][name]


def test_seph_end_to_end(tmp_path):
    path = tmp_path / "seph.mat"
    _, _, _, tr, te = write_seph(path, "v73", split_where="top")
    split = _run(tmp_path, "seph", path)
    assert split["protocol"] == "fixed" and split["num_items"] == N
    assert _rows(split, "query") == sorted((te.astype(int) - 1).tolist())
    assert _rows(split, "database") == sorted((tr.astype(int) - 1).tolist())


def test_nrch_end_to_end(tmp_path):
    path = write_nrch(tmp_path / "nrch.h5", nrch_content())
    split = _run(tmp_path, "nrch", path)
    assert _rows(split, "query") == QUERY_ROWS
    assert _rows(split, "database") == DB_ROWS
