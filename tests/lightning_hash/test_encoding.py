"""Encoding a dataset: predict_step (also through Trainer.predict) and encode_dataset give the evaluation's codes."""
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from lightning_hash.codes import sign_codes
from lightning_hash.contract import collate_batch
from lightning_hash.encoding import embed_dataset, encode_dataset
from lightning_hash.experiment import build_datamodule, main
from lightning_hash.metrics import functional as F
from lightning_hash.methods import get

ROOT = Path(__file__).resolve().parents[2]


def test_encode_dataset_and_trainer_predict_give_the_codes_the_run_scored(tmp_path):
    res = main(["--method", "itq", "--bits", "16", "--logger", "none", "--no-progress-bar",
                "--output", str(tmp_path / "run")])
    dm = build_datamodule(res["config"], tmp_path / "run")
    model = get("itq").load_from_checkpoint(res["model_selection"]["best_checkpoint"], map_location="cpu")
    q_set, d_set = dm.eval_dataset("test", "query"), dm.eval_dataset("test", "database")
    q, q_rows, q_lab = encode_dataset(model, q_set, "image", batch_size=64)
    d, d_rows, d_lab = encode_dataset(model, d_set, "image")
    assert q.shape == (len(q_set), 16) and set(q.ravel().tolist()) <= {-1.0, 1.0}
    assert q_rows.tolist() == dm.eval_rows("test", "query").tolist()
    want = res["metrics"]["test/mAP@all/image->image"]
    got = F.mean_average_precision(torch.from_numpy(q), torch.from_numpy(d), torch.from_numpy(q_lab),
                                   torch.from_numpy(d_lab))
    assert float(got) == pytest.approx(want, abs=1e-6)   # the logged figure is a float32
    pre, _, _ = embed_dataset(model, q_set, lambda m, b: m.encode(b, "image"))
    assert (sign_codes(torch.from_numpy(pre)).numpy() == q).all()
    # the same through Lightning's predict loop
    model.predict_modality = "image"
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    out = trainer.predict(model, dataloaders=DataLoader(q_set, batch_size=50, shuffle=False, collate_fn=collate_batch))
    assert torch.equal(torch.cat([o["codes"] for o in out]), torch.from_numpy(q))
    model.predict_modality = None
    with pytest.raises(ValueError, match="set predict_modality"):
        model.predict_step(q_set.__getitems__([0, 1]), 0)


def test_retrieve_script_uses_the_library_loop():
    text = (ROOT / "experiments" / "retrieve.py").read_text()
    assert "from lightning_hash.encoding import encode_dataset" in text and "def embed_dataset" not in text
