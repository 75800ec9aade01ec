"""AgNet: each loss term against its equation on hand-checked inputs, the zero-shot protocols end to end
(digits, xlsa17 files), resume in stage 2, and the errors for bad class semantics."""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import datamodules
from datamodules.arrays import DatasetArrays
from datamodules.datamodules import ArraysDataModule
from datamodules.zero_shot_semantics import cub10_class_semantics
from lightning_hash import methods
from lightning_hash.experiment import main as run_main
from lightning_hash.methods.agnet import (AgNet, a2h_loss, attribute_bce, attribute_similarity,
                                          attribute_similarity_loss, attribute_targets, category_similarity,
                                          category_similarity_loss, positive_error_distance, regularization_loss)
from run_helpers import fit_quietly, load_experiment_script

sig = lambda x: 1.0 / (1.0 + math.exp(-x))


# ============================================================================================== loss terms
def test_eq1_attribute_bce():
    pred = torch.tensor([[0.8, 0.4], [0.3, 0.9]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # -1/N sum_i [a^T log a^ + (1-a)^T log(1-a^)] = -(log .8 + log .6 + log .7 + log .9) / 2
    expected = -(math.log(0.8) + math.log(0.6) + math.log(0.7) + math.log(0.9)) / 2
    assert attribute_bce(pred, target).item() == pytest.approx(expected, rel=1e-6)


def test_eq2_category_similarity_loss():
    P = torch.tensor([[1.0, 0.0]])
    Q = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    S = torch.tensor([[1.0, 0.0]])
    # Theta = 1/2 P Q^T = [[1, 0]]; L = -(1*1 - log(1+e)) - (0 - log 2)
    expected = -(1.0 - math.log(1 + math.e)) + math.log(2.0)
    assert category_similarity_loss(P, Q, S).item() == pytest.approx(expected, rel=1e-6)
    assert category_similarity(torch.tensor([0, 1, 0])).tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    assert category_similarity(torch.tensor([[1.0, 0.0], [0.0, 1.0]])).tolist() == [[1, 0], [0, 1]]


def test_eq3_attribute_similarity_and_loss():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    S_c = torch.eye(2)
    S_att = attribute_similarity(a, S_c)        # cos - S^c
    r = 1 / math.sqrt(2)
    assert torch.allclose(S_att, torch.tensor([[0.0, r], [r, 0.0]]), atol=1e-6)
    P = torch.tensor([[1.0, 1.0], [1.0, -1.0]])  # phi = 1/2 P P^T = [[1, 0], [0, 1]]
    S = torch.tensor([[0.2, 0.5], [0.5, -0.1]])
    expected = sig(0.2) + sig(0.0) + sig(0.0) + sig(-0.1)
    assert attribute_similarity_loss(P, S).item() == pytest.approx(expected, rel=1e-6)


def test_eq4_regularization_both_readings():
    P = torch.tensor([[0.5, -2.0], [1.0, 1.0]])
    quant = 0.25 + 1.0 + 0.0 + 0.0                     # ||sign(P) - P||^2
    assert regularization_loss(P, "code").item() == pytest.approx(quant + (-1.5) ** 2 + 2.0 ** 2)  # P^T 1
    assert regularization_loss(P, "bit").item() == pytest.approx(quant + 1.5 ** 2 + (-1.0) ** 2)   # P 1
    P.requires_grad_(True)
    regularization_loss(P, "bit").backward()          # B = sign(P) is a constant
    assert torch.allclose(P.grad, 2 * (P.detach() - torch.sign(P.detach())) + 2 * P.detach().sum(0, keepdim=True))
    with pytest.raises(ValueError, match="balance"):
        regularization_loss(P, "row")


def test_eq5_total_and_eq7_ped():
    torch.manual_seed(0)
    P, Q = torch.randn(4, 3), torch.randn(4, 3)
    S_c = category_similarity(torch.tensor([0, 1, 0, 2]))
    S_att = attribute_similarity(torch.rand(4, 5), S_c)
    loss, terms = a2h_loss(P, Q, S_c, S_att, lam=0.5, eta=2.0, balance="bit")
    expected = (category_similarity_loss(P, Q, S_c) + 0.5 * attribute_similarity_loss(P, S_att)
                + 2.0 * regularization_loss(P, "bit"))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6) and set(terms) == {"cs", "as", "reg"}
    loss0, terms0 = a2h_loss(P, Q, S_c, None)
    assert "as" not in terms0
    # PED: sum A |A - A^| / sum A over the attributes that are on
    target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    pred = torch.tensor([[0.5, 0.9, 1.0], [0.2, 0.4, 0.7]])
    assert positive_error_distance(pred, target).item() == pytest.approx((0.5 + 0.0 + 0.6) / 3)


def test_attribute_targets():
    m = torch.tensor([[0.0, 2.0], [1.0, 4.0], [0.5, 3.0]])
    assert attribute_targets(m, "auto").tolist() == [[0.0, 0.0], [1.0, 1.0], [0.5, 0.5]]
    assert attribute_targets(m, "threshold").tolist() == [[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="other than 0 and 1"):
        attribute_targets(m, "binary")


# ============================================================================================== end to end
def _run(tmp_path: Path, name: str, *extra: str, method: str = "agnet", callbacks=()):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_main(["--method", method, "--bits", "16", "--logger", "none", "--no-progress-bar",
                         "--output", str(tmp_path / name), *extra], callbacks=callbacks)


class StageRecorder:
    def __init__(self):
        import pytorch_lightning as pl

        class CB(pl.Callback):
            def on_train_epoch_start(cb, trainer, module):
                self.stages.append((trainer.current_epoch, module.stage))
        self.stages, self.callback = [], CB()


def test_run_py_digits_tbir_ibir_and_resume_in_stage2(tmp_path):
    rec = StageRecorder()
    res = _run(tmp_path, "a", "--max-epochs", "2", "--set", "method.stage1_epochs=1", callbacks=[rec.callback])
    m = res["metrics"]
    for key in ("test/mAP@all/image->image", "test/P@r2/image->image", "test/mAP@all/word_vectors->image",
                "test/PED/image", "test/PED/word_vectors"):
        assert key in m and np.isfinite(m[key]), key
    # the logged TBIR and IBIR figures are the metrics of the best checkpoint's codes on the recorded split:
    # class queries (word vectors) against the unseen-class items, image queries against the IBIR database
    from lightning_hash.codes import sign_codes
    from lightning_hash.experiment import build_datamodule
    from lightning_hash.metrics import functional as F
    dm = build_datamodule(res["config"], tmp_path / "a")
    best = AgNet.load_from_checkpoint(res["model_selection"]["best_checkpoint"], map_location="cpu").eval()

    def whole(set_name):
        ds = dm.eval_dataset("test", set_name)
        return ds.__getitems__(list(range(len(ds))))

    with torch.no_grad():
        for (q_set, q_mod), (d_set, d_mod) in ((("classes", "word_vectors"), ("class_items", "image")),
                                               (("query", "image"), ("database", "image"))):
            q, d = whole(q_set), whole(d_set)
            want = F.mean_average_precision(sign_codes(best.encode(q, q_mod)), sign_codes(best.encode(d, d_mod)),
                                            q["label"], d["label"])
            assert m[f"test/mAP@all/{q_mod}->{d_mod}"] == pytest.approx(float(want), abs=1e-6), (q_mod, d_mod)
    assert rec.stages == [(0, 1), (1, 2)]
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    before = torch.load(last, map_location="cpu", weights_only=False)
    assert before["hyper_parameters"]["attribute_dim"] == 12 and before["hyper_parameters"]["text_dim"] == 64
    rec2 = StageRecorder()
    _run(tmp_path, "a", "--resume", "last", "--max-epochs", "3", callbacks=[rec2.callback])
    assert rec2.stages == [(2, 2)]                    # the resumed epoch is a stage-2 epoch
    after = torch.load(last, map_location="cpu", weights_only=False)
    sb, sa = before["state_dict"], after["state_dict"]
    assert all(torch.equal(sb[k], sa[k]) for k in sb if k.startswith(("v2a.", "t2a.")))   # stage 2: frozen
    assert any(not torch.equal(sb[k], sa[k]) for k in sb if k.startswith("a2h."))        # A2H trains
    # a checkpoint alone rebuilds the model
    model = AgNet.load_from_checkpoint(str(last), map_location="cpu")
    assert model.v2a[-2].out_features == 12


def test_class_items_database_is_unseen_only():
    dm = datamodules.create("digits", zero_shot=True, database="all", modalities=["image"],
                            class_queries="word_vectors", class_query_database="class_items")
    dm.setup()
    labels = dm.arrays.labels
    tbir = [t for t in dm.tasks if t.query_set == "classes"][0]
    assert tbir.database_set == "class_items"
    rows = dm.eval_rows("test", "class_items")
    assert set(labels[rows].tolist()) == {3, 6, 9}
    assert len(rows) == int(np.isin(labels, [3, 6, 9]).sum())           # every unseen item, queries included
    assert set(labels[dm.split.database].tolist()) == set(range(10))     # IBIR database: seen + unseen
    with pytest.raises(ValueError, match="class_query_database"):
        datamodules.create("digits", class_query_database="everything")


def _tiny_arrays(word_vectors: np.ndarray, n_per=12, C=4, seed=0) -> DatasetArrays:
    rng = np.random.RandomState(seed)
    labels = np.repeat(np.arange(C), n_per)
    image = (rng.randn(len(labels), 6) + labels[:, None]).astype(np.float32)
    att = (rng.rand(C, 5) > 0.5).astype(np.float32)
    att[:, 0] = 1.0
    return DatasetArrays(modalities={"image": image}, labels=labels, class_names=[f"c{i}" for i in range(C)],
                         class_semantics={"attributes": att, "word_vectors": word_vectors.astype(np.float32)})


def test_bad_class_semantics_and_unseen_training_items_are_clear_errors():
    W = np.random.RandomState(0).randn(4, 3)
    W[2] = 0.0                                                          # class c2 has no word vector
    dm = ArraysDataModule(_tiny_arrays(W), protocol="zero_shot", unseen_classes=["c3"], n_query=4,
                          modalities=["image"], class_queries="word_vectors", batch_size=8)
    dm.setup()
    with pytest.raises(ValueError, match=r"classes \['c2'\] have no text vector"):
        fit_quietly(methods.create("agnet", bits=8, image_dim=6, stage1_epochs=1), dm, epochs=2)
    # an unseen class in the training data: refused by the split, and by the model for any batch
    good = np.random.RandomState(1).randn(4, 3)
    bad_split = ArraysDataModule(_tiny_arrays(good), protocol="zero_shot", unseen_classes=["c3"], n_query=4,
                                 train_pool=list(range(48)), modalities=["image"], class_queries="word_vectors")
    with pytest.raises(ValueError, match="unseen"):
        bad_split.setup()
    dm2 = ArraysDataModule(_tiny_arrays(good), protocol="zero_shot", unseen_classes=["c3"], n_query=4,
                           modalities=["image"], class_queries="word_vectors", batch_size=8)
    dm2.setup()
    with pytest.raises(ValueError, match="no class attributes 'colour'"):
        fit_quietly(methods.create("agnet", bits=8, image_dim=6, stage1_epochs=1, attribute_key="colour"), dm2,
                    epochs=2)
    model = methods.create("agnet", bits=8, image_dim=6, stage1_epochs=1)
    model.trainer = SimpleNamespace(datamodule=dm2, current_epoch=0)
    model.setup("fit")
    label = torch.zeros(2, 4)
    label[0, 0] = label[1, 3] = 1.0                                     # c3 is unseen
    with pytest.raises(ValueError, match="unseen classes"):
        model.training_step({"image": torch.randn(2, 6), "label": label, "index": torch.arange(2)}, 0)
    with pytest.raises(ValueError, match="leaves no epoch for stage 2"):
        fit_quietly(methods.create("agnet", bits=8, image_dim=6, stage1_epochs=2), dm2, epochs=2)


def test_noattr_baseline_and_cub10_semantics_trains():
    W = np.random.RandomState(0).randn(4, 3)
    arrays = _tiny_arrays(W)
    dm = ArraysDataModule(arrays, protocol="zero_shot", unseen_classes=["c3"], n_query=4, database="all",
                          modalities=["image"], class_queries="word_vectors", class_query_database="class_items",
                          batch_size=8)
    dm.setup()
    import inspect
    assert {"image_dim", "num_classes"} <= set(inspect.signature(methods.get("agnet_noattr").__init__).parameters)
    model = methods.create("agnet_noattr", bits=8, image_dim=6, optimizer="adam")
    trainer = fit_quietly(model, dm, epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert "test/mAP@all/word_vectors->image" in out and "test/mAP@all/image->image" in out
    # CUB-10 class semantics: mean text per class and its above-average signature
    text = np.arange(8, dtype=np.float32).reshape(4, 2)
    cub = DatasetArrays(modalities={"image": np.zeros((4, 3), np.float32), "text": text},
                        labels=np.array([0, 0, 1, 1]), class_names=["a", "b"])
    sem = cub10_class_semantics(cub).class_semantics
    np.testing.assert_allclose(sem["class_text"], [[1, 2], [5, 6]])
    np.testing.assert_array_equal(sem["attributes"], [[0, 0], [1, 1]])


def test_xlsa17_files_end_to_end(tmp_path):
    from scipy.io import savemat
    rng = np.random.RandomState(1)
    classes = 6
    labels = np.repeat(np.arange(1, classes + 1), 30)                       # 1-based, as published
    unseen = np.flatnonzero(labels >= 5) + 1
    seen = rng.permutation(np.flatnonzero(labels < 5)) + 1
    feats = rng.rand(16, len(labels)) + 0.5 * (labels[None, :] % 3)
    savemat(tmp_path / "res101.mat", {"features": feats, "labels": labels[:, None]})
    names = np.array([[np.array([f"cls{i}"])] for i in range(classes)], dtype=object)
    att = rng.rand(7, classes)
    att /= np.linalg.norm(att, axis=0, keepdims=True)                       # xlsa17's att is L2-normalised
    savemat(tmp_path / "att_splits.mat", {
        "allclasses_names": names, "att": att, "original_att": att * 100,
        "trainval_loc": seen[:100, None], "train_loc": seen[:60, None], "val_loc": seen[60:100, None],
        "test_seen_loc": seen[100:, None], "test_unseen_loc": unseen[:, None]})
    res = _run(tmp_path, "x", "--data", "xlsa17", "--data-root", str(tmp_path), "--max-epochs", "2",
               "--set", "method.stage1_epochs=1", "--set", "method.text_key=attributes",
               "--set", "data.class_queries=attributes",
               "--set", "data.n_query=12", "--set", "method.eval_precision_at=[10]",
               "--set", "data.check_content=false")
    m = res["metrics"]
    assert {"test/mAP@all/image->image", "test/mAP@all/attributes->image", "test/PED/image"} <= set(m)
    assert res["config"]["data_name"] == "xlsa17"


# ============================================================================ experiments/diagnose_agnet_ibir.py
def _diagnose_module():
    return load_experiment_script("diagnose_agnet_ibir")


def test_diagnosis_cosine_map_matches_hand_computed_average_precision():
    """The real-valued column of the IBIR diagnosis: AP by hand on a 3-item database."""
    cosine_map = _diagnose_module().cosine_map
    query = np.array([[1.0, 0.0]])
    # cosines 1, 0, 0.707: relevant items at ranks 1 and 2 -> AP 1
    db = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert cosine_map(query, np.array([0]), db, np.array([0, 1, 0])) == pytest.approx(1.0)
    # relevant at ranks 1 and 3 -> AP = (1/1 + 2/3) / 2
    assert cosine_map(query, np.array([0]), db, np.array([0, 0, 1])) == pytest.approx((1 + 2 / 3) / 2)
    # multi-hot labels: relevant when a label is shared (items 0 and 1 share label 1 with the query)
    q_multi, db_multi = np.array([[0, 1, 1]]), np.array([[1, 1, 0], [0, 0, 1], [1, 0, 0]])
    assert cosine_map(query, q_multi, db, db_multi) == pytest.approx((1 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="all zeros"):
        cosine_map(query, np.array([0]), np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([0, 0]))
