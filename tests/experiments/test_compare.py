"""experiments/compare.py on synthetic results.json files and an offline W&B run: mean/std against numpy, outputs."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from run_helpers import load_experiment_script

ROOT = Path(__file__).resolve().parents[2]
compare = load_experiment_script("compare")

TASKS = ("image->text", "text->image")


def wait_for_wandb_files(root, timeout=60.0):
    """W&B (0.31, offline) writes a run's transaction log after ``finish()`` returns: wait until every
    ``run-*.wandb`` under ``root`` holds more than its 7-byte header and has stopped growing."""
    import time
    deadline = time.time() + timeout
    for path in Path(root).rglob("run-*.wandb"):
        last = -1
        while time.time() < deadline:
            size = path.stat().st_size
            if size > 7 and size == last:
                break
            last = size
            time.sleep(0.5)


def _write_run(root, method, bits, seed, rng):
    folder = root / method / "wiki" / f"{bits}bits" / f"seed{seed}"
    folder.mkdir(parents=True)
    metrics = {f"test/{m}/{t}": float(rng.random()) for m in ("mAP@50", "mAP@all", "P@100") for t in TASKS}
    metrics["val/mAP@50/image->text"] = 0.99     # another split: must not enter the test table
    curves = {t: {"pr_precision": rng.random(bits + 1).tolist(), "pr_recall": np.linspace(0, 1, bits + 1).tolist(),
                  "k": [1, 10, 100], "precision_at_k": rng.random(3).tolist()} for t in TASKS}
    (folder / "results.json").write_text(json.dumps({"method": method, "data": "wiki", "bits": bits, "seed": seed,
                                                     "metrics": metrics, "curves": curves}))
    return metrics


@pytest.fixture
def sweep(tmp_path):
    rng = np.random.default_rng(0)
    truth = {}
    for method in ("djsrh", "cmfh"):
        for bits in (16, 32):
            for seed in (0, 1, 2):
                truth[(method, bits, seed)] = _write_run(tmp_path / "runs", method, bits, seed, rng)
    return tmp_path, truth


def test_table_mean_std_match_numpy(sweep):
    tmp_path, truth = sweep
    out = tmp_path / "cmp"
    res = compare.main([str(tmp_path / "runs"), "--out", str(out), "--paper", str(ROOT / "lightning_hash" /
                                                                                 "paper_figures.yaml")])
    assert len(res["records"]) == 12
    rows = {(r["method"], r["bits"], r["task"], r["metric"]): r for r in res["rows"]}
    assert len(rows) == 2 * 2 * 2 * 3
    for method in ("djsrh", "cmfh"):
        for bits in (16, 32):
            for task in TASKS:
                for metric in ("mAP@50", "mAP@all", "P@100"):
                    x = np.array([truth[(method, bits, s)][f"test/{metric}/{task}"] for s in (0, 1, 2)])
                    row = rows[(method, bits, task, metric)]
                    assert row["mean"] == pytest.approx(np.mean(x), abs=1e-12)
                    assert row["std"] == pytest.approx(np.std(x, ddof=1), abs=1e-12)
                    assert row["n"] == 3 and row["seeds"] == "0 1 2"
    assert rows[("djsrh", 16, "image->text", "mAP@50")]["paper"] == pytest.approx(0.388)
    assert rows[("cmfh", 16, "image->text", "mAP@50")]["paper"] is None
    with open(out / "results.csv") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert len(csv_rows) == len(rows)
    first = next(r for r in csv_rows if r["method"] == "djsrh" and r["bits"] == "32" and r["metric"] == "mAP@all"
                 and r["task"] == "text->image")
    assert float(first["mean"]) == pytest.approx(rows[("djsrh", 32, "text->image", "mAP@all")]["mean"])
    md = (out / "results.md").read_text()
    assert "| djsrh | 16 | 3 |" in md and "(0.388)" in md and "±" in md
    names = {Path(p).name for p in res["images"]}
    assert {"wiki_mAP_50_vs_bits.png", "wiki_16bits_pr.png", "wiki_32bits_precision_at_k.png"} <= names
    for p in res["images"]:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metric_choice_and_single_seed_has_no_std(sweep, tmp_path):
    root, truth = sweep
    res = compare.main([str(root / "runs" / "djsrh" / "wiki" / "16bits" / "seed0" / "results.json"),
                        "--out", str(tmp_path / "one"), "--metrics", "P@100", "--no-plots"])
    assert {r["metric"] for r in res["rows"]} == {"P@100"}
    assert all(r["std"] is None and r["n"] == 1 for r in res["rows"])   # one run: no spread, not "± 0.000"
    assert " ± 0.000" not in compare.markdown(res["rows"])
    assert "the paper's figure in brackets" not in compare.markdown(res["rows"])   # no --paper: no such promise
    assert res["images"] == []


def test_a_task_without_a_figure_is_a_dash_not_a_blank_cell():
    rows = [{"method": "a", "data": "d", "bits": 8, "task": "x->y", "metric": "mAP@all", "mean": 0.5, "std": None,
             "n": 1, "seeds": [0], "paper": None},
            {"method": "b", "data": "d", "bits": 8, "task": "z->y", "metric": "mAP@all", "mean": 0.25, "std": None,
             "n": 1, "seeds": [0], "paper": 0.3}]
    text = compare.markdown(rows)
    assert "| a | 8 | 1 | 0.500 | - |" in text and "| b | 8 | 1 | - | 0.250 (0.300) |" in text
    assert "the paper's figure in brackets" in text


def test_duplicate_runs_are_an_error(sweep, tmp_path):
    root, _ = sweep
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "results.json").write_bytes((root / "runs" / "djsrh" / "wiki" / "16bits" / "seed0" / "results.json")
                                        .read_bytes())
    with pytest.raises(ValueError, match="two runs of"):
        compare.collect([str(root / "runs"), str(copy)])


def test_offline_wandb_runs_are_read_and_not_double_counted(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    folders = []
    for seed, value in ((0, 0.25), (1, 0.35)):
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        run = wandb.init(mode="offline", dir=str(folder), project="t",
                         config={"method": "djsrh", "data": "wiki", "bits": 16, "seed": seed})
        run.summary.update({"test/mAP@50/image->text": value, "best_val_score": 1.0})
        run.finish()
        folders.append(folder)
    # seed 1's folder also holds a results.json (as a run.py run folder does): that one is read, not the W&B run
    (folders[1] / "results.json").write_text(json.dumps({"method": "djsrh", "data": "wiki", "bits": 16, "seed": 1,
                                                         "metrics": {"test/mAP@50/image->text": 0.35}}))
    wait_for_wandb_files(tmp_path)
    records = compare.collect([str(tmp_path)])
    assert sorted((r["seed"], r["source"].endswith("results.json")) for r in records) == [(0, False), (1, True)]
    rows = compare.summarize(records, ["mAP@50"])
    assert rows[0]["mean"] == pytest.approx(0.3) and rows[0]["std"] == pytest.approx(np.std([0.25, 0.35], ddof=1))
