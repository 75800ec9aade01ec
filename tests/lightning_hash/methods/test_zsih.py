"""ZSIH (lightning_hash/methods/zsih.py): eq. 5.10's gradient paths, eq. 5.12's test codes, the ablation switches,
the timm backbone + attention encoder, the bad-input errors, and run.py end to end on the embedded default."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from lightning_hash import methods
from lightning_hash.experiment import main as run_main
from lightning_hash.methods.zsih import ZSIH, check_paired_labels, zsih_l2


def _model(**kw) -> ZSIH:
    args = dict(bits=8, image_dim=5, sketch_dim=6, semantic_dim=4, num_classes=3, fusion_width=4, gcn_hidden=8,
                encoder_hidden=8)
    args.update(kw)
    torch.manual_seed(0)
    m = ZSIH(**args)
    m._W = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    m._seen = torch.tensor([True, True, False])
    return m


def _batch(n=6, classes=(0, 1)):
    g = torch.Generator().manual_seed(1)
    lab = torch.zeros(n, 3)
    lab[torch.arange(n), torch.tensor([classes[i % len(classes)] for i in range(n)])] = 1
    return {"image": torch.randn(n, 5, generator=g), "sketch": torch.randn(n, 6, generator=g), "label": lab,
            "index": torch.arange(n)}


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    out = {}
    for name, p in model.named_parameters():
        top = name.split(".")[0]
        out[top] = out.get(top, 0.0) + (0.0 if p.grad is None else float(p.grad.abs().sum()))
    return out


# ============================================================================================== eq. 5.10 / 5.11
def test_l2_terms_do_not_reach_the_code_learner_and_the_rest_does_not_reach_the_encoders():
    m = _model()
    torch.manual_seed(2)
    g = _grads(m, m.compute_loss(_batch())[1]["l2"])
    assert g["enc_image"] > 0 and g["enc_sketch"] > 0
    assert g["fusion"] == 0 and g["gcn1"] == 0 and g["gcn2"] == 0 and g["decoder"] == 0
    torch.manual_seed(2)
    _, terms = m.compute_loss(_batch())
    g = _grads(m, terms["decoder"] + terms["log_q"])
    assert g["enc_image"] == 0 and g["enc_sketch"] == 0
    assert g["fusion"] > 0 and g["gcn1"] > 0 and g["gcn2"] > 0 and g["decoder"] > 0


def test_loss_terms_against_their_definitions():
    m = _model(epsilon=0.5)              # a fixed threshold makes b~ deterministic
    batch = _batch()
    loss, terms = m.compute_loss(batch)
    s = batch["label"] @ m._W
    logits = m.code_learner(batch, s)
    p = torch.sigmoid(logits)
    codes = (p >= 0.5).float()
    neg_entropy = (p * torch.log(p) + (1 - p) * torch.log(1 - p)).sum(1).mean()
    mu, log_var = m.decoder.mean(codes), m.decoder.log_var(codes).clamp_min(-6)
    nll = (0.5 * ((s - mu) ** 2 / log_var.exp() + log_var + math.log(2 * math.pi))).sum(1).mean()
    f, gg = torch.sigmoid(m.enc_image(batch["image"])), torch.sigmoid(m.enc_sketch(batch["sketch"]))
    l2 = (((f - codes) ** 2).sum(1) + ((gg - codes) ** 2).sum(1)).mean() / (2 * 8)
    assert terms["log_q"].item() == pytest.approx(neg_entropy.item(), rel=1e-5)
    assert terms["decoder"].item() == pytest.approx(nll.item(), rel=1e-5)
    assert terms["l2"].item() == pytest.approx(l2.item(), rel=1e-5)
    assert loss.item() == pytest.approx((neg_entropy + nll + l2).item(), rel=1e-5)
    assert torch.allclose(zsih_l2(f, gg, codes), ((f - codes) ** 2 + (gg - codes) ** 2).sum(1) / 16)


def test_gcn_mixes_rows_by_word_vector_and_t():
    """With t -> 0 only same-class rows interact: a row's logits do not depend on other-class rows."""
    m = _model(adjacency_t=1e-6)
    b = _batch(4, classes=(0, 1))
    s = b["label"] @ m._W
    base = m.code_learner(b, s).detach()
    b2 = {k: v.clone() for k, v in b.items()}
    b2["image"][1] += 5.0                                         # row 1 is class 1
    out = m.code_learner(b2, s).detach()
    assert torch.allclose(out[0], base[0]) and torch.allclose(out[2], base[2])      # class 0 rows unchanged
    assert not torch.allclose(out[3], base[3])                                       # class 1 row 3 changed
    m_wide = _model(adjacency_t=100.0)
    base = m_wide.code_learner(b, s).detach()
    assert not torch.allclose(m_wide.code_learner(b2, s).detach()[0], base[0])      # t large: everyone mixes


# ============================================================================================== eq. 5.12
def test_encode_uses_the_encoders_alone():
    m = _model()
    x = torch.randn(3, 5)
    out = m.encode({"image": x}, "image")                         # no sketch, no label, no word vector needed
    assert torch.allclose(out, torch.sigmoid(m.enc_image(x)) - 0.5)
    with pytest.raises(ValueError, match="encodes"):
        m.encode({"text": x}, "text")


# ============================================================================================== ablations
@pytest.mark.parametrize("switch", [dict(fusion="concat"), dict(fusion="mfb"), dict(code_layer="bit_regularization"),
                                    dict(decoder="classifier"), dict(decoder="mean"), dict(graph="none"),
                                    dict(graph="word_vector_fusion"), dict(adjacency_t=1.0), dict(epsilon=0.5),
                                    dict(entropy="official"), dict(kronecker_mode="official"),
                                    dict(encoder_target="threshold"), dict(fused_norm="batch")])
def test_ablation_switches_train(switch):
    m = _model(**switch)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        torch.manual_seed(0)
        loss, terms = m.compute_loss(_batch())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # on a fixed batch with fixed noise every switch must still train: a detached term or a dead branch would
    # leave the loss flat (a finite loss alone proves nothing)
    assert all(np.isfinite(losses)) and losses[2] < losses[1] < losses[0], losses
    if switch.get("decoder") == "classifier":
        assert isinstance(m.decoder, torch.nn.Linear) and m.decoder.out_features == 3
    if switch.get("code_layer") == "bit_regularization":
        assert "bit_reg" in terms and "log_q" not in terms
    with pytest.raises(ValueError, match="fusion"):
        ZSIH(fusion="sum")


def test_timm_backbone_with_attention_on_tiny_images():
    pytest.importorskip("timm")
    m = _model(backbone="resnet18", pretrained=False)
    assert m.enc_image.channels == 512 and m.enc_image.attention.channels == 512
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.rand(4, 3, 64, 64, generator=g), "sketch": torch.rand(4, 3, 64, 64, generator=g),
             "label": torch.eye(3)[[0, 1, 0, 1]], "index": torch.arange(4)}
    loss, _ = m.compute_loss(batch)
    loss.backward()
    assert m.enc_image.cnn.conv1.weight.grad is not None and m.enc_image.attention.score.weight.grad is not None
    codes = m.encode({"sketch": batch["sketch"]}, "sketch")
    assert codes.shape == (4, 8) and codes.abs().max() <= 0.5


# ============================================================================================== bad input
def test_image_sketch_class_mismatch_is_rejected():
    m = _model()
    b = _batch(4)
    b["sketch_label"] = b["label"].clone()
    m.compute_loss(b)                                             # same classes: fine
    b["sketch_label"][2] = torch.tensor([0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match=r"rows \[2\].*different classes"):
        m.compute_loss(b)
    with pytest.raises(ValueError, match="different classes"):
        check_paired_labels(torch.tensor([0, 1]), torch.tensor([1, 1]))


def test_missing_word_vectors_are_clear_errors():
    m = ZSIH(bits=8)

    class DM:
        class_names = ["a", "b", "c"]
        class_semantics = {"word_vectors": torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])}
    with pytest.raises(ValueError, match=r"classes \['b'\] have no word vector in 'word_vectors'"):
        m.class_word_vectors(DM())
    DM.class_semantics = {"attributes": torch.ones(3, 2)}
    with pytest.raises(ValueError, match="no class word vectors 'word_vectors'"):
        m.class_word_vectors(DM())
    with pytest.raises(ValueError, match="unseen classes"):
        _model().compute_loss(_batch(4, classes=(0, 2)))


# ============================================================================================== end to end
def _run(tmp_path: Path, name: str, *extra: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_main(["--method", "zsih", "--bits", "16", "--logger", "none", "--no-progress-bar",
                         "--output", str(tmp_path / name), *extra])


def test_run_py_digits_sketch_to_image_on_unseen(tmp_path):
    res = _run(tmp_path, "a", "--max-epochs", "2")
    m = res["metrics"]
    for key in ("test/mAP@all/sketch->image", "test/P@100/sketch->image"):
        assert key in m and 0.0 <= m[key] <= 1.0, key
    assert [k for k in m if k.endswith("->image") and "mAP@all" in k] == ["test/mAP@all/sketch->image"]
    split = res["config"]["data"]
    assert split["zero_shot"] is True
    # the checkpoint alone rebuilds the model (sizes inferred in setup() are in the hyperparameters)
    model = ZSIH.load_from_checkpoint(res["model_selection"]["last_checkpoint"])
    assert model.hparams.image_dim == 64 and model.hparams.sketch_dim == 256 and model.hparams.semantic_dim == 64
    x = torch.rand(2, 256)
    assert model.encode({"sketch": x}, "sketch").shape == (2, 16)


def test_trains_on_official_layout_files(tmp_path):
    import pytorch_lightning as pl
    from datamodules.sketch import SketchDataModule
    rng = np.random.RandomState(0)
    W = rng.randn(4, 3)
    for name, n in (("im", 8), ("sk", 5)):
        lab = np.repeat(np.arange(1, 5), n)
        scipy.io.savemat(tmp_path / f"{name}.mat", {"feat": rng.randn(len(lab), 6) + lab[:, None],
                                                    "label": lab[:, None], "wv": W[lab - 1]})
    dm = SketchDataModule(image_files=tmp_path / "im.mat", sketch_files=tmp_path / "sk.mat", unseen=["4"],
                          batch_size=8, n_val=3)
    model = methods.create("zsih", bits=8, fusion_width=8, gcn_hidden=16, encoder_hidden=16)
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, datamodule=dm)
        out = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert model.hparams.image_dim == 6 and 0.0 <= out["test/mAP@all/sketch->image"] <= 1.0


def test_run_py_on_sketchy_files_in_the_official_layout(tmp_path):
    """``run.py --data sketchy`` on tiny files: class names recovered from 'wv', the ECCV'18 21-class split."""
    from datamodules.datamodules import data_dir
    root = data_dir() / "semantics" / "sketch_word2vec"
    if not (root / "vocab_sketchy.pkl").is_file():
        pytest.skip(f"shared word vectors not found at {root} (../shared/data absent)")
    from datamodules.readers import read_sketch_word2vec
    W = read_sketch_word2vec(root, "sketchy").vectors["word_vectors"]
    rng = np.random.RandomState(0)
    files = {}
    for name, n in (("img", 2), ("sk", 2)):
        lab = np.repeat(np.arange(1, 126), n)
        files[name] = tmp_path / f"feat_{name}.mat"
        scipy.io.savemat(files[name], {"feat": rng.randn(len(lab), 10), "label": lab[:, None], "wv": W[lab - 1]})
    res = _run(tmp_path, "sk", "--data", "sketchy", "--max-epochs", "1", "--set", f"data.root={tmp_path}",
               "--set", "data.unseen=eccv18", "--set", "data.n_val=20", "--set", "method.fusion_width=8",
               "--set", "method.gcn_hidden=16", "--set", "method.encoder_hidden=16",
               "--set", "method.eval_map_at=[10]", "--set", "method.eval_precision_at=[10]")
    assert "test/mAP@all/sketch->image" in res["metrics"] and "test/P@10/sketch->image" in res["metrics"]
    assert res["config"]["data_name"] == "sketchy"
