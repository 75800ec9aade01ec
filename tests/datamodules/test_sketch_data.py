"""Sketch-image data for ZSIH: the official feature .mat layout (reader), the Sketchy / TU-Berlin zero-shot and
conventional splits, paired training batches, single-kind evaluation sets, and the errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

import datamodules
from datamodules.datamodules import data_dir
from datamodules.readers.sketch import read_sketch_features, read_zsih_mat
from datamodules.sketch import SketchDataModule, sketch_split

WV_ROOT = data_dir() / "semantics" / "sketch_word2vec"
needs_wv = pytest.mark.skipif(not (WV_ROOT / "vocab_sketchy.pkl").is_file(),
                              reason=f"shared word vectors not found at {WV_ROOT} (../shared/data absent)")


def _write(path: Path, feat, label, wv=None) -> Path:
    content = {"feat": np.asarray(feat, dtype=np.float32), "label": np.asarray(label)}
    if wv is not None:
        content["wv"] = np.asarray(wv, dtype=np.float32)
    scipy.io.savemat(path, content)
    return path


def _toy_files(tmp_path: Path, C: int = 5, n_im: int = 6, n_sk: int = 4, d: int = 8, k: int = 3, wv=None, seed=0):
    rng = np.random.RandomState(seed)
    W = rng.randn(C, k) if wv is None else wv
    im_lab = np.repeat(np.arange(1, C + 1), n_im)          # official: class numbers from 1, a column
    sk_lab = np.repeat(np.arange(1, C + 1), n_sk)
    im = _write(tmp_path / "feat_img.mat", rng.randn(len(im_lab), d) + im_lab[:, None], im_lab[:, None],
                W[im_lab - 1])
    sk = _write(tmp_path / "feat_sk.mat", rng.randn(len(sk_lab), d) + sk_lab[:, None], sk_lab[:, None],
                W[sk_lab - 1])
    return im, sk, W


# ============================================================================================== reader
def test_reader_official_layout(tmp_path):
    im, sk, W = _toy_files(tmp_path)
    one = read_zsih_mat(im)
    assert one["feat"].shape == (30, 8) and one["feat"].dtype == np.float32
    assert one["label"].tolist() == np.repeat(np.arange(1, 6), 6).tolist() and one["wv"].shape == (30, 3)
    arrays = read_sketch_features(im, sk)
    assert arrays.image.shape == (30, 8) and arrays.sketch.shape == (20, 8)
    assert arrays.image_labels.tolist() == np.repeat(np.arange(5), 6).tolist()      # 1-based -> 0-based
    assert arrays.class_names == ["1", "2", "3", "4", "5"]
    np.testing.assert_allclose(arrays.class_semantics["word_vectors"], W.astype(np.float32), rtol=1e-6)
    # one-hot labels, files stacked (train + test), transposed features
    oh = np.eye(5)[np.repeat(np.arange(5), 2)]
    _write(tmp_path / "im_test.mat", np.ones((8, 10)), oh, W[np.repeat(np.arange(5), 2)].T)
    two = read_zsih_mat(tmp_path / "im_test.mat")
    assert two["feat"].shape == (10, 8) and two["label"].tolist() == np.repeat(np.arange(5), 2).tolist()


def test_reader_errors(tmp_path):
    im, sk, W = _toy_files(tmp_path)
    with pytest.raises(FileNotFoundError, match="feat"):
        read_zsih_mat(tmp_path / "absent.mat")
    scipy.io.savemat(tmp_path / "nolabel.mat", {"feat": np.ones((3, 2))})
    with pytest.raises(KeyError, match="label"):
        read_zsih_mat(tmp_path / "nolabel.mat")
    bad_wv = W[np.repeat(np.arange(5), 4)].copy()
    bad_wv[0] += 1.0                                   # class 1's items disagree on their word vector
    _write(tmp_path / "sk_bad.mat", np.ones((20, 8)), np.repeat(np.arange(1, 6), 4)[:, None], bad_wv)
    with pytest.raises(ValueError, match="different word vectors"):
        read_sketch_features(im, tmp_path / "sk_bad.mat")
    _write(tmp_path / "sk_wide.mat", np.ones((20, 9)), np.repeat(np.arange(1, 6), 4)[:, None])
    with pytest.raises(ValueError, match="widths"):
        read_sketch_features(im, [sk, tmp_path / "sk_wide.mat"])


# ============================================================================================== splits
def test_zero_shot_split_rules():
    C = 20
    im_counts = np.where(np.arange(C) < 8, 500, 50)        # only classes 0..7 have >= 400 images
    im = np.repeat(np.arange(C), im_counts)
    sk = np.repeat(np.arange(C), 10)
    names = [f"c{i}" for i in range(C)]
    s = sketch_split(im, sk, names, unseen="random", n_unseen=3, min_unseen_images=400, seed=3)
    assert set(s.unseen_classes.tolist()) <= set(range(8)) and len(s.unseen_classes) == 3
    assert s == sketch_split(im, sk, names, unseen="random", n_unseen=3, min_unseen_images=400, seed=3)  # seeded
    n_im = len(im)
    lab = np.concatenate([im, sk])
    assert np.all(s.query >= n_im) and np.all(s.database < n_im)            # sketch queries, image database
    assert set(lab[s.query]) == set(s.unseen_classes) == set(lab[s.database])
    assert len(s.database) == 3 * 500 and len(s.query) == 30                 # every unseen image / sketch
    assert not np.isin(lab[s.train], s.unseen_classes).any()
    assert np.all(s.val >= n_im) and np.intersect1d(s.val, s.train).size == 0
    with pytest.raises(ValueError, match="at least 400"):
        sketch_split(im, sk, names, unseen="random", n_unseen=9, min_unseen_images=400)
    with pytest.raises(ValueError, match="fewer than 400"):
        sketch_split(im, sk, names, unseen=["c12"], min_unseen_images=400)
    v = sketch_split(im, sk, names, unseen=["c0"], n_val_classes=2, seed=1)
    vc = v.extra["val_classes"]
    assert len(vc) == 2 and not np.isin(lab[v.train], vc).any() and set(lab[v.val]) == set(vc)


def test_conventional_split():
    im, sk = np.repeat(np.arange(4), 6), np.repeat(np.arange(4), 12)
    s = sketch_split(im, sk, list("abcd"), split="conventional", per_class_query=3, n_val=2)
    lab = np.concatenate([im, sk])
    assert np.bincount(lab[s.query]).tolist() == [3, 3, 3, 3] and np.all(s.query >= 24)
    assert s.database.tolist() == list(range(24)) and not s.zero_shot
    assert np.intersect1d(s.query, s.train).size == 0 and len(s.train) == 24 + 48 - 12 - 2


# ============================================================================================== DataModule
def test_datamodule_pairs_and_evaluates_unseen_only(tmp_path):
    im, sk, W = _toy_files(tmp_path, C=6)
    dm = SketchDataModule(image_files=im, sketch_files=sk, unseen=["5", "6"], batch_size=7, n_val=4, seed=0,
                          split_file=tmp_path / "split.json")
    dm.setup()
    assert [t.name for t in dm.tasks] == ["sketch->image"] and dm.input_dims == {"image": 8, "sketch": 8}
    assert dm.unseen_classes == ["5", "6"] and dm.class_semantics["word_vectors"].shape == (6, 3)
    seen = set()
    for epoch in range(2):
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        pairs = []
        for batch in loader:
            assert set(batch) == {"image", "sketch", "label", "sketch_label", "index"}
            assert np.array_equal(batch["label"].numpy(), batch["sketch_label"].numpy())   # same class per row
            assert batch["label"][:, 4:].sum() == 0                                        # seen classes only
            # the sketch is a real sketch of that class: its features carry the class offset
            cls = batch["label"].argmax(1).numpy() + 1
            assert np.all(np.abs(batch["sketch"].numpy().mean(1) - cls) < 2.5)
            pairs.append(batch["sketch"].numpy())
        seen.add(np.concatenate(pairs).tobytes())
    assert len(seen) == 2                                   # the pairing is re-drawn each epoch
    names = dm.eval_set_names("test")
    assert names == ["query", "database"]
    q, d = [next(iter(l)) for l in dm.test_dataloader()]
    assert set(q) == {"sketch", "label", "index"} and set(d) == {"image", "label", "index"}
    assert q["label"][:, :4].sum() == 0 and d["label"][:, :4].sum() == 0
    assert len(dm.eval_rows("test", "query")) == 2 * 4 and len(dm.eval_rows("test", "database")) == 2 * 6
    # the split is recorded and re-read
    dm2 = SketchDataModule(image_files=im, sketch_files=sk, unseen=["5", "6"], n_val=4, seed=0,
                           split_file=tmp_path / "split.json")
    dm2.setup()
    assert dm2.split == dm.split


def test_missing_word_vector_is_a_clear_error(tmp_path):
    im = _write(tmp_path / "im.mat", np.ones((4, 2)), np.array([[1], [1], [2], [2]]))
    sk = _write(tmp_path / "sk.mat", np.ones((4, 2)), np.array([[1], [1], [2], [2]]))
    with pytest.raises(KeyError, match="no class word vectors"):
        SketchDataModule(image_files=im, sketch_files=sk, unseen=["2"]).setup()


@needs_wv
def test_sketchy_names_from_word_vectors_and_eccv18_split(tmp_path):
    from datamodules.readers import read_sketch_word2vec
    table = read_sketch_word2vec(WV_ROOT, "sketchy")
    W = table.vectors["word_vectors"]
    im, sk, _ = _toy_files(tmp_path, C=125, n_im=2, n_sk=2, k=300, wv=W)
    dm = datamodules.create("sketchy", image_files=im, sketch_files=sk, unseen="eccv18", n_val=10)
    dm.setup()
    assert dm.class_names == table.class_names                # recovered from 'wv'
    eccv = [ln.strip() for ln in (WV_ROOT / "zeroshot_classes_sketchy.txt").read_text().splitlines() if ln.strip()]
    assert sorted(dm.unseen_classes) == sorted(eccv) and len(eccv) == 21
    dm = datamodules.create("sketchy", image_files=im, sketch_files=sk, n_val=10, seed=4)
    dm.setup()
    assert len(dm.unseen_classes) == 25 and len(dm.split.seen_classes) == 100
    # a class name absent from the vocabulary: KeyError naming it
    with pytest.raises(KeyError, match="no word vector for class"):
        datamodules.create("tuberlin", image_files=im, sketch_files=sk,
                           class_names=[f"nonsense{i}" for i in range(125)]).setup()
