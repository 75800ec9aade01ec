"""TVDB: the closed-form code updates against brute force, the losses against eq. (4.10), the networks'
ablation switches, the code tables under resume and under 2-process DDP, the baselines S / N / E1, bad input,
and the region pipeline (selection order, box numbers, padding of images with fewer than K proposals)."""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from lightning_hash.experiment import main as run_main
from lightning_hash.features.regions import (assemble_sequences, attraction_scores, box_numbers, box_saliency,
                                             digit_regions, extract_regions, grid_boxes, saliency_map,
                                             select_regions)
from lightning_hash.methods.tvdb import (TVDB, BagOfWordsEncoder, PooledRegionEncoder, maximise_trace,
                                         pair_similarity, scatter_rows, similarity_times, subproblem_objective,
                                         tvdb_losses, update_image_codes, update_text_codes)
from run_helpers import Crash, assert_one_process_reproduces

ROOT = Path(__file__).resolve().parents[3]
TINY = ["--bits", "16", "--logger", "none", "--no-progress-bar", "--set", "method.lstm_hidden=16",
        "--set", "method.fc_hidden=32", "--set", "method.embed_dim=8", "--set", "method.filters=8",
        "--set", "trainer.limit_train_batches=4"]


def _all_sign_matrices(rows: int, cols: int):
    for bits in itertools.product((-1.0, 1.0), repeat=rows * cols):
        yield torch.tensor(bits, dtype=torch.float64).view(rows, cols)


# ============================================================================================== the math
@pytest.mark.parametrize("eta", [1e-4, 0.3, 2.0])
def test_closed_form_updates_minimise_their_subproblems_brute_force(eta):
    g = torch.Generator().manual_seed(int(eta * 1000))
    m, n, M = 2, 3, 3                                     # B_b: 2 x 3 = 64 sign matrices, H_b: 3 x 3 = 512
    for trial in range(4):
        f = torch.randn(m, M, generator=g, dtype=torch.float64) * 3
        gy = torch.randn(n, M, generator=g, dtype=torch.float64) * 3
        H = torch.randint(0, 2, (n, M), generator=g).double() * 2 - 1
        S = torch.randint(0, 2, (m, n), generator=g).double()
        # eq. (4.7) for B: eta ||B - f||^2 - trace(B S H^T) in the thesis' column form, computed independently
        obj_b = lambda Bm: eta * ((Bm - f) ** 2).sum() - torch.trace(Bm.t() @ S @ H)
        best_b = min(obj_b(Bm).item() for Bm in _all_sign_matrices(m, M))
        B = update_image_codes(f, H, S, eta)
        assert set(B.unique().tolist()) <= {-1.0, 1.0}
        assert obj_b(B).item() == pytest.approx(best_b, abs=1e-9), trial
        assert subproblem_objective(B, f, S @ H, eta).item() == pytest.approx(obj_b(B).item(), abs=1e-9)
        # eq. (4.9)'s subproblem for H with the new B: eta ||H - g||^2 - trace(B S H^T)
        obj_h = lambda Hm: eta * ((Hm - gy) ** 2).sum() - torch.trace(B.t() @ S @ Hm)
        best_h = min(obj_h(Hm).item() for Hm in _all_sign_matrices(n, M))
        assert obj_h(update_text_codes(gy, B, S, eta)).item() == pytest.approx(best_h, abs=1e-9), trial


def test_eq_4_10_losses_and_pair_similarity():
    f = torch.tensor([[0.5, -2.0]], requires_grad=True)
    B = torch.tensor([[1.0, -1.0]])
    g = torch.tensor([[0.0, 1.0]])
    H = torch.tensor([[-1.0, 1.0]])
    loss_f, loss_g = tvdb_losses(f, B, g, H, eta=0.1)
    assert loss_f.item() == pytest.approx(0.1 * (0.25 + 1.0))
    assert loss_g.item() == pytest.approx(0.1 * 1.0)
    loss_f.backward()
    assert torch.allclose(f.grad, 0.2 * (f.detach() - B))
    multi = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    assert pair_similarity(multi).tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 1]]


def test_whole_set_helpers():
    g = torch.Generator().manual_seed(0)
    labels = (torch.rand(30, 4, generator=g) < 0.3).float()
    labels[labels.sum(1) == 0, 0] = 1.0
    codes = torch.randint(0, 2, (30, 5), generator=g).float() * 2 - 1
    dense = ((labels @ labels.t()) > 0).float() @ codes
    assert torch.equal(similarity_times(codes, labels, labels, chunk=7), dense)
    B0 = torch.randint(0, 2, (30, 5), generator=g).float() * 2 - 1
    H0 = torch.randint(0, 2, (30, 5), generator=g).float() * 2 - 1
    S = ((labels @ labels.t()) > 0).float()
    B, H, rounds = maximise_trace(B0, H0, labels, max_iters=50)
    assert torch.trace(B.t() @ S @ H) >= torch.trace(B0.t() @ S @ H0)
    assert rounds < 50 and torch.equal(B, torch.where(S @ H >= 0, 1.0, -1.0))     # a fixed point
    table = torch.zeros(4, 2)
    scatter_rows(table, torch.tensor([1, 3, 1]), torch.tensor([[1.0, 1.0], [2.0, 2.0], [5.0, 5.0]]))
    assert table.tolist() == [[0, 0], [5, 5], [0, 0], [2, 2]]          # the last occurrence wins


def test_ablation_encoders_use_what_they_should():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 6)
    i1 = PooledRegionEncoder(6, 8, "whole", fc_hidden=4)
    y = x.clone()
    y[:, :-1] = torch.randn(3, 4, 6)                      # change every region but the whole image
    assert torch.equal(i1(x), i1(y))
    i2 = PooledRegionEncoder(6, 8, "mean", fc_hidden=4)
    assert torch.allclose(i2(x), i2(x[:, torch.randperm(5)]), atol=1e-6)   # order-free average
    bow = BagOfWordsEncoder(10, 8, fc_hidden=4)
    ids = torch.tensor([[3, 4, 5, 1, 0, 0]])
    assert torch.allclose(bow(ids), bow(torch.tensor([[5, 3, 4, 1, 0, 0]])))
    assert torch.allclose(bow(ids), bow(torch.tensor([[3, 4, 5, 1, 1, 1]])))  # <eos>/<pad> are not words
    full = TVDB(bits=8, region_dim=6, num_regions=5, vocab_size=10, sentence_length=6, lstm_hidden=4, fc_hidden=4,
                embed_dim=3, filters=2)
    assert full.encode({"regions": x}, "regions").shape == (3, 8)
    assert full.encode({"sentence": ids.float()}, "sentence").shape == (1, 8)
    with pytest.raises(ValueError, match="token ids"):
        full.encode({"sentence": torch.tensor([[3.0, 10.0, 1, 0, 0, 0]])}, "sentence")
    with pytest.raises(ValueError, match="variant"):
        TVDB(variant="I3")
    with pytest.raises(ValueError, match="code_update"):
        TVDB(code_update="sometimes")


# ============================================================================================== regions
def test_region_selection_box_numbers_and_order():
    boxes = grid_boxes(8, 8)
    assert len(boxes) == 13 and boxes.max() <= 8
    img = np.zeros((1, 8, 8), np.float32)
    img[0, 0:4, 4:8] = 1.0                                 # ink only in the top-right quadrant
    conf = box_saliency(saliency_map(torch.from_numpy(img), "intensity"), boxes)
    top = boxes[int(np.argmax(conf[0]))]
    assert top.tolist() == [4, 0, 8, 4] and conf.max() == pytest.approx(1.0)
    a = attraction_scores(conf, boxes, 8, 8)
    assert a[0, 2] == pytest.approx((1.0 + 16 / 64) / 2)   # box [4, 0, 8, 4]: c = 1, d = 1/4
    idx, ok = select_regions(a, None, 3)
    assert ok.all() and np.all(np.diff(a[0, idx[0]]) <= 0)    # decreasing attraction
    seq = digit_regions(img, k=3, size=4)
    assert seq.shape == (1, 4, 20)
    assert seq[0, -1, 16:].tolist() == [1.0, 1.0, 0.5, 0.5]                    # the whole image, last
    np.testing.assert_allclose(seq[0, :3, 16:], box_numbers(boxes[idx[0]], 8, 8))
    np.testing.assert_allclose(seq[0, -1, :16], img[0].reshape(4, 2, 4, 2).mean(axis=(1, 3)).reshape(-1))


def test_fewer_than_k_proposals_are_padded_or_refused():
    feats = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    boxes = np.tile(np.array([[0, 0, 2, 2]], np.float32), (2, 3, 1))
    present = np.array([[True, True, True], [True, False, False]])
    whole = np.array([[9.0, 9.0], [8.0, 8.0]], np.float32)
    seq, padded = assemble_sequences(feats, boxes, present, whole, 4, 4, pad="whole")
    assert padded == 1 and seq.shape == (2, 4, 6)
    assert seq[1, 1].tolist() == seq[1, 3].tolist() == [8.0, 8.0, 1.0, 1.0, 0.5, 0.5]
    assert seq[0, 1, :2].tolist() == [2.0, 3.0]
    seq0, _ = assemble_sequences(feats, boxes, present, whole, 4, 4, pad="zeros")
    assert not seq0[1, 1:3].any() and seq0[1, 3, 0] == 8.0
    with pytest.raises(ValueError, match="fewer than K=3 region proposals.*'img-b'"):
        assemble_sequences(feats, boxes, present, whole, 4, 4, pad="error", names=["img-a", "img-b"])
    # through the pipeline: a grid of 13 windows cannot give K = 20
    imgs = np.random.RandomState(0).randint(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    seq, info = extract_regions(imgs, k=20, feature="pixels:2", cache=False)
    assert seq.shape == (2, 21, 16) and info["padded_images"] == 2
    with pytest.raises(ValueError, match="fewer than K=20"):
        extract_regions(imgs, k=20, feature="pixels:2", pad="error", cache=False)


def test_rpn_proposals_code_path_with_random_weights():
    # No detector weights exist offline: random weights exercise the RPN path (the boxes mean nothing).
    imgs = np.random.RandomState(2).randint(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    seq, info = extract_regions(imgs, k=5, proposals="rpn", rpn_weights=None, rpn_max_proposals=20,
                                rpn_min_size=64, rpn_max_size=96, feature="pixels:2", cache=False)
    assert seq.shape == (2, 6, 16) and info["proposals"] == "rpn"
    hw = seq[:, :5, 12:14]                                   # normalised box height and width in (0, 1]
    assert (hw > 0).all() and (hw <= 1 + 1e-6).all()
    with pytest.raises(FileNotFoundError, match="rpn_weights"):
        extract_regions(imgs, k=5, proposals="rpn", rpn_weights="/nonexistent/frcnn.pth", cache=False)


def test_region_cache_round_trip(tmp_path):
    imgs = np.random.RandomState(1).randint(0, 256, (3, 24, 20, 3), dtype=np.uint8)
    a, info = extract_regions(imgs, k=4, feature="pixels:3", cache=tmp_path)
    assert info["cache_file"] and Path(info["cache_file"]).is_file()
    b, info2 = extract_regions(imgs, k=4, feature="pixels:3", cache=tmp_path)
    assert np.array_equal(a, b) and info2["cache_file"] == info["cache_file"]
    c, _ = extract_regions(imgs, k=5, feature="pixels:3", cache=tmp_path)        # other settings, other entry
    assert c.shape == (3, 6, 31)


# ============================================================================================== end to end
class _Record(pl.Callback):
    """Training batch indices per epoch and the code tables at the start of every epoch."""

    def __init__(self):
        self.indices, self.tables = {}, {}

    def on_train_epoch_start(self, trainer, pl_module):
        self.tables[trainer.current_epoch] = (pl_module.code_B.clone(), pl_module.code_H.clone())

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.indices.setdefault(trainer.current_epoch, []).append(batch["index"].tolist())


def _run(tmp_path, name, *extra, callbacks=()):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_main(["--method", "tvdb", *TINY, "--output", str(tmp_path / name), *extra], callbacks=callbacks)


def _tables(path):
    sd = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    return {k: sd[k] for k in ("code_rows", "code_B", "code_H", "code_ready")}


def test_run_py_trains_and_code_tables_survive_resume(tmp_path):
    args = ["--max-epochs", "3", "--seed", "1"]
    rec = _Record()
    full = _run(tmp_path, "full", *args, callbacks=[rec])
    for task in ("regions->sentence", "sentence->regions"):
        assert np.isfinite(full["metrics"][f"test/mAP@all/{task}"])
    # the tables change during training and hold only +-1
    assert not torch.equal(rec.tables[0][0], rec.tables[2][0])
    t_full = _tables(tmp_path / "full" / "checkpoints" / "last.ckpt")
    assert set(t_full["code_B"].unique().tolist()) == {-1, 1} and bool(t_full["code_ready"])
    split = json.loads((tmp_path / "full" / "split.json").read_text())
    assert t_full["code_rows"].tolist() == sorted(split["indices"]["train"])
    # interrupted after epoch 1, resumed from the end of epoch 1: the same tables and weights as the uninterrupted
    # run at the end of epoch 2
    with pytest.raises(RuntimeError, match="simulated interruption"):
        _run(tmp_path, "cut", *args, callbacks=[Crash(2)])
    ckpt = tmp_path / "cut" / "checkpoints" / "last.ckpt"       # rewritten after every epoch: the end of epoch 1
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"] == 1
    saved = _tables(ckpt)
    assert torch.equal(saved["code_B"], rec.tables[2][0]) and torch.equal(saved["code_H"], rec.tables[2][1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = run_main(["--method", "tvdb", "--resume", "last", "--output", str(tmp_path / "cut"), "--logger",
                            "none", "--no-progress-bar"])
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    b = torch.load(tmp_path / "cut" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert resumed["metrics"] == full["metrics"]
    # a checkpoint alone rebuilds the model, tables included
    model = TVDB.load_from_checkpoint(str(tmp_path / "full" / "checkpoints" / "last.ckpt"), map_location="cpu")
    assert torch.equal(model.code_B, t_full["code_B"]) and model.hparams.num_regions == 9


def test_baselines_fixed_batches_fixed_codes_and_epochwise(tmp_path):
    rec_s, rec_n, rec_e, rec_full = _Record(), _Record(), _Record(), _Record()
    _run(tmp_path, "s", "--max-epochs", "2", "--set", "method.variant=S", callbacks=[rec_s])
    assert rec_s.indices[0] == rec_s.indices[1]                        # TVDB-S: the same batches
    _run(tmp_path, "n", "--max-epochs", "2", "--set", "method.variant=N", callbacks=[rec_n])
    assert torch.equal(rec_n.tables[0][0], rec_n.tables[1][0])        # TVDB-N: codes never change
    last = _tables(tmp_path / "n" / "checkpoints" / "last.ckpt")
    assert torch.equal(last["code_B"], rec_n.tables[0][0])
    # ... and were initialised by maximising trace(B S H^T): same-label items share one code
    rows = last["code_rows"].numpy()
    from datamodules.digits import cached_digits_arrays
    labels = cached_digits_arrays().labels[rows]
    for c in range(3):
        assert len(np.unique(last["code_B"].numpy()[labels == c], axis=0)) == 1
    _run(tmp_path, "e", "--max-epochs", "2", "--set", "method.variant=E1",
         "--set", "trainer.limit_train_batches=2", callbacks=[rec_e])
    # E1: the tables do not move inside epoch 0 (2 of 16 batches touch only some rows), but the epoch-end
    # update rewrites the whole set with eqs. (4.8, 4.9)
    moved = (rec_e.tables[0][0] != rec_e.tables[1][0]).any(dim=1).float().mean()
    assert moved > 0.5
    _run(tmp_path, "full", "--max-epochs", "2", "--set", "trainer.limit_train_batches=2", callbacks=[rec_full])
    moved_full = (rec_full.tables[0][0] != rec_full.tables[1][0]).any(dim=1).float().mean()
    assert moved_full <= 2 * 64 / 1000 + 1e-9                          # batch-wise: only the batches' rows
    assert rec_e.indices[0] != rec_e.indices[1] or rec_full.indices[0] != rec_full.indices[1]


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="not 'regions'|serves"):
        _run(tmp_path, "bad", "--max-epochs", "1", "--set", "data.modalities=[image, sentence]")
    model = TVDB(bits=8, region_dim=20, num_regions=9, vocab_size=22, sentence_length=12, num_train=3,
                 lstm_hidden=4, fc_hidden=4, embed_dim=3, filters=2)
    model.code_rows.copy_(torch.tensor([2, 5, 7]))
    assert model._positions(torch.tensor([7, 2])).tolist() == [2, 0]
    with pytest.raises(ValueError, match=r"rows \[6\] are not in the code tables"):
        model._positions(torch.tensor([5, 6]))


# ============================================================================================== DDP
_DDP_SCRIPT = """
import sys, torch, pytorch_lightning as pl
from lightning_hash.experiment import main

class Dump(pl.Callback):
    def on_train_end(self, trainer, module):
        torch.save({k: getattr(module, k).clone() for k in ("code_rows", "code_B", "code_H")},
                   f"{sys.argv[1]}/tables_rank{trainer.global_rank}.pt")

main(sys.argv[2:], callbacks=[Dump()])
"""


@pytest.mark.slow
def test_ddp_two_cpu_processes_share_code_tables_and_figures(tmp_path):
    out = tmp_path / "ddp"
    out.mkdir()
    script = tmp_path / "ddp_run.py"
    script.write_text(_DDP_SCRIPT)
    cmd = [sys.executable, str(script), str(out), "--method", "tvdb", *TINY, "--max-epochs", "1", "--devices", "2",
           "--accelerator", "cpu", "--strategy", "ddp", "--output", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    t0, t1 = (torch.load(out / f"tables_rank{r}.pt") for r in (0, 1))
    for key in t0:
        assert torch.equal(t0[key], t1[key]), key
    # both processes' batches were written into both tables: 2 processes x 4 batches x 64 rows, minus the rows
    # that two batches shared, differ from the random initial tables (drawn as in TVDB._initialise_tables)
    g = torch.Generator().manual_seed(0)
    init_B = (torch.randint(0, 2, t0["code_B"].shape, generator=g) * 2 - 1).to(torch.int8)
    touched = int((init_B != t0["code_B"]).any(dim=1).sum())
    assert 4 * 64 < touched <= 2 * 4 * 64
    # the same checkpoint evaluated by one process gives the same figures
    ddp = assert_one_process_reproduces(out, TVDB)
    assert ddp["devices"]["world_size"] == 2
