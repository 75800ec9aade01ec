"""experiments/run.py end to end: training, results.json, resumption, DDP, W&B offline, bad input."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from lightning_hash.experiment import main
from run_helpers import Crash, assert_one_process_reproduces

ROOT = Path(__file__).resolve().parents[2]
# Small and fast: the test checks the harness, not DJSRH's best figures.
FAST = ["--method", "djsrh", "--data", "digits", "--bits", "64", "--logger", "none", "--no-progress-bar",
        "--set", "method.image_hidden=256", "--set", "method.text_hidden=256",
        "--set", "method.lr_image=0.05", "--set", "method.lr_text=0.05"]
SHORT = ["--set", "trainer.limit_train_batches=8"]   # harness tests: a few batches per epoch suffice


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def test_djsrh_trains_and_beats_random_codes(tmp_path):
    res = main(FAST + ["--max-epochs", "4", "--output", str(tmp_path / "djsrh")])
    rnd = main(["--method", "random", "--data", "digits", "--bits", "64", "--logger", "none", "--no-progress-bar",
                "--output", str(tmp_path / "random")])
    on_disk = json.loads((tmp_path / "djsrh" / "results.json").read_text())
    assert on_disk["metrics"] == pytest.approx(res["metrics"])
    for key in ("method", "data", "bits", "seed", "metrics", "config", "split_file", "versions"):
        assert key in on_disk
    assert Path(on_disk["split_file"]).is_file()
    selection = on_disk["model_selection"]
    assert Path(selection["best_checkpoint"]).is_file()
    # the chosen checkpoint, validated again after the test, gives the score it was chosen on; every val figure
    # is recorded (what a tuning grid compares), none of them a test figure
    assert selection["val_metrics"][selection["monitor"]] == pytest.approx(selection["best_score"], abs=1e-6)
    assert {k.split("/")[0] for k in selection["val_metrics"]} == {"val"}
    assert {"val/mAP@all/image->text", "val/mAP@all/text->image"} <= set(selection["val_metrics"])
    for task in ("image->text", "text->image"):
        for metric in ("mAP@all", "mAP@50", "P@100", "P@r2", "R@r2"):
            assert f"test/{metric}/{task}" in res["metrics"]
        trained, chance = res["metrics"][f"test/mAP@all/{task}"], rnd["metrics"][f"test/mAP@all/{task}"]
        assert trained > chance + 0.15, (task, trained, chance)
        assert res["curves"][task]["pr_precision"] and res["curves"][task]["precision_at_k"]


class _RecordAlpha(pl.Callback):
    def __init__(self):
        self.alphas = {}

    def on_train_epoch_start(self, trainer, pl_module):
        self.alphas[trainer.current_epoch] = pl_module.alpha


def test_resume_last_equals_uninterrupted_run(tmp_path):
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    args = FAST + SHORT + ["--max-epochs", "4", "--seed", "3"]
    full = main(args + ["--output", str(full_dir)])
    with pytest.raises(RuntimeError, match="simulated interruption"):
        main(args + ["--output", str(cut_dir)], callbacks=[Crash(2)])
    assert (cut_dir / "checkpoints" / "last.ckpt").is_file()
    split_before = (cut_dir / "split.json").read_text()
    alphas = _RecordAlpha()
    resumed = main(["--method", "djsrh", "--resume", "last", "--output", str(cut_dir), "--logger", "none",
                    "--no-progress-bar"], callbacks=[alphas])
    assert (cut_dir / "split.json").read_text() == split_before
    assert alphas.alphas == {2: pytest.approx(math.sqrt(3)), 3: pytest.approx(2.0)}
    a, b = _state(full_dir / "checkpoints" / "last.ckpt"), _state(cut_dir / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed["metrics"] == full["metrics"]


def test_ddp_two_cpu_processes_evaluate_like_one(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, str(ROOT / "experiments" / "run.py"), *FAST, *SHORT, "--max-epochs", "1", "--devices", "2",
           "--accelerator", "cpu", "--strategy", "ddp", "--output", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Evaluate the same checkpoint in one process, on the same (re-read) split.
    from lightning_hash.methods import get
    ddp = assert_one_process_reproduces(out, get("djsrh"))
    assert ddp["devices"]["world_size"] == 2


def test_wandb_offline_run_holds_config_and_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "wb"
    args = [a for a in FAST if a not in ("--logger", "none")]
    res = main(args + SHORT + ["--logger", "wandb", "--max-epochs", "1", "--output", str(out)])
    import wandb
    wandb.finish()
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    from lightning_hash.wandb_utils import read_offline_run
    content = read_offline_run(runs[0], timeout=60)
    assert content["complete"]
    assert content["config"]["method"] == "djsrh" and content["config"]["bits"] == 64
    assert content["config"]["data"] == "digits"
    key = "test/mAP@all/image->text"
    assert content["summary"][key] == pytest.approx(res["metrics"][key])


@pytest.mark.parametrize("argv, message", [
    (["--method", "nope"], "valid methods: .*djsrh"),
    (["--method", "djsrh", "--data", "nope"], "valid names: .*digits"),
    (["--method", "djsrh", "--devices", str((os.cpu_count() or 1) + 1)], "CPU cores"),
    (["--method", "djsrh", "--resume", "last"], "no checkpoint"),
])
def test_bad_input_gets_a_clear_error(tmp_path, argv, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        main(argv + ["--output", str(tmp_path / "x"), "--logger", "none"])


def test_bits_zero_is_rejected_by_the_command_line(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "run.py"), "--method", "djsrh", "--bits", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--bits expects a positive integer" in proc.stderr
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "run.py"), "--method", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "valid methods" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("tie_break", ["average", "index"])
def test_logged_figures_equal_the_functional_metrics_on_the_same_codes(tmp_path, tie_break):
    """The evaluation loop (sets, modalities, labels, order) against a direct computation on the same codes."""
    from lightning_hash.experiment import build_datamodule
    from lightning_hash.methods import get
    from lightning_hash.metrics import functional as F

    out = tmp_path / tie_break
    res = main(["--method", "random", "--data", "digits", "--bits", "8", "--logger", "none", "--no-progress-bar",
                "--output", str(out), "--set", f"method.tie_break={tie_break}"])
    dm = build_datamodule(res["config"], out)
    model = get("random").load_from_checkpoint(res["model_selection"]["best_checkpoint"], map_location="cpu")

    def whole(set_name):
        ds = dm.eval_dataset("test", set_name)
        return ds.__getitems__(list(range(len(ds))))

    query, database = whole("query"), whole("database")
    for q_mod, d_mod in (("image", "text"), ("text", "image")):
        qc, dc = model.encode(query, q_mod), model.encode(database, d_mod)
        expected = F.mean_average_precision(qc, dc, query["label"], database["label"], tie_break=tie_break)
        assert res["metrics"][f"test/mAP@all/{q_mod}->{d_mod}"] == pytest.approx(float(expected), abs=1e-6)
        expected50 = F.mean_average_precision(qc, dc, query["label"], database["label"], top_k=50, tie_break=tie_break)
        assert res["metrics"][f"test/mAP@50/{q_mod}->{d_mod}"] == pytest.approx(float(expected50), abs=1e-6)


def test_last_checkpoint_is_rewritten_every_epoch_even_without_improvement(tmp_path):
    # lr = 0: the validation figure never improves after epoch 0, so only the first best checkpoint is saved;
    # last.ckpt must still be the final epoch (Lightning's save_last=True alone would leave it at epoch 0)
    out = tmp_path / "flat"
    main(FAST + SHORT + ["--max-epochs", "3", "--output", str(out), "--set", "method.lr_image=0.0",
                         "--set", "method.lr_text=0.0"])
    ckpts = out / "checkpoints"
    last = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 2 and last["global_step"] == 3 * 8
    assert sorted(p.name for p in ckpts.glob("best-*.ckpt")) == ["best-epoch000.ckpt"]
    best_state = [v for k, v in last["callbacks"].items() if "val/" in k][0]
    assert best_state["best_model_path"].endswith("best-epoch000.ckpt")


def test_final_table_marks_missing_cells_instead_of_printing_nan():
    from lightning_hash.experiment import format_table

    text = format_table({"test/PED/image": 0.25, "test/mAP@all/image->image": 0.5, "test/mAP@all/mean": 0.5})
    lines = text.splitlines()
    assert "nan" not in text.lower()
    assert lines[1].split() == ["image", "0.2500", "-"] and lines[2].split() == ["image->image", "-", "0.5000"]


def test_results_record_the_cpu_thread_count(tmp_path):
    """torch's CPU reductions split by thread, so a figure traces to the thread count: results.json records the
    count the run used (not the machine's core count)."""
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            res = main(["--method", "itq", "--data", "digits", "--bits", "8", "--logger", "none", "--no-progress-bar",
                        "--set", "data.modalities=[image]", "--output", str(tmp_path / f"t{threads}")])
            assert res["devices"]["cpu_threads"] == threads
            saved = json.loads((tmp_path / f"t{threads}" / "results.json").read_text())
            assert saved["devices"]["cpu_threads"] == threads
    finally:
        torch.set_num_threads(previous)
