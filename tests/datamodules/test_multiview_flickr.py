"""Generic multi-view ``.mat`` files (reader + ``multiview`` DataModule) and MIRFlickr's VGG-feature file sets.

Small files are written here in the published layouts: multi-view ``X`` (1 x V or V x 1 cell, views n x d or
d x n) + ``Y`` (n x 1, 1-based or with gaps), MATLAB v5 (scipy: a cell is a numpy object array) and v7.3 (the
h5py helper of ``test_readers``); MIRFlickr as the DCMH line's ``mirflickr25k-iall-vgg.mat`` (``XAll``) +
``-lall.mat`` (``LAll``) + ``-yall.mat`` (``YAll``) and the ``-rand`` set. Expected values come from what the
test wrote.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io

import datamodules
from datamodules import readers as R
from datamodules.datamodules import HandwrittenDataModule, MirflickrDataModule
from datamodules.multiview import MultiviewDataModule
from datamodules.readers.multiview import read_multiview
from test_readers import Cell, savemat_v5, savemat_v73

datamodules.register("multiview")(MultiviewDataModule)


def cell(views, column=False):
    """A MATLAB cell as scipy writes it: an object array 1 x V (or V x 1)."""
    out = np.empty((len(views), 1) if column else (1, len(views)), dtype=object)
    for i, v in enumerate(views):
        out.flat[i] = v
    return out


def write_multiview(path: Path, labels, dims=(5, 3, 4), version="v5", seed=0, transpose=(), column=False):
    """A multi-view file: views n x d (``transpose``: positions stored d x n), ``Y`` n x 1 as given."""
    rng = np.random.RandomState(seed)
    labels = np.asarray(labels)
    views = [rng.rand(len(labels), d) for d in dims]
    stored = [v.T if i in transpose else v for i, v in enumerate(views)]
    y = labels.reshape(-1, 1).astype(np.float64)
    if version == "v5":
        scipy.io.savemat(str(path), {"X": cell(stored, column), "Y": y})
    else:
        savemat_v73(path, {"X": Cell(stored), "Y": y})
    return views


def setup(dm):
    dm.setup()
    return dm


# ============================================================================================ reader
@pytest.mark.parametrize("version", ["v5", "v73"])
def test_100_class_file_without_names_loads_with_100_classes(tmp_path, version):
    labels = np.tile(np.arange(1, 101), 3)                                  # 1-based, 300 items
    views = write_multiview(tmp_path / "leaves.mat", labels, version=version, transpose=(1,))
    a = read_multiview(tmp_path / "leaves.mat")
    assert a.num_classes == 100 and a.class_names == [str(c) for c in range(1, 101)]
    np.testing.assert_array_equal(a.labels, labels - 1)                     # 1..100 -> 0..99
    assert list(a.modalities) == ["view0", "view1", "view2"]
    for v, m in zip(views, a.modalities.values()):                          # view1 was stored d x n
        np.testing.assert_allclose(m, v.astype(np.float32))
    dm = setup(MultiviewDataModule(root=tmp_path / "leaves.mat"))
    assert dm.num_classes == 100 and dm.modalities == ("view0", "view1")
    # the handwritten defaults (10 digit names) do not fit: a clear pointer, not "10 class names given"
    with pytest.raises(ValueError, match=r"100 classes.*multiview"):
        R.read_handwritten(tmp_path / "leaves.mat")


def test_labels_shifted_gaps_kept_and_names(tmp_path):
    write_multiview(tmp_path / "zero.mat", np.arange(12) % 4)              # 0-based stays
    np.testing.assert_array_equal(read_multiview(tmp_path / "zero.mat").labels, np.arange(12) % 4)
    gaps = np.array([2, 5, 7, 9] * 3)
    write_multiview(tmp_path / "gaps.mat", gaps, column=True)              # V x 1 cell
    a = read_multiview(tmp_path / "gaps.mat")
    assert a.num_classes == 4 and a.class_names == ["2", "5", "7", "9"]
    np.testing.assert_array_equal(a.labels, np.arange(12) % 4)
    b = read_multiview(tmp_path / "gaps.mat", class_names=["a", "b", "c", "d"])
    assert b.class_names == ["a", "b", "c", "d"] and np.array_equal(b.labels, a.labels)
    with pytest.raises(ValueError, match=r"3 class names given but 'Y' has 4 classes"):
        read_multiview(tmp_path / "gaps.mat", class_names=["a", "b", "c"])
    # Y as a 1 x n row, a sparse view (NGs-style word counts); a folder holding one file is accepted as root
    import scipy.sparse
    words = scipy.sparse.random(12, 30, density=0.2, format="csc", random_state=0)
    (tmp_path / "one").mkdir()
    scipy.io.savemat(str(tmp_path / "one" / "ngs.mat"), {"X": cell([words, np.ones((12, 2))]),
                                                         "Y": (np.arange(12) % 3 + 1)[None, :].astype(float)})
    dm = setup(MultiviewDataModule(root=tmp_path / "one", n_query=3))
    np.testing.assert_allclose(dm.arrays.modalities["view0"], words.toarray().astype(np.float32))
    np.testing.assert_array_equal(dm.arrays.labels, np.arange(12) % 3)
    scipy.io.savemat(str(tmp_path / "one" / "other.mat"), {"X": cell([np.ones((12, 2))]), "Y": np.ones((12, 1))})
    with pytest.raises(FileNotFoundError, match=r"exactly one \.mat file.*ngs.mat.*other.mat"):
        setup(MultiviewDataModule(root=tmp_path / "one"))


def test_view_names_and_view_choice(tmp_path):
    views = write_multiview(tmp_path / "mv.mat", np.arange(1, 13) % 3 + 1)
    with pytest.raises(ValueError, match=r"'X' holds 3 views but 2 view names were given"):
        read_multiview(tmp_path / "mv.mat", view_names=["rgb", "depth"])
    with pytest.raises(ValueError, match="3 views but 2 view names"):
        setup(MultiviewDataModule(root=tmp_path / "mv.mat", view_names=["rgb", "depth"]))
    a = read_multiview(tmp_path / "mv.mat", views=[2, "view0"])
    assert list(a.modalities) == ["view2", "view0"]
    np.testing.assert_allclose(a.modalities["view2"], views[2].astype(np.float32))
    b = read_multiview(tmp_path / "mv.mat", views=["depth"], view_names=["rgb", "depth", "sound"])
    assert list(b.modalities) == ["depth"]
    with pytest.raises(ValueError, match=r"position 3.*3 views"):
        read_multiview(tmp_path / "mv.mat", views=[0, 3])
    with pytest.raises(ValueError, match=r"'nope'.*\['view0', 'view1', 'view2'\]"):
        read_multiview(tmp_path / "mv.mat", views=["nope"])
    dm = setup(MultiviewDataModule(root=tmp_path / "mv.mat", views=[2, 0], n_query=3))
    assert dm.modalities == ("view2", "view0") and dm.input_dims == {"view2": 4, "view0": 5}
    assert [t.name for t in dm.tasks] == ["view2->view0", "view0->view2"]


def test_handwritten_keeps_its_names_and_takes_view_positions(tmp_path):
    dims = [240, 76, 216, 47, 64, 6]
    rng = np.random.RandomState(3)
    savemat_v5(tmp_path / "handwritten.mat", {"X": Cell([rng.rand(300, d) for d in dims]),
                                              "Y": (np.arange(300) % 10 + 1)[:, None].astype(np.uint8)})
    a = R.read_handwritten(tmp_path)
    assert list(a.modalities) == ["pixel", "fourier", "profile", "zernike", "karhunen_loeve", "morphological"]
    assert a.class_names == [str(d) for d in range(10)] and np.array_equal(a.labels, np.arange(300) % 10)
    dm = setup(HandwrittenDataModule(root=tmp_path, views=[1, 5], n_query=50, check_content=False))
    assert dm.modalities == ("fourier", "morphological")
    assert setup(HandwrittenDataModule(root=tmp_path, n_query=50, check_content=False)).modalities == ("pixel", "fourier")


# ============================================================================================ split guards
def test_210_item_file_gets_a_split_sized_from_the_data(tmp_path):
    labels = np.repeat(np.arange(1, 8), 30)                                 # MSRC-v5: 7 classes x 30 = 210
    write_multiview(tmp_path / "msrcv5.mat", labels)
    dm = setup(MultiviewDataModule(root=tmp_path / "msrcv5.mat"))
    q, db = dm.split.query, dm.split.database
    assert len(q) == 21 and len(db) == 189 and np.array_equal(dm.split.train, db)
    np.testing.assert_array_equal(np.bincount(dm.arrays.labels[q]), [3] * 7)
    assert all(np.sum(dm.arrays.labels[db] == c) == 27 for c in range(7))
    # a count that does not fit this file is refused, saying what to change
    with pytest.raises(ValueError, match=r"200 queries from 210 items, leaving only 10.*n_query=21"):
        setup(MultiviewDataModule(root=tmp_path / "msrcv5.mat", n_query=200))
    # the handwritten layout with its default 200 queries: an error, not 10 items to train on and search
    views = np.empty((1, 2), dtype=object)
    views[0, 0], views[0, 1] = np.random.rand(210, 240), np.random.rand(210, 76)
    scipy.io.savemat(str(tmp_path / "handwritten.mat"), {"X": views, "Y": (np.arange(210) % 10 + 1)[:, None]})
    with pytest.raises(ValueError, match=r"leaving only 10 for the database and the training set.*n_query"):
        setup(HandwrittenDataModule(root=tmp_path, check_content=False))
    assert len(setup(HandwrittenDataModule(root=tmp_path, n_query=20, check_content=False)).split.query) == 20


def test_small_classes_keep_database_items(tmp_path):
    # Caltech101-7-like imbalance: the default per-class quota never takes more than half of the smallest class
    labels = np.concatenate([np.full(n, c + 1) for c, n in enumerate([200, 120, 8, 10])])
    write_multiview(tmp_path / "imb.mat", labels)
    dm = setup(MultiviewDataModule(root=tmp_path / "imb.mat"))
    db_labels = dm.arrays.labels[dm.split.database]
    assert dm.split.params["per_class_query"] == 4 and len(dm.split.query) == 16
    assert all(np.sum(db_labels == c) >= 4 for c in range(4))


@pytest.mark.parametrize("labels", [np.repeat(np.arange(1, 5), 20), np.repeat([2, 5, 7, 9], 20)],
                         ids=["1-based", "gaps"])
def test_zero_shot_on_4_classes_never_draws_an_empty_unseen_class(tmp_path, labels):
    write_multiview(tmp_path / "four.mat", labels)
    for seed in range(8):
        dm = setup(MultiviewDataModule(root=tmp_path / "four.mat", zero_shot=True, seed=seed))
        lab, split = dm.arrays.labels, dm.split
        assert dm.num_classes == 4 and len(split.unseen_classes) == 1
        for c in split.unseen_classes:
            assert np.any(lab[split.query] == c) and np.any(lab[split.database] == c)
        assert set(lab[split.query].tolist()) <= set(split.unseen_classes.tolist())
        assert not set(lab[split.train].tolist()) & set(split.unseen_classes.tolist())


# ============================================================================================ MIRFlickr
def _flickr(n=40, c=4, v=12, d=4096, seed=0):
    rng = np.random.RandomState(seed)
    L = np.zeros((n, c))
    L[np.arange(n), np.arange(n) % c] = 1
    L[::5, 0] = 1                                                            # some multi-label rows
    return L, (rng.rand(n, v) < 0.3).astype(np.float64), rng.rand(n, d)


def _write_vgg_set(folder: Path, L, Y, X, suffix="", version="v5"):
    save = savemat_v5 if version == "v5" else savemat_v73
    folder.mkdir(parents=True, exist_ok=True)
    savemat_v5(folder / f"mirflickr25k-lall{suffix}.mat", {"LAll": L})
    savemat_v5(folder / f"mirflickr25k-yall{suffix}.mat", {"YAll": Y})
    save(folder / f"mirflickr25k-iall-vgg{suffix}.mat", {"XAll": X})


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_vgg_file_set_through_the_reader(tmp_path, version):
    L, Y, X = _flickr()
    _write_vgg_set(tmp_path, L, Y, X, version=version)
    for a in (R.read_mirflickr(tmp_path), R.read_mirflickr(tmp_path, features_file="mirflickr25k-iall-vgg.mat"),
              R.read_mirflickr(tmp_path, image="features")):
        assert a.modalities["image"].shape == (40, 4096)
        np.testing.assert_allclose(a.modalities["image"], X.astype(np.float32))
        np.testing.assert_array_equal(a.modalities["text"], Y.astype(np.float32))
        np.testing.assert_array_equal(a.labels, L.astype(np.float32))


def test_features_file_wins_over_raw_images_and_keys_are_found(tmp_path):
    L, Y, X = _flickr(d=6)
    _write_vgg_set(tmp_path, L, Y, X)
    imgs = np.random.RandomState(1).randint(0, 256, (40, 4, 5, 3)).astype(np.uint8)
    savemat_v5(tmp_path / "mirflickr25k-iall.mat", {"IAll": np.transpose(imgs, (1, 2, 3, 0))})
    assert R.read_mirflickr(tmp_path).modalities["image"].dtype == np.uint8         # as before: raw images
    with pytest.raises(ValueError, match="several feature files"):                   # iall-vgg + xall: ambiguous
        savemat_v5(tmp_path / "mirflickr25k-xall.mat", {"XAll": X})
        R.read_mirflickr(tmp_path, image="features")
    a = R.read_mirflickr(tmp_path, features_file="mirflickr25k-iall-vgg.mat")
    np.testing.assert_allclose(a.modalities["image"], X.astype(np.float32))
    # a features file in a sub-folder, its variable under another known name, or named explicitly
    (tmp_path / "feats").mkdir()
    savemat_v5(tmp_path / "feats" / "resnet.mat", {"IAll": X[:, :3]})
    assert R.read_mirflickr(tmp_path, features_file="resnet.mat").modalities["image"].shape == (40, 3)
    savemat_v5(tmp_path / "feats" / "clip.mat", {"feat": X[:, :2], "names": np.zeros((40, 1))})
    with pytest.raises(KeyError, match=r"clip.mat: no variable.*'XAll'.*\['feat', 'names'\].*features_key"):
        R.read_mirflickr(tmp_path, features_file="clip.mat")
    b = R.read_mirflickr(tmp_path, features_file=tmp_path / "feats" / "clip.mat", features_key="feat")
    assert b.modalities["image"].shape == (40, 2)
    with pytest.raises(FileNotFoundError, match="features_file='missing.mat': not found"):
        R.read_mirflickr(tmp_path, features_file="missing.mat")
    # DCMH's single FLICKR-25K.mat beside the VGG features
    single = tmp_path / "single"
    single.mkdir()
    savemat_v73(single / "FLICKR-25K.mat", {"images": np.transpose(imgs, (1, 2, 3, 0)), "YAll": Y, "LAll": L})
    savemat_v5(single / "mirflickr25k-iall-vgg.mat", {"XAll": X})
    assert R.read_mirflickr(single).modalities["image"].dtype == np.uint8
    c = R.read_mirflickr(single, features_file="mirflickr25k-iall-vgg.mat")
    np.testing.assert_allclose(c.modalities["image"], X.astype(np.float32))
    np.testing.assert_array_equal(c.labels, L.astype(np.float32))


def test_rand_file_set(tmp_path):
    L, Y, X = _flickr(d=8)
    perm = np.random.RandomState(5).permutation(40)
    only_rand = tmp_path / "only_rand"
    _write_vgg_set(only_rand, L[perm], Y[perm], X[perm], suffix="-rand")
    a = R.read_mirflickr(only_rand)                                          # found without being asked
    np.testing.assert_allclose(a.modalities["image"], X[perm].astype(np.float32))
    np.testing.assert_array_equal(a.labels, L[perm].astype(np.float32))
    both = tmp_path / "both"
    _write_vgg_set(both, L, Y, X)
    _write_vgg_set(both, L[perm], Y[perm], X[perm], suffix="-rand")
    np.testing.assert_array_equal(R.read_mirflickr(both).labels, L.astype(np.float32))    # the plain set first
    for kwargs in ({"file_set": "rand"}, {"features_file": "mirflickr25k-iall-vgg-rand.mat"}):
        b = R.read_mirflickr(both, **kwargs)                                 # the -rand labels and tags follow
        np.testing.assert_array_equal(b.labels, L[perm].astype(np.float32))
        np.testing.assert_array_equal(b.modalities["text"], Y[perm].astype(np.float32))
        np.testing.assert_allclose(b.modalities["image"], X[perm].astype(np.float32))
    with pytest.raises(ValueError, match="mix the plain and the -rand file sets"):
        R.read_mirflickr(both, features_file="mirflickr25k-iall-vgg-rand.mat", labels_file="mirflickr25k-lall.mat")


def test_mirflickr_datamodule_features_file(tmp_path):
    L, Y, X = _flickr(n=120, d=4096)
    _write_vgg_set(tmp_path, L, Y, X)
    imgs = np.random.RandomState(2).randint(0, 256, (120, 4, 4, 3)).astype(np.uint8)
    savemat_v5(tmp_path / "mirflickr25k-iall.mat", {"IAll": np.transpose(imgs, (1, 2, 3, 0))})
    sizes = dict(n_query=20, n_train=60, per_class_query=5, per_class_train=15)
    dm = setup(MirflickrDataModule(root=tmp_path, features_file="mirflickr25k-iall-vgg.mat", check_content=False, **sizes))
    assert dm.input_dims == {"image": 4096, "text": 12} and len(dm.split.query) == 20
    np.testing.assert_allclose(dm.arrays.modalities["image"], X.astype(np.float32))
    raw = setup(datamodules.create("mirflickr", root=tmp_path, check_content=False, **sizes))          # unchanged default: IAll
    assert raw.input_dims["image"] == (3, 4, 4)
    with pytest.raises(ValueError, match="image='raw'.*features_file"):
        MirflickrDataModule(root=tmp_path, features_file="mirflickr25k-iall-vgg.mat", image="raw")


# ============================================================================================ runner
def _run(argv, out: Path):
    from lightning_hash.experiment import main
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return main(argv + ["--bits", "8", "--logger", "none", "--no-progress-bar", "--output", str(out)])


def test_runner_multiview_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    labels = np.repeat(np.arange(1, 8), 30)
    write_multiview(tmp_path / "msrcv5.mat", labels, dims=(12, 10, 9), version="v73")
    res = _run(["--method", "cca_itq", "--data", "multiview", "--data-root", str(tmp_path / "msrcv5.mat"),
                "--set", "data.views=[0,2]", "--set", "method.modalities=[view0,view2]"], tmp_path / "run")
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["sizes"]["query"] == 21 and split["sizes"]["database"] == 189
    assert split["params"]["per_class_query"] == 3
    assert "test/mAP@all/view0->view2" in res["metrics"] and "test/mAP@all/view2->view0" in res["metrics"]
    named = _run(["--method", "cca_itq", "--data", "multiview", "--data-root", str(tmp_path / "msrcv5.mat"),
                  "--set", "data.view_names=[image,text,tags]"], tmp_path / "run2")
    assert "test/mAP@all/image->text" in named["metrics"]


def test_runner_mirflickr_features_file(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    L, Y, X = _flickr(n=240, d=64)
    _write_vgg_set(tmp_path / "mir", L, Y, X)
    savemat_v5(tmp_path / "mir" / "mirflickr25k-xall.mat", {"XAll": X[:, :5]})   # two feature files: choose one
    res = _run(["--method", "cca_itq", "--data", "mirflickr", "--data-root", str(tmp_path / "mir"),
                "--set", "data.check_content=false",
                "--set", "data.features_file=mirflickr25k-iall-vgg.mat", "--set", "data.n_query=20",
                "--set", "data.n_train=60", "--set", "data.per_class_query=5", "--set", "data.per_class_train=15"],
               tmp_path / "run")
    assert res["config"]["data"]["features_file"] == "mirflickr25k-iall-vgg.mat"
    assert "test/mAP@all/image->text" in res["metrics"]
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["sizes"]["query"] == 20 and split["sizes"]["train"] == 60
