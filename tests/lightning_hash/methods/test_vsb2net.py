"""VSB2-Net: every loss term against the slides' equation on hand-checked inputs, the KNN grouping, the variants'
switches, run.py end to end on the digits default (IBIR + TBIR, checkpoint rebuild, resume), and the errors for
bad input (fewer classes than groups, a class without a word vector, unseen items in training)."""
from __future__ import annotations

import json
import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from datamodules.arrays import DatasetArrays
from datamodules.datamodules import ArraysDataModule
from lightning_hash import methods
from lightning_hash.experiment import main as run_main
from lightning_hash.methods.vsb2net import (VSB2Net, barycentre_margin_loss, classification_pull_loss,
                                            cosine_similarity_matrix, group_barycentres, knn_groups,
                                            quantization_l1_loss, reconstruction_loss, semantic_loss,
                                            transfer_ranking_loss, within_group_similarity_loss)
from run_helpers import fit_quietly


# ============================================================================================== pure functions
def test_cosine_similarity_matrix():
    X = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    Y = torch.tensor([[0.0, 2.0], [-1.0, 0.0], [1.0, 1.0]])
    r = 1 / math.sqrt(2)
    expected = [[0.8, -0.6, 7 / (5 * math.sqrt(2))], [0.0, -1.0, r]]        # e.g. (3 + 4) / (5 sqrt 2)
    assert torch.allclose(cosine_similarity_matrix(X, Y), torch.tensor(expected), atol=1e-6)
    with pytest.raises(ValueError, match=r"\[n, d\]"):
        cosine_similarity_matrix(X, torch.ones(2, 3))


def test_knn_groups_hand_checked():
    # two directions; class 2 is least similar on average (seed 0), class 0 the farthest from it (seed 1);
    # each seed then takes its nearest free class: 2 -> 3 (cos .970), 0 -> 1 (cos .994)
    W = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]])
    assert knn_groups(W, 2).tolist() == [1, 1, 0, 0]
    assert knn_groups(W, 1).tolist() == [0, 0, 0, 0]
    assert sorted(knn_groups(W, 4).tolist()) == [0, 1, 2, 3]          # T = L: one class per group
    # three tight pairs along three axes, T = 3: the pairs are found; balanced sizes 2, 2, 1 for L = 5
    P = torch.tensor([[1.0, 0, 0], [1, 0.1, 0], [0, 1, 0], [0.1, 1, 0], [0, 0, 1], [0, 0.1, 1]])
    g = knn_groups(P, 3).tolist()
    assert g[0] == g[1] and g[2] == g[3] and g[4] == g[5] and len({g[0], g[2], g[4]}) == 3
    sizes = torch.bincount(knn_groups(P[:5], 3)).tolist()
    assert sorted(sizes) == [1, 2, 2]
    # permutation invariant up to relabelling: the same partition of the classes
    perm = torch.tensor([5, 3, 1, 0, 2, 4])
    gp = knn_groups(P[perm], 3)
    part = lambda groups, ids: {frozenset(ids[i] for i in range(len(ids)) if groups[i] == t) for t in set(groups)}
    assert part(gp.tolist(), perm.tolist()) == part(g, list(range(6)))


def test_knn_groups_fewer_classes_than_groups():
    with pytest.raises(ValueError, match=r"fewer training classes \(3 \['a', 'b', 'c'\]\) than groups T=4"):
        knn_groups(torch.randn(3, 5), 4, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="positive integer"):
        knn_groups(torch.randn(3, 5), 0)


def test_s1_within_group_similarity():
    sim_w = torch.tensor([[1.0, 0.5, 0.2], [0.5, 1.0, 0.1], [0.2, 0.1, 1.0]])
    sim_s = torch.tensor([[1.0, 0.1, 0.9], [0.1, 0.8, 0.9], [0.9, 0.9, 1.0]])
    groups = torch.tensor([0, 0, 1])
    # group {0, 1}: ordered pairs (0,0) 0, (0,1) .16, (1,0) .16, (1,1) .04; group {2}: (2,2) 0
    assert within_group_similarity_loss(sim_w, sim_s, groups).item() == pytest.approx(0.36)
    assert within_group_similarity_loss(sim_w, sim_s, groups, "mean").item() == pytest.approx(0.36 / 5)
    with pytest.raises(ValueError, match="reduction"):
        within_group_similarity_loss(sim_w, sim_s, groups, "max")


def test_s2_barycentre_margin():
    S = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0]])
    groups = torch.tensor([0, 0, 1])
    assert group_barycentres(S, groups).tolist() == [[1.0, 0.0], [-1.0, 1.0]]
    # ||BC0 - BC1||^2 = 4 + 1 = 5; ordered pairs (0,1), (1,0): 2 * max(0, 7 - 5) = 4
    assert barycentre_margin_loss(S, groups, lam=7.0).item() == pytest.approx(4.0)
    assert barycentre_margin_loss(S, groups, lam=7.0, reduction="mean").item() == pytest.approx(2.0)
    assert barycentre_margin_loss(S, groups, lam=4.0).item() == 0.0        # margin already met
    assert barycentre_margin_loss(S, torch.zeros(3, dtype=torch.long), lam=7.0).item() == 0.0   # one group


def test_s3_quantization_and_semantic_loss():
    S = torch.tensor([[0.5, -1.0], [0.0, 2.0]])
    # || |s| - 1 ||_1: row 0: .5 + 0; row 1: 1 + 1
    assert quantization_l1_loss(S).item() == pytest.approx(2.5)
    assert quantization_l1_loss(S, "mean").item() == pytest.approx(1.25)
    # L_s combines S1, S2, S3 with alpha, beta, gamma; scale divides S2 and S3
    W = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    Sv = torch.tensor([[1.0, -1.0], [0.5, 0.5], [-1.0, 1.0]])
    groups = torch.tensor([0, 0, 1])
    loss, terms = semantic_loss(W, Sv, groups, alpha=2.0, beta=3.0, gamma=5.0, lam=9.0, scale=2.0)
    r = 1 / math.sqrt(2)
    # S1: cos(w0, w1) = r, cos(s0, s1) = 0 -> 2 r^2 = 1 (diagonals 0)
    # S2: BC0 = (.75, -.25), BC1 = (-1, 1): d2 = 3.0625 + 1.5625 = 4.625 -> 2 (9 - 4.625) = 8.75, / 2
    # S3: row 1: .5 + .5 = 1, / 2
    assert terms["sim"].item() == pytest.approx(2 * r * r)
    assert terms["bary"].item() == pytest.approx(8.75 / 2)
    assert terms["quant"].item() == pytest.approx(0.5)
    assert loss.item() == pytest.approx(2 * 1.0 + 3 * 8.75 / 2 + 5 * 0.5)


def test_t1_transfer_ranking_and_classification_pull():
    S = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    B = torch.tensor([[1.0, 0.5], [0.5, -0.2]])
    targets = torch.tensor([0, 0])
    # item 0: b^T s = [1.5, .5, -1.5]: max(0, 1 - 1.5 + .5) = 0 ; item 1: [.3, .7, -.3]: max(0, 1 - .3 + .7) = 1.4
    assert transfer_ranking_loss(B, S, targets, margin=1.0).item() == pytest.approx(1.4)
    assert transfer_ranking_loss(B, S, targets, margin=1.0, reduction="mean").item() == pytest.approx(0.7)
    assert transfer_ranking_loss(B, S, torch.tensor([1, 1]), margin=0.0).item() == pytest.approx(1.0 + 0.0)
    with pytest.raises(ValueError, match="two classes"):
        transfer_ranking_loss(B, S[:1], torch.tensor([0, 0]), margin=1.0)
    # classification module: item 1 is nearest to class 1, not its class 0: pulled by ||b - s^0||^2 = .25 + 1.44
    assert classification_pull_loss(B, S, targets, "sum").item() == pytest.approx(0.25 + 1.44)
    assert classification_pull_loss(B, S, targets).item() == pytest.approx((0.25 + 1.44) / 2)
    Bg = B.clone().requires_grad_(True)
    classification_pull_loss(Bg, S, targets, "sum").backward()
    assert torch.allclose(Bg.grad, torch.tensor([[0.0, 0.0], [2 * (0.5 - 1), 2 * (-0.2 - 1)]]))
    assert reconstruction_loss(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 4.0]])).item() == pytest.approx(2.5)


# ============================================================================================== variants
def test_variants_switch_the_documented_parts():
    expect = {"vsb2net": dict(grouping="knn", mapping="hamming", mu_rec=1.0, mu_cls=1.0, recon_target="visual"),
              "vsb2g": dict(grouping="global", mapping="hamming", mu_rec=1.0),
              "vsb2g_sem": dict(grouping="knn", recon_target="semantic"),
              "mini_vsb2net": dict(mapping="hamming", mu_rec=0.0, mu_cls=0.0),
              "mini_sitnet": dict(mapping="semantic", mu_rec=0.0, mu_cls=0.0),
              "vsb2net_nosem": dict(mapping="free", mu_rec=1.0)}
    for name, want in expect.items():
        model = methods.create(name, bits=8, image_dim=6)
        assert {k: model.hparams[k] for k in want} == want, name
        assert isinstance(model, VSB2Net)
    # the variant's defaults can still be overridden, and its constructor shows image_dim to run.py
    assert methods.create("vsb2g", bits=8, image_dim=6, grouping="knn").hparams.grouping == "knn"
    import inspect
    assert "image_dim" in inspect.signature(methods.get("mini_sitnet").__init__).parameters
    with pytest.raises(ValueError, match="grouping must be one of"):
        methods.create("vsb2net", bits=8, image_dim=6, grouping="local")
    with pytest.raises(ValueError, match="image_dim"):
        methods.create("vsb2net", bits=8)


# ============================================================================================== end to end
def _arrays(W: np.ndarray, n_per=10, C=5, seed=0) -> DatasetArrays:
    rng = np.random.RandomState(seed)
    labels = np.repeat(np.arange(C), n_per)
    image = (rng.randn(len(labels), 6) + 2 * np.eye(C, 6)[labels]).astype(np.float32)
    return DatasetArrays(modalities={"image": image}, labels=labels, class_names=[f"c{i}" for i in range(C)],
                         class_semantics={"word_vectors": W.astype(np.float32)})


def _dm(W, unseen=("c4",), **kw):
    dm = ArraysDataModule(_arrays(W), protocol="zero_shot", unseen_classes=list(unseen), n_query=4, database="all",
                          modalities=["image"], batch_size=8, **kw)
    dm.setup()
    return dm


def test_bad_input_is_a_clear_error():
    W = np.random.RandomState(0).randn(5, 4)
    dm = _dm(W, class_queries="word_vectors")
    # 4 seen classes, 5 groups
    with pytest.raises(ValueError, match=r"fewer training classes \(4 \['c0', 'c1', 'c2', 'c3'\]\) than groups T=5"):
        fit_quietly(methods.create("vsb2net", bits=8, image_dim=6, num_groups=5), dm, epochs=1)
    # a class (here an unseen one, a TBIR query) without a word vector
    Wbad = W.copy()
    Wbad[4] = 0.0
    with pytest.raises(ValueError, match=r"classes \['c4'\] have no word vector in 'word_vectors'"):
        fit_quietly(methods.create("vsb2net", bits=8, image_dim=6), _dm(Wbad, class_queries="word_vectors"),
                    epochs=1)
    Wnan = W.copy()
    Wnan[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):                       # refused by the data layer already
        _dm(Wnan)
    fake = SimpleNamespace(class_semantics={"word_vectors": torch.as_tensor(Wnan)}, class_names=[f"c{i}" for i in
                                                                                                  range(5)])
    with pytest.raises(ValueError, match=r"classes \['c1'\] have no word vector"):   # and by the model
        methods.create("mini_sitnet", bits=8, image_dim=6)._word_vectors(fake)
    with pytest.raises(ValueError, match="no class word vectors 'glove'"):
        fit_quietly(methods.create("vsb2net", bits=8, image_dim=6, text_key="glove"), dm, epochs=1)
    # a training batch with an unseen class; validation classes are not training classes either
    model = methods.create("vsb2net", bits=8, image_dim=6)
    model.trainer = SimpleNamespace(datamodule=_dm(W, val_classes=["c0"]), current_epoch=0)
    model.setup("fit")
    assert model._train_classes.tolist() == [1, 2, 3]
    label = torch.zeros(2, 5)
    label[0, 1] = label[1, 0] = 1.0
    with pytest.raises(ValueError, match=r"classes \[0\] that are unseen or held out"):
        model.training_step({"image": torch.randn(2, 6), "label": label, "index": torch.arange(2)}, 0)
    label[1, 0], label[1, 4] = 0.0, 1.0
    with pytest.raises(ValueError, match=r"classes \[4\]"):
        model.training_step({"image": torch.randn(2, 6), "label": label, "index": torch.arange(2)}, 0)


def test_each_variant_trains_and_evaluates_ibir_tbir():
    W = np.random.RandomState(1).randn(5, 4)
    dm = _dm(W, class_queries="word_vectors", class_query_database="class_items")
    for name in ("vsb2g", "vsb2g_sem", "mini_sitnet"):
        model = methods.create(name, bits=8, image_dim=6, num_groups=2)
        trainer = fit_quietly(model, dm, epochs=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = trainer.test(model, datamodule=dm, verbose=False)[0]
        assert np.isfinite(out["test/mAP@all/image->image"]) and np.isfinite(out["test/mAP@all/word_vectors->image"])
    # Mini-SitNet's text code sign(P^T w^) maximises (P b)^T w^ over all 2^8 codes
    w = torch.randn(1, 4)
    code = torch.sign(model.encode({"word_vectors": w}, "word_vectors"))
    allcodes = torch.tensor(list(np.ndindex(*(2,) * 8)), dtype=torch.float32) * 2 - 1
    scores = model.projection(allcodes) @ torch.nn.functional.normalize(w, dim=1).t()
    assert (model.projection(code) @ torch.nn.functional.normalize(w, dim=1).t()).item() == pytest.approx(
        scores.max().item(), rel=1e-5)
    # the no-semantics baseline never reads the word vectors (works without them), IBIR only
    arr = _arrays(W)
    arr = DatasetArrays(modalities=arr.modalities, labels=arr.labels, class_names=arr.class_names)
    dm2 = ArraysDataModule(arr, protocol="zero_shot", unseen_classes=["c4"], n_query=4, database="all",
                           modalities=["image"], batch_size=8)
    dm2.setup()
    nosem = methods.create("vsb2net_nosem", bits=8, image_dim=6)
    fit_quietly(nosem, dm2, epochs=1)
    assert nosem.hparams.num_train_classes == 4 and nosem.class_table.shape == (4, 8)
    with pytest.raises(ValueError, match="encodes 'image', not 'word_vectors'"):
        nosem.encode({"word_vectors": w}, "word_vectors")


def test_run_py_digits_default_resume_and_checkpoint_rebuild(tmp_path):
    def run(*extra):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return run_main(["--method", "vsb2net", "--bits", "16", "--logger", "none", "--no-progress-bar",
                             "--output", str(tmp_path / "v"), *extra])
    res = run("--max-epochs", "2")
    m = res["metrics"]
    for key in ("test/mAP@all/image->image", "test/P@r2/image->image", "test/mAP@all/word_vectors->image"):
        assert key in m and np.isfinite(m[key]), key
    # random codes on the very same split and tasks: two epochs of VSB2-Net must already beat them on IBIR
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rnd = run_main(["--method", "random", "--bits", "16", "--logger", "none", "--no-progress-bar", "--output",
                        str(tmp_path / "rnd"), *[a for k, v in res["config"]["data"].items()
                                                 for a in ("--set", f"data.{k}={json.dumps(v)}")]])
    assert m["test/mAP@all/image->image"] > rnd["metrics"]["test/mAP@all/image->image"] + 0.15, (m, rnd["metrics"])
    assert res["config"]["data"]["zero_shot"] and res["config"]["data"]["class_queries"] == "word_vectors"
    last = tmp_path / "v" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["hyper_parameters"]["word_dim"] == 64 and ckpt["epoch"] == 1
    model = VSB2Net.load_from_checkpoint(str(last), map_location="cpu")       # a checkpoint alone rebuilds it
    assert model.semantic_net[0][-1].in_features == 64 and model.decoder[-1].out_features == 64
    res2 = run("--resume", "last", "--max-epochs", "3")
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 2
    assert np.isfinite(res2["metrics"]["test/mAP@all/image->image"])


def test_variant_without_semantics_refuses_class_queries_before_training():
    """vsb2net_nosem cannot encode class word vectors: a TBIR task is refused by check_tasks (run.py calls it
    before training), not at the first validation."""
    from lightning_hash import methods
    from lightning_hash.contract import RetrievalTask

    m = methods.create("vsb2net_nosem", bits=8, image_dim=6)
    m.check_tasks([RetrievalTask("image", "image")])
    with pytest.raises(ValueError, match=r"encodes only \['image'\].*word_vectors->image.*data.class_queries=null"):
        m.check_tasks([RetrievalTask("image", "image"), RetrievalTask("word_vectors", "image")])
    methods.create("vsb2net", bits=8, image_dim=6).check_tasks([RetrievalTask("word_vectors", "image")])
