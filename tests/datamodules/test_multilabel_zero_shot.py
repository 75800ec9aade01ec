"""The multi-label zero-shot protocol (``zero_shot_multilabel``, issue #19 item 5): exact rows on a hand-checked
multi-hot matrix, the seeded class draw, the split check, the DataModule's class queries, an AgNet run whose logged
figures match a brute-force evaluation of its best checkpoint's codes, and the refusal of the single-label methods.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import datamodules
from datamodules.arrays import DatasetArrays
from datamodules.datamodules import ArraysDataModule
from datamodules.protocols import PROTOCOLS, make_split, zero_shot_multilabel_split
from datamodules.split import Split
from lightning_hash import methods
from lightning_hash.experiment import main as run_main
from run_helpers import fit_quietly
from metric_references import ref_distance, ref_per_query, ref_relevance

NAMES = ["a", "b", "c", "d"]
#: 12 items, 4 classes, 1-3 labels each (a = 0, b = 1, c = 2, d = 3)
L = np.array([
    [1, 0, 0, 0],   # 0  a
    [1, 1, 0, 0],   # 1  a b
    [0, 1, 0, 0],   # 2  b
    [0, 1, 1, 0],   # 3  b c
    [1, 0, 1, 0],   # 4  a c
    [0, 0, 0, 1],   # 5  d
    [1, 0, 0, 1],   # 6  a d
    [0, 1, 1, 1],   # 7  b c d
    [0, 0, 1, 0],   # 8  c
    [1, 1, 1, 0],   # 9  a b c
    [0, 0, 1, 1],   # 10 c d
    [1, 0, 0, 1],   # 11 a d
], dtype=np.float32)
#: with unseen = {d}: the items carrying d, and the items whose labels are all seen
D_ROWS = [5, 6, 7, 10, 11]
SEEN_ONLY = [0, 1, 2, 3, 4, 8, 9]


def _sets(s: Split):
    return {k: set(getattr(s, k).tolist()) for k in ("train", "query", "database", "val", "val_database")}


# ============================================================================================== the protocol
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_exact_rows_on_a_hand_checked_matrix(seed):
    s = make_split("zero_shot_multilabel", L, seed=seed, class_names=NAMES, unseen_classes=["d"], n_query=2, n_val=2)
    r = _sets(s)
    assert s.unseen_classes.tolist() == [3] and s.seen_classes.tolist() == [0, 1, 2]
    assert r["train"] == set(SEEN_ONLY)                       # every item whose labels are all seen, no other
    assert len(r["query"]) == 2 and r["query"] <= set(D_ROWS)  # queries carry d (and may carry seen labels)
    assert r["database"] == set(D_ROWS) - r["query"]           # database="unseen" (the table's default)
    assert len(r["val"]) == 2 and r["val"] <= set(SEEN_ONLY)   # validation from the seen-only items
    assert r["val_database"] == set(SEEN_ONLY) - r["val"]
    assert not r["val"] & set(D_ROWS)
    s.validate(len(L), L)
    # the same split by class index, and the database "all": every item that is not a query
    same = make_split("zero_shot_multilabel", L, seed=seed, class_names=NAMES, unseen_classes=[3], n_query=2,
                      n_val=2)
    np.testing.assert_array_equal(same.query, s.query)
    everything = make_split("zero_shot_multilabel", L, seed=seed, class_names=NAMES, unseen_classes=["d"],
                            n_query=2, n_val=2, database="all")
    np.testing.assert_array_equal(everything.query, s.query)
    assert set(everything.database.tolist()) == set(range(12)) - r["query"]
    assert set(everything.train.tolist()) == set(SEEN_ONLY)


def test_two_unseen_classes_train_subsample_and_held_out_validation():
    s = zero_shot_multilabel_split(L, class_names=NAMES, unseen_classes=["c", "d"], n_query=3, n_val=1, seed=5)
    carries = [3, 4, 5, 6, 7, 8, 9, 10, 11]                     # every item carrying c or d
    assert s.train.tolist() == [0, 1, 2] and set(s.query.tolist()) <= set(carries) and len(s.query) == 3
    assert set(s.database.tolist()) == set(carries) - set(s.query.tolist())
    assert set(s.val.tolist()) <= {0, 1, 2}
    # n_train subsamples the seen-only items; the validation queries then come from the ones left out
    t = zero_shot_multilabel_split(L, class_names=NAMES, unseen_classes=["d"], n_query=2, n_train=4, n_val=2,
                                   val_pool="held_out", seed=1)
    assert len(t.train) == 4 and set(t.train.tolist()) <= set(SEEN_ONLY)
    assert len(t.val) == 2 and set(t.val.tolist()) <= set(SEEN_ONLY) - set(t.train.tolist())
    # the table's defaults: a fifth of the items carrying an unseen label as queries (here 1 of 5)
    assert PROTOCOLS["zero_shot_multilabel"][1] == {"n_query": 0.2, "database": "unseen"}
    assert len(make_split("zero_shot_multilabel", L, class_names=NAMES, unseen_classes=["d"], n_val=1).query) == 1


def test_queries_keep_their_seen_labels_and_the_split_check_follows():
    queries = set()
    for seed in range(10):
        s = make_split("zero_shot_multilabel", L, seed=seed, class_names=NAMES, unseen_classes=["d"], n_query=2,
                       n_val=1)
        queries |= set(s.query.tolist())
        s.validate(len(L), L)
    assert queries & {6, 7, 10, 11}          # queries carrying seen labels besides d are kept (the common protocol)
    assert s.params["queries_may_carry_seen"] is True
    # a query without an unseen class is refused; without the flag the strict (single-label) rule still holds
    bad = Split(train=np.setdiff1d(s.train, [0]), val=np.setdiff1d(s.val, [0]),
                val_database=np.setdiff1d(s.val_database, [0]), query=np.array([0, 5]),
                database=np.setdiff1d(D_ROWS, [5]), seen_classes=s.seen_classes, unseen_classes=s.unseen_classes,
                params=dict(s.params), num_items=12)
    with pytest.raises(ValueError, match="carry no unseen class"):
        bad.validate(12, L)
    strict = Split(train=s.train, val=s.val, val_database=s.val_database, query=np.array([5, 6]),
                   database=np.array([7, 10, 11]), seen_classes=s.seen_classes, unseen_classes=s.unseen_classes,
                   num_items=12)
    with pytest.raises(ValueError, match="belong to seen classes"):
        strict.validate(12, L)                 # item 6 carries a: a single-label zero-shot split refuses it
    s_json = Split.from_dict(json.loads(s.to_json()))
    s_json.validate(12, L)                     # the flag survives the split file


def test_items_without_labels_are_excluded_from_every_set():
    labels = np.vstack([L, np.zeros((2, 4), np.float32)])          # rows 12 and 13 carry no label
    for database in ("unseen", "all"):
        s = make_split("zero_shot_multilabel", labels, seed=0, class_names=NAMES, unseen_classes=["d"], n_query=2,
                       n_val=2, database=database)
        used = set().union(*_sets(s).values())
        assert not used & {12, 13}
        assert s.params["n_unlabelled"] == 2


def test_n_unseen_draws_populated_classes_with_the_seed():
    labels = np.hstack([L, np.zeros((12, 1), np.float32)])        # class e has no item
    names = NAMES + ["e"]
    draws = set()
    for seed in range(20):
        s = make_split("zero_shot_multilabel", labels, seed=seed, class_names=names, n_unseen=2, n_query=2, n_val=1)
        assert len(s.unseen_classes) == 2 and 4 not in s.unseen_classes.tolist()   # drawn among populated ones
        assert all(labels[:, c].sum() > 0 for c in s.unseen_classes)
        assert 4 in s.seen_classes.tolist() and s.params["empty_classes"] == ["e"]
        again = make_split("zero_shot_multilabel", labels, seed=seed, class_names=names, n_unseen=2, n_query=2,
                           n_val=1)
        assert again == s                                           # same seed, same split
        carries = labels[:, s.unseen_classes].sum(axis=1) > 0
        assert not carries[s.train].any() and carries[s.query].all()
        draws.add(tuple(s.unseen_classes.tolist()))
    assert len(draws) > 1                                           # the seed moves the draw
    with pytest.raises(ValueError, match="only 4 of the 5 classes have items"):
        make_split("zero_shot_multilabel", labels, class_names=names, n_unseen=4)


def test_errors_are_clear():
    with pytest.raises(ValueError, match="exactly one of unseen_classes"):
        make_split("zero_shot_multilabel", L, class_names=NAMES, unseen_classes=["d"], n_unseen=1)
    with pytest.raises(ValueError, match="unknown class 'z'"):
        make_split("zero_shot_multilabel", L, class_names=NAMES, unseen_classes=["z"])
    with pytest.raises(ValueError, match=r"database must be 'unseen' or 'all'"):
        make_split("zero_shot_multilabel", L, class_names=NAMES, unseen_classes=["d"], database="seen")
    with pytest.raises(ValueError, match=r"unseen class\(es\) \['d'\] empty in the database"):
        make_split("zero_shot_multilabel", L, class_names=NAMES, unseen_classes=["d"], n_query=5)
    # a seen class whose items all carry an unseen label has nothing to train on
    only_with_d = L.copy()
    only_with_d[[3, 4, 8, 9], 2] = 0.0                              # c now only on items 7 and 10 (both with d)
    with pytest.raises(ValueError, match=r"seen class\(es\) \['c'\] without training items"):
        make_split("zero_shot_multilabel", only_with_d, class_names=NAMES, unseen_classes=["d"], n_query=1)
    with pytest.raises(ValueError, match="zero_shot_multilabel"):    # the single-label protocol points here
        make_split("zero_shot", L, class_names=NAMES, unseen_classes=["d"])


# ============================================================================================== the DataModule
def _bundle(path: Path, n: int = 72, seed: int = 0) -> Path:
    """A multi-hot bundle without split arrays: 6 classes, 1-3 labels per item, features near the label mean."""
    rng = np.random.RandomState(seed)
    C = 6
    labels = np.zeros((n, C), np.float32)
    for i in range(n):
        labels[i, rng.choice(C, 1 + i % 3, replace=False)] = 1.0
    proto = 2.0 * rng.randn(C, 10)
    image = (labels @ proto / labels.sum(1, keepdims=True) + 0.5 * rng.randn(n, 10)).astype(np.float32)
    att = (rng.rand(C, 7) > 0.5).astype(np.float32)
    att[:, 0] = 1.0
    np.savez(path, image=image, labels=labels, class_names=np.array([f"k{i}" for i in range(C)]),
             semantic_word_vectors=rng.randn(C, 12).astype(np.float32), semantic_attributes=att)
    return path


def test_datamodule_serves_unseen_classes_as_text_queries(tmp_path):
    path = _bundle(tmp_path / "ml.npz")
    dm = datamodules.create(str(path), protocol="zero_shot_multilabel", unseen_classes=["k1", "k4"], n_query=6,
                            n_val=6, database="all", modalities=["image"], class_queries="word_vectors",
                            class_query_database="class_items")
    dm.setup()
    labels = np.load(path)["labels"]
    assert dm.split.protocol == "zero_shot_multilabel" and dm.unseen_classes == ["k1", "k4"]
    assert dm.eval_rows("test", "classes").tolist() == [1, 4]
    carries = labels[:, [1, 4]].sum(1) > 0
    np.testing.assert_array_equal(dm.eval_rows("test", "class_items"), np.flatnonzero(carries))
    cls = dm.eval_dataset("test", "classes")
    batch = cls.__getitems__(list(range(len(cls))))
    np.testing.assert_allclose(batch["word_vectors"].numpy(), np.load(path)["semantic_word_vectors"][[1, 4]])
    assert not carries[dm.split.train].any() and carries[dm.split.query].all()
    # the validation text queries are the seen classes
    assert dm.eval_rows("val", "classes").tolist() == [0, 2, 3, 5]


# ============================================================================================== runs
def _run(tmp_path: Path, name: str, method: str, *extra: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_main(["--method", method, "--bits", "16", "--logger", "none", "--no-progress-bar",
                         "--output", str(tmp_path / name), "--data", str(tmp_path / "ml.npz"),
                         "--set", "data.protocol=zero_shot_multilabel", "--set", "data.n_query=8",
                         "--set", "data.n_val=6", "--set", "data.batch_size=16",
                         "--set", "method.eval_map_at=[5]", "--set", "method.eval_precision_at=[5]", *extra])


def test_agnet_run_figures_match_a_brute_force_evaluation(tmp_path):
    from lightning_hash.codes import sign_codes
    from lightning_hash.experiment import build_datamodule
    from lightning_hash.methods.agnet import AgNet

    path = _bundle(tmp_path / "ml.npz")
    # settings under which the codes separate on this tiny bundle (with the paper's eta = 1 and LR, 30 epochs of
    # 72 items end with one code for every item, which would make any ranking check trivial)
    res = _run(tmp_path, "agnet", "agnet", "--max-epochs", "30", "--set", "method.stage1_epochs=5",
               "--set", "method.eta=0.1", "--set", "method.lr=1e-2", "--set", "data.batch_size=8",
               "--set", "data.n_unseen=2")
    m = res["metrics"]
    split = json.loads((tmp_path / "agnet" / "split.json").read_text())
    assert split["protocol"] == "zero_shot_multilabel" and split["params"]["database"] == "all"   # agnet.yaml
    idx = {k: np.asarray(v) for k, v in split["indices"].items()}
    raw = np.load(path)
    labels, image = raw["labels"], raw["image"]
    unseen = idx["unseen_classes"]
    assert len(unseen) == 2
    carries = labels[:, unseen].sum(1) > 0
    assert not carries[idx["train"]].any() and carries[idx["query"]].all()
    assert set(idx["database"].tolist()) == set(range(len(labels))) - set(idx["query"].tolist())
    class_items = np.flatnonzero(carries)                           # the TBIR database: every unseen item
    dm = build_datamodule(res["config"], tmp_path / "agnet")
    np.testing.assert_array_equal(dm.eval_rows("test", "class_items"), class_items)
    np.testing.assert_array_equal(dm.eval_rows("test", "classes"), unseen)

    best = AgNet.load_from_checkpoint(res["model_selection"]["best_checkpoint"], map_location="cpu").eval()
    with torch.no_grad():
        def bits(batch, modality):
            return sign_codes(best.encode(batch, modality)).numpy() > 0
        img = {"image": torch.from_numpy(image)}
        img_bits = bits(img, "image")
        txt_bits = bits({"word_vectors": torch.from_numpy(raw["semantic_word_vectors"][unseen])}, "word_vectors")
    one_hot = np.eye(labels.shape[1])[unseen]
    for name, q_bits, q_lab, d_rows in (("image->image", img_bits[idx["query"]], labels[idx["query"]],
                                         idx["database"]),
                                        ("word_vectors->image", txt_bits, one_hot, class_items)):
        dist = ref_distance(q_bits, img_bits[d_rows])
        rel = ref_relevance(q_lab, labels[d_rows])                 # relevant: shares at least one label
        assert rel.sum(1).min() > 0                                 # every query has a relevant item
        want = ref_per_query(dist, rel, "ap", None, "average").mean()   # tie-aware (the library's default)
        assert m[f"test/mAP@all/{name}"] == pytest.approx(want, abs=1e-5), name
        want_p5 = ref_per_query(dist, rel, "p_at_k", 5, "average").mean()
        assert m[f"test/P@5/{name}"] == pytest.approx(want_p5, abs=1e-5), name
    # the codes are neither constant (the check above would hold for any ranking) nor tie-free (ties matter)
    assert 1 < len({tuple(r) for r in img_bits}) < len(img_bits)


def test_single_label_methods_refuse_multilabel_zero_shot_data(tmp_path):
    _bundle(tmp_path / "ml.npz")
    with pytest.raises(ValueError, match=r"vsb2net: needs single-label items .* training data \(protocol "
                                         r"'zero_shot_multilabel'\).*use agnet"):
        _run(tmp_path, "v", "vsb2net", "--max-epochs", "1", "--set", "data.n_unseen=2")
    assert not (tmp_path / "v" / "checkpoints").exists()          # refused before training
    # in setup(), before any batch; and any training batch of multi-label items is refused the same way
    dm = datamodules.create(str(tmp_path / "ml.npz"), protocol="zero_shot_multilabel", n_unseen=2, n_query=8,
                            n_val=6, modalities=["image"], class_queries="word_vectors")
    dm.setup()
    model = methods.create("vsb2net", bits=8, image_dim=10)
    model.trainer = SimpleNamespace(datamodule=dm, current_epoch=0)
    with pytest.raises(ValueError, match="vsb2net: needs single-label items"):
        model.setup("fit")
    model.setup("test")                                             # evaluating multi-label data is fine
    label = torch.zeros(2, 6)
    label[0, dm.split.seen_classes[:2]] = 1.0
    label[1, dm.split.seen_classes[0]] = 1.0
    with pytest.raises(ValueError, match=r"1 of the 2 items of a training batch carry \[2\] classes"):
        model.training_step({"image": torch.randn(2, 10), "label": label, "index": torch.arange(2)}, 0)


def _paired_arrays(seed=0, n=40, C=4) -> DatasetArrays:
    rng = np.random.RandomState(seed)
    labels = np.zeros((n, C), np.float32)
    for i in range(n):
        labels[i, rng.choice(C, 1 + i % 2, replace=False)] = 1.0
    return DatasetArrays(modalities={"image": rng.randn(n, 5).astype(np.float32),
                                     "sketch": rng.randn(n, 6).astype(np.float32)},
                         labels=labels, class_names=[f"c{i}" for i in range(C)],
                         class_semantics={"word_vectors": rng.randn(C, 3).astype(np.float32)})


def test_zsih_trains_on_multilabel_items_but_its_classifier_decoder_refuses():
    def dm():
        return ArraysDataModule(_paired_arrays(), protocol="zero_shot_multilabel", unseen_classes=["c3"], n_query=4,
                                n_val=4, modalities=["image", "sketch"], batch_size=8)
    small = dict(bits=8, fusion_width=4, gcn_hidden=8, encoder_hidden=8)
    fit_quietly(methods.create("zsih", decoder="mean", **small), dm(), epochs=1)      # mean word vector per item
    message = r"zsih \(decoder='classifier'\): needs single-label items.*decoder='gaussian' or 'mean'"
    with pytest.raises(ValueError, match=message):
        fit_quietly(methods.create("zsih", decoder="classifier", **small), dm(), epochs=1)
    data = dm()
    data.setup()
    model = methods.create("zsih", decoder="classifier", **small)
    model.trainer = SimpleNamespace(datamodule=data, current_epoch=0)
    with pytest.raises(ValueError, match=message):                  # in setup(), before any batch
        model.setup("fit")
