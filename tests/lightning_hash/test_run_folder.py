"""Run folders are never overwritten or mixed: lock, fresh-run refusal, resume flag checks, appended logs,
atomic checkpoints, clean errors for damaged checkpoints; and each method's default run serves its tasks."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lightning_hash.experiment import main
from lightning_hash.run_folder import AtomicCheckpointIO, RunFolderError, RunLock, atomic_torch_save

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--method", "djsrh", "--data", "digits", "--bits", "16", "--logger", "none", "--no-progress-bar",
        "--set", "method.image_hidden=64", "--set", "method.text_hidden=64", "--set", "trainer.limit_train_batches=4"]


def _files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def test_a_second_run_into_a_held_folder_is_refused_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from lightning_hash.run_folder import RunLock; "
         f"lock = RunLock({str(out)!r}).acquire(); print('held', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderError, match=rf"another run is writing to this folder \(pid {holder.pid}"):
            main(FAST + ["--max-epochs", "1", "--output", str(out)])
        assert not (out / "config.yaml").exists()   # refused before anything was written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    res = main(FAST + ["--max-epochs", "1", "--output", str(out)])   # kill -9 released the lock
    assert res["bits"] == 16


def test_two_concurrent_command_line_runs_one_is_refused(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "experiments" / "run.py"), *FAST, "--max-epochs", "2", "--output", str(out)]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "config.yaml").exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    first_out, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err[-2000:]
    assert second.returncode == 2, second.stderr[-2000:]
    assert "another run is writing" in second.stderr or "already holds a run" in second.stderr
    assert "Traceback" not in second.stderr


def test_fresh_run_into_a_finished_folder_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "run"
    main(FAST + ["--max-epochs", "1", "--seed", "0", "--output", str(out)])
    before = _files(out)
    with pytest.raises(RunFolderError, match="already holds a run.*--overwrite"):
        main(FAST + ["--max-epochs", "1", "--seed", "1", "--output", str(out)])
    assert _files(out) == before   # nothing touched
    res = main(FAST + ["--max-epochs", "1", "--seed", "1", "--output", str(out), "--overwrite"])
    split = json.loads((out / "split.json").read_text())
    assert res["seed"] == 1 and split["seed"] == 1   # the split is the new run's, not the old one's


@pytest.mark.parametrize("flag, value", [("--bits", "32"), ("--seed", "5"), ("--method", "dvb"),
                                         ("--set", "method.lr_image=0.5"), ("--batch-size", "7"),
                                         ("--name", "djsrh-variant")])
def test_resume_refuses_flags_that_contradict_the_saved_run(tmp_path, flag, value):
    out = tmp_path / "run"
    main(FAST + ["--max-epochs", "1", "--output", str(out)])
    before = _files(out)
    with pytest.raises(ValueError, match=rf"contradict it: {flag}.*may change only --max-epochs"):
        main(["--resume", "last", "--output", str(out), "--logger", "none", flag, value])
    assert _files(out) == before


def test_name_labels_the_run_folder_and_results(tmp_path, capsys, monkeypatch):
    """``--name``: the default folder is runs/<name>/..., results.json holds it beside the method; a name that is
    not one folder name, or one name for several methods, is refused before anything runs."""
    monkeypatch.chdir(tmp_path)   # the default folder is relative: runs/<name>/<data>/<bits>bits/seed<seed>
    res = main(["--method", "lsh", "--name", "lsh-a", "--bits", "8", "--logger", "none", "--no-progress-bar"])
    folder = tmp_path / "runs" / "lsh-a" / "digits" / "8bits" / "seed0"
    assert (res["method"], res["name"]) == ("lsh", "lsh-a") and (folder / "results.json").is_file()
    with pytest.raises(SystemExit):
        main(["--method", "lsh", "--name", "../x", "--logger", "none"])
    assert "--name expects letters, digits" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--name labels the runs of one method"):
        main(["--method", "lsh", "itq", "--name", "x", "--logger", "none", "--output", str(tmp_path / "g")])
    assert not (tmp_path / "g").exists()


def test_resume_accepts_the_saved_values_and_a_longer_max_epochs(tmp_path):
    out = tmp_path / "run"
    main(FAST + ["--max-epochs", "1", "--output", str(out)])
    res = main(FAST + ["--max-epochs", "2", "--resume", "last", "--output", str(out)])   # same flags + longer
    assert res["epochs_trained"] == 2


def test_smaller_max_epochs_on_resume_is_a_clean_error_before_anything_is_rewritten(tmp_path):
    out = tmp_path / "run"
    main(FAST + ["--max-epochs", "3", "--output", str(out)])
    before = _files(out)
    with pytest.raises(ValueError, match="already trained 3 epochs; pass --max-epochs 3 or more"):
        main(["--resume", "last", "--output", str(out), "--logger", "none", "--max-epochs", "2"])
    assert _files(out) == before
    main(["--resume", "last", "--output", str(out), "--logger", "none", "--no-progress-bar"])   # still resumable


def test_resume_keeps_the_csv_rows_of_the_epochs_before_it(tmp_path):
    from run_helpers import Crash

    out = tmp_path / "run"
    args = [a for a in FAST if a not in ("--logger", "none")] + ["--logger", "csv", "--set",
                                                                 "trainer.log_every_n_steps=1"]
    with pytest.raises(RuntimeError, match="simulated interruption"):
        main(args + ["--max-epochs", "3", "--output", str(out)], callbacks=[Crash(2)])
    with open(out / "csv" / "metrics.csv") as fh:
        before = [r for r in csv.DictReader(fh)]
    assert {int(r["epoch"]) for r in before if r.get("epoch")} == {0, 1}
    main(["--resume", "last", "--output", str(out), "--logger", "csv", "--no-progress-bar"])
    with open(out / "csv" / "metrics.csv") as fh:
        after = list(csv.DictReader(fh))
    train_steps = [int(r["step"]) for r in after if r.get("train/loss")]
    assert train_steps == list(range(3 * 4))    # every step once: none lost, none repeated
    assert sum(1 for r in after if r.get("val/mAP@all/mean")) == 3
    assert [r["train/loss"] for r in after[:len(before)] if r.get("train/loss")] == \
        [r["train/loss"] for r in before if r.get("train/loss")]


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_damaged_checkpoint_gives_a_clean_error_naming_it(tmp_path, damage):
    out = tmp_path / "run"
    main(FAST + ["--max-epochs", "1", "--output", str(out)])
    last = out / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes({"empty": b"", "truncated": data[:len(data) // 2], "garbage": b"not a checkpoint" * 10}[damage])
    with pytest.raises(ValueError, match=rf"{last}: .*(empty|damaged|truncated)"):
        main(["--resume", "last", "--output", str(out), "--logger", "none", "--max-epochs", "2"])
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "run.py"), "--resume", "last", "--output",
                           str(out), "--logger", "none"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2 and str(last) in proc.stderr and "Traceback" not in proc.stderr


def test_checkpoints_are_written_atomically_in_their_own_folder(tmp_path, monkeypatch):
    target = tmp_path / "ckpts" / "last.ckpt"
    atomic_torch_save({"epoch": 0, "state_dict": {"w": torch.ones(3)}}, target)
    replaced = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append((Path(src), Path(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    AtomicCheckpointIO().save_checkpoint({"epoch": 1, "state_dict": {"w": torch.zeros(3)}}, target)
    assert replaced and replaced[0][0].parent == target.parent and replaced[0][1] == target   # same filesystem
    assert torch.load(target, weights_only=False)["epoch"] == 1

    def dies_mid_write(obj, fh, *args, **kwargs):   # a kill while writing
        fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"epoch": 2, "state_dict": {}}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=False)["epoch"] == 1   # the previous checkpoint is intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]   # no temporary file left


def test_lock_is_exclusive_within_one_process_too(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunFolderError, match="another run is writing"):
            RunLock(tmp_path).acquire()
    RunLock(tmp_path).acquire().release()


# ---------------------------------------------------------------------------------------------- default tasks
def test_itq_default_run_is_image_to_image_and_above_random(tmp_path):
    itq = main(["--method", "itq", "--logger", "none", "--no-progress-bar", "--output", str(tmp_path / "itq")])
    rnd = main(["--method", "random", "--logger", "none", "--no-progress-bar", "--output", str(tmp_path / "rnd"),
                "--set", "data.modalities=[image]"])
    assert set(k.split("/")[2] for k in itq["metrics"]) == {"image->image", "mean"}
    assert itq["metrics"]["test/mAP@all/image->image"] > rnd["metrics"]["test/mAP@all/image->image"] + 0.3
    assert itq["code_stats"]["database/image"]["distinct_codes"] > 100


@pytest.mark.parametrize("method", ["itq", "lsh", "sh", "dvb"])
def test_single_modal_methods_refuse_cross_modal_tasks_before_training(tmp_path, method):
    with pytest.raises(ValueError, match=r"single-modal.*image->text.*data.modalities=\[image\]"):
        main(["--method", method, "--logger", "none", "--no-progress-bar", "--output", str(tmp_path / method),
              "--set", "data.modalities=[image, text]"])
    assert not (tmp_path / method / "checkpoints").exists()


def test_collapsed_codes_are_counted_and_warned(tmp_path):
    with pytest.warns(UserWarning, match="collapsed: [12] distinct code"):
        res = main(FAST + ["--max-epochs", "1", "--output", str(tmp_path / "flat"), "--set", "method.lr_image=0.0",
                           "--set", "method.lr_text=0.0", "--set", "method.image_hidden=1",
                           "--set", "method.text_hidden=1", "--bits", "1"])
    assert any(s["distinct_codes"] <= 2 for s in res["code_stats"].values())


def test_a_resume_from_a_checkpoint_without_its_step_keeps_every_csv_row(tmp_path):
    from lightning_hash.run_folder import AppendingCSVLogger

    log = tmp_path / "csv"
    log.mkdir()
    (log / "metrics.csv").write_text("epoch,step,train/loss\n0,0,1.0\n0,1,0.5\n")
    AppendingCSVLogger(save_dir=str(tmp_path), name="csv", keep_before_step=float("inf")).experiment
    assert (log / "metrics.csv").read_text().splitlines()[1:] == ["0,0,1.0", "0,1,0.5"]
    AppendingCSVLogger(save_dir=str(tmp_path), name="csv", keep_before_step=1).experiment
    assert (log / "metrics.csv").read_text().splitlines()[1:] == ["0,0,1.0"]
