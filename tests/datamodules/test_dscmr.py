"""Tests of the DSCMR split-folder reader (datamodules.readers.dscmr) and the ``dscmr`` DataModule.

Small folders are written here in the published layout (one variable per file, named like the file; features
n x d, labels n x 1 int64 class indices from 0, as in penghu-cs/DSCMR's data/pascal), as MATLAB v5 (scipy) and
v7.3 (HDF5 with MATLAB's transposed storage, through test_readers' writer). Expected values come from what the
test wrote, never from the reader.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import datamodules
from datamodules.dscmr import DscmrDataModule
from datamodules.readers.dscmr import read_dscmr
from test_readers import real, savemat_v5, savemat_v73

datamodules.register("dscmr")(DscmrDataModule)

C, D_IMG, D_TXT = 3, 12, 8


def _block(rng, n, c=C):
    y = np.arange(n) % c
    rng.shuffle(y)
    P_img, P_txt = np.eye(c, D_IMG) * 3.0, np.eye(c, D_TXT) * 3.0
    img = (P_img[y] + 0.3 * rng.standard_normal((n, D_IMG))).astype(np.float32)
    txt = (P_txt[y] + 0.3 * rng.standard_normal((n, D_TXT))).astype(np.float32)
    return img, txt, y.astype(np.int64)


def _label_value(y, form, base):
    y = y + base
    if form == "column":          # the published form: n x 1 int64
        return y[:, None].astype(np.int64)
    if form == "row":             # 1 x n
        return y[None, :].astype(np.int64)
    if form == "float":           # n x 1 double
        return y[:, None].astype(np.float64)
    raise AssertionError(form)


def write_dscmr(folder: Path, *, version="v5", n_tr=60, n_te=20, n_va=0, label_form="column", base=0,
                txt_lab=False, seed=0):
    """Write a DSCMR folder; returns {set: (img, txt, labels)} as written (labels from 0)."""
    folder.mkdir(parents=True, exist_ok=True)
    save = savemat_v5 if version == "v5" else savemat_v73
    rng = np.random.default_rng(seed)
    out = {}
    for s, n in (("train", n_tr), ("valid", n_va), ("test", n_te)):
        if n == 0:
            continue
        img, txt, y = _block(rng, n)
        save(folder / f"{s}_img.mat", {f"{s}_img": img})
        save(folder / f"{s}_txt.mat", {f"{s}_txt": txt})
        save(folder / f"{s}_img_lab.mat", {f"{s}_img_lab": _label_value(y, label_form, base)})
        if txt_lab:
            save(folder / f"{s}_txt_lab.mat", {f"{s}_txt_lab": _label_value(y, label_form, base)})
        out[s] = (img, txt, y)
    return out


# ============================================================================================== reader
@pytest.mark.parametrize("version", ["v5", "v73"])
def test_reader_shapes_labels_splits(tmp_path, version):
    w = write_dscmr(tmp_path / "d", version=version)
    if version == "v73":   # the file really is HDF5 with MATLAB's reversed axes (d x n on disk)
        with h5py.File(tmp_path / "d" / "train_img.mat", "r") as f:
            assert f["train_img"].shape == (D_IMG, 60)
        with h5py.File(tmp_path / "d" / "test_img_lab.mat", "r") as f:
            assert f["test_img_lab"].shape == (1, 20)
    a = read_dscmr(tmp_path / "d")
    # rows: train, test, then the test copy the queries search (DSCMR: test against test)
    assert a.modalities["image"].shape == (100, D_IMG) and a.modalities["text"].shape == (100, D_TXT)
    assert a.modalities["image"].dtype == np.float32 and a.labels.dtype == np.int64
    assert a.class_names == ["0", "1", "2"]
    assert {k: v.tolist() for k, v in a.fixed_splits.items()} == {
        "train": list(range(60)), "query": list(range(60, 80)), "database": list(range(80, 100))}
    np.testing.assert_array_equal(a.labels, np.concatenate([w["train"][2], w["test"][2], w["test"][2]]))
    for m, j in (("image", 0), ("text", 1)):
        np.testing.assert_array_equal(a.modalities[m][:60], w["train"][j])
        np.testing.assert_array_equal(a.modalities[m][60:80], w["test"][j])
        np.testing.assert_array_equal(a.modalities[m][80:], w["test"][j])
    # database="train": the training rows are the database, nothing is copied
    b = read_dscmr(tmp_path / "d", database="train")
    assert b.num_items == 80 and b.fixed_splits["database"].tolist() == list(range(60))
    assert b.fixed_splits["query"].tolist() == list(range(60, 80))
    assert read_dscmr(tmp_path / "d", database=None).fixed_splits.keys() == {"train", "query"}
    named = read_dscmr(tmp_path / "d", class_names=["cat", "dog", "bird"])
    assert named.class_names == ["cat", "dog", "bird"]


@pytest.mark.parametrize("version", ["v5", "v73"])
@pytest.mark.parametrize("form", ["column", "row", "float"])
def test_label_orientations_and_float(tmp_path, version, form):
    w = write_dscmr(tmp_path / "d", version=version, label_form=form)
    a = read_dscmr(tmp_path / "d")
    assert a.labels.dtype == np.int64
    np.testing.assert_array_equal(a.labels[:80], np.concatenate([w["train"][2], w["test"][2]]))


def test_valid_files_and_text_labels(tmp_path):
    w = write_dscmr(tmp_path / "d", n_va=15, txt_lab=True)
    a = read_dscmr(tmp_path / "d")
    # [train 0..59; valid 60..74; test 75..94; test copy 95..114; valid copy 115..129]
    assert {k: (int(v[0]), len(v)) for k, v in a.fixed_splits.items()} == {
        "train": (0, 60), "val": (60, 15), "query": (75, 20), "database": (95, 20), "val_database": (115, 15)}
    np.testing.assert_array_equal(a.modalities["text"][60:75], w["valid"][1])
    np.testing.assert_array_equal(a.modalities["text"][115:], w["valid"][1])
    np.testing.assert_array_equal(a.labels[a.fixed_splits["val"]], w["valid"][2])
    dm = DscmrDataModule(root=tmp_path / "d")
    dm.setup()
    assert dm.split.val.tolist() == list(range(60, 75)) and dm.split.val_database.tolist() == list(range(115, 130))
    assert dm.split.query.tolist() == list(range(75, 95)) and dm.split.database.tolist() == list(range(95, 115))
    assert dm.split.params["val_pool"] == "published"
    dm = DscmrDataModule(root=tmp_path / "d", database="train")
    dm.setup()
    assert dm.split.database.tolist() == list(range(60)) and dm.split.val.tolist() == list(range(60, 75))
    assert dm.split.val_database.tolist() == list(range(60))
    with pytest.raises(ValueError, match="publishes its validation set .*n_val"):
        DscmrDataModule(root=tmp_path / "d", n_val=5).setup()
    # text labels that differ from the image labels: both files named
    y = w["test"][2].copy()
    y[3] = (y[3] + 1) % C
    savemat_v5(tmp_path / "d" / "test_txt_lab.mat", {"test_txt_lab": y[:, None]})
    with pytest.raises(ValueError, match=r"test_txt_lab\.mat.*test_img_lab\.mat.*1 rows differ, first at row 3"):
        read_dscmr(tmp_path / "d")


# ============================================================================================== errors
@pytest.mark.parametrize("version", ["v5", "v73"])
def test_one_based_labels_refused(tmp_path, version):
    w = write_dscmr(tmp_path / "d", version=version, base=1)
    with pytest.raises(ValueError, match=r"train_img_lab\.mat \('train_img_lab'\).*look 1-based"):
        read_dscmr(tmp_path / "d")
    a = read_dscmr(tmp_path / "d", label_base=1)          # the explicit opt-in
    np.testing.assert_array_equal(a.labels[:60], w["train"][2])


def test_non_integer_labels_refused(tmp_path):
    write_dscmr(tmp_path / "d")
    y = np.zeros((20, 1))
    y[4] = 0.5
    savemat_v5(tmp_path / "d" / "test_img_lab.mat", {"test_img_lab": y})
    with pytest.raises(ValueError, match=r"test_img_lab\.mat: 'test_img_lab' must hold integer class labels"):
        read_dscmr(tmp_path / "d")


def test_missing_file_names_it_and_lists_the_folder(tmp_path):
    write_dscmr(tmp_path / "d")
    (tmp_path / "d" / "test_txt.mat").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing test_txt\.mat; the folder holds: test_img\.mat, "
                                                r"test_img_lab\.mat, train_img\.mat"):
        read_dscmr(tmp_path / "d")
    with pytest.raises(FileNotFoundError, match=r"missing test_txt\.mat"):
        DscmrDataModule(root=tmp_path / "d").setup()
    # a partial valid set names the missing valid files
    write_dscmr(tmp_path / "e", n_va=10)
    (tmp_path / "e" / "valid_txt.mat").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing valid_txt\.mat \(the valid set is all of"):
        read_dscmr(tmp_path / "e")
    # the parent folder of the dataset folders: the hint names the subfolder
    with pytest.raises(FileNotFoundError, match=r"one level down, in d/, e/: pass root= one of them"):
        read_dscmr(tmp_path)


def test_row_mismatch_names_both_files(tmp_path):
    write_dscmr(tmp_path / "d")
    savemat_v5(tmp_path / "d" / "train_txt.mat", {"train_txt": np.zeros((59, D_TXT), np.float32)})
    with pytest.raises(ValueError, match=r"train_txt\.mat \('train_txt'.*59 rows but .*train_img_lab\.mat "
                                         r"\('train_img_lab'\) has 60 labels"):
        read_dscmr(tmp_path / "d")


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_damaged_file_names_it(tmp_path, version):
    from datamodules.readers._common import DamagedFileError
    write_dscmr(tmp_path / "d", version=version)
    p = tmp_path / "d" / "test_img.mat"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])          # an interrupted download
    with pytest.raises(DamagedFileError, match=r"test_img\.mat: cannot be read"):
        read_dscmr(tmp_path / "d")


def test_features_stored_d_by_n_are_turned(tmp_path):
    w = write_dscmr(tmp_path / "d")
    savemat_v5(tmp_path / "d" / "test_img.mat", {"test_img": w["test"][0].T})    # d x n
    a = read_dscmr(tmp_path / "d")
    np.testing.assert_array_equal(a.modalities["image"][60:80], w["test"][0])


def test_other_protocol_draws_from_the_published_rows_without_copies(tmp_path):
    write_dscmr(tmp_path / "d")
    dm = DscmrDataModule(root=tmp_path / "d", protocol="random", n_query=10)
    dm.setup()
    assert dm.arrays.num_items == 80 and len(dm.split.query) == 10
    with pytest.raises(ValueError, match="database='train' chooses the database of the published split"):
        DscmrDataModule(root=tmp_path / "d", protocol="random", database="train")


# ============================================================================================== end to end
def test_runner_end_to_end(tmp_path):
    from lightning_hash.experiment import main
    folder = tmp_path / "pascal"
    # 100 test items: the runner also reports mAP@50 (cca_itq's config) and P@100, and refuses a database smaller
    # than a rank cut-off
    write_dscmr(folder, version="v73", n_tr=60, n_te=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = main(["--method", "cca_itq", "--data", "dscmr", "--data-root", str(folder), "--bits", "8",
                    "--logger", "none", "--no-progress-bar", "--output", str(tmp_path / "run")])
    m = res["metrics"]
    assert "test/mAP@all/image->text" in m and "test/mAP@all/text->image" in m
    # class-structured features: about 0.6 here, against about 0.36 with the test labels shuffled (misaligned rows)
    assert m["test/mAP@all/image->text"] > 0.5 and m["test/mAP@all/text->image"] > 0.5
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["protocol"] == "fixed"
    assert split["indices"]["query"] == list(range(60, 160))         # exactly the published test rows
    assert split["indices"]["database"] == list(range(160, 260))     # their copy (DSCMR: test against test)
    assert split["indices"]["train"] == list(range(60)) and split["indices"]["val"] == []


# ============================================================================================== real files
def test_dscmr_pascal_real():
    """Pascal Sentences as published in penghu-cs/DSCMR data/pascal (800 train, 100 test, 20 classes, 5 test
    items per class, 300-d text)."""
    a = read_dscmr(real("dscmr/pascal"))
    assert len(a.fixed_splits["train"]) == 800 and len(a.fixed_splits["query"]) == 100 and a.num_classes == 20
    assert a.modalities["text"].shape[1] == 300
    assert np.bincount(a.labels[a.fixed_splits["query"]]).tolist() == [5] * 20
