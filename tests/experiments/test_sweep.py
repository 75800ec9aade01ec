"""run.py grids: several --method/--bits/--seeds, --sweep FILE, one folder and one W&B run per grid point."""
import json
from pathlib import Path

import pytest

from lightning_hash.experiment import main, sweep_argv

ROOT = Path(__file__).resolve().parents[2]
RANDOM = ["--method", "random", "--data", "digits", "--logger", "none", "--no-progress-bar"]


def wait_for_wandb_files(root, timeout=60.0):
    """W&B (0.31, offline) writes a run's transaction log after ``finish()`` returns: wait for every run's
    closing record."""
    from lightning_hash.wandb_utils import read_offline_run
    for path in Path(root).rglob("offline-run-*"):
        assert read_offline_run(path, timeout=timeout)["complete"], path


def test_grid_runs_every_bits_seed_pair_in_its_own_folder(tmp_path):
    results = main(RANDOM + ["--bits", "8", "16", "--seeds", "0", "1", "--output", str(tmp_path)])
    assert [(r["bits"], r["seed"]) for r in results] == [(8, 0), (8, 1), (16, 0), (16, 1)]
    for r in results:
        folder = tmp_path / "random" / "digits" / f"{r['bits']}bits" / f"seed{r['seed']}"
        on_disk = json.loads((folder / "results.json").read_text())
        assert (on_disk["bits"], on_disk["seed"]) == (r["bits"], r["seed"])
        assert on_disk["metrics"] == pytest.approx(r["metrics"])
    # different seeds draw different splits and codes
    assert results[0]["metrics"] != results[1]["metrics"]


def test_single_values_keep_the_single_run_behaviour(tmp_path):
    res = main(RANDOM + ["--bits", "8", "--seed", "3", "--output", str(tmp_path / "one")])
    assert isinstance(res, dict) and res["bits"] == 8 and res["seed"] == 3
    assert (tmp_path / "one" / "results.json").is_file()


def test_sweep_file_with_command_line_override(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("method: random\ndata: digits\nbits: [8, 16]\nseeds: [0, 2]\nlogger: none\n"
                     f"no_progress_bar: true\noutput: {tmp_path / 'runs'}\n")
    results = main(["--sweep", str(sweep), "--bits", "12"])      # the command line wins over the file
    assert [(r["bits"], r["seed"]) for r in results] == [(12, 0), (12, 2)]
    assert (tmp_path / "runs" / "random" / "digits" / "12bits" / "seed2" / "results.json").is_file()


def test_sweep_argv_translation(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("method: [djsrh, cmfh]\nbits: [16, 32]\nno_progress_bar: true\nresume: null\n"
                    "set: {method.beta: 0.3, data.modalities: [image]}\n")
    assert sweep_argv(str(path)) == ["--method", "djsrh", "cmfh", "--bits", "16", "32", "--no-progress-bar",
                                     "--set", "method.beta=0.3", "--set", 'data.modalities=["image"]']
    for name in ("wiki.yaml",):      # the shipped sweep parses
        assert "--method" in sweep_argv(str(ROOT / "experiments" / "sweeps" / name))


@pytest.mark.parametrize("argv, message", [
    (RANDOM + ["--bits", "8", "16", "--resume", "last"], "--resume continues one run"),
    (RANDOM + ["--seeds", "1", "1"], "repeats"),
    (["--data", "digits"], "--method is required"),
    (RANDOM + ["--sweep", "/nonexistent.yaml"], "file not found"),
])
def test_grid_errors(tmp_path, argv, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        main(argv + ["--output", str(tmp_path)])


def test_grid_makes_one_wandb_run_per_point(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    argv = [a for a in RANDOM if a not in ("--logger", "none")]
    main(argv + ["--logger", "wandb", "--bits", "8", "16", "--output", str(tmp_path)])
    from lightning_hash.wandb_utils import read_offline_run
    wait_for_wandb_files(tmp_path)
    seen = set()
    for bits in (8, 16):
        runs = list((tmp_path / "random" / "digits" / f"{bits}bits" / "seed0" / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, runs
        content = read_offline_run(runs[0])
        assert content["config"].get("bits") == bits and content["config"].get("seed") == 0, (bits, content["config"])
        assert "test/mAP@all/image->text" in content["summary"]
        seen.add(runs[0].name)
    assert len(seen) == 2


@pytest.mark.parametrize("text, expected", [
    ("3e-2", 0.03), ("1E+3", 1000.0), ("-2.5e-1", -0.25), ("1.0e-3", 0.001), (".5", 0.5), ("7", 7),
    ("1e", "1e"), ("e3", "e3"), ("sgd", "sgd"), ("[1e-3, 2]", [0.001, 2])])
def test_yaml_values_read_exponents_as_floats(text, expected):
    from lightning_hash.experiment import load_yaml
    value = load_yaml(text)
    assert value == expected and type(value) is type(expected)


def test_set_and_config_files_give_floats_for_exponent_notation(tmp_path):
    """PyYAML alone reads ``3e-2`` as a string, which reached Adam as ``lr='3e-2'`` (a TypeError mid-run)."""
    from lightning_hash.experiment import build_parser, grid, resolve_config
    config = tmp_path / "extra.yaml"
    config.write_text("method:\n  weight_decay: 5e-4\n")
    args = build_parser().parse_args(["--method", "tvdb", "--config", str(config), "--set", "method.lr=3e-2"])
    (point,) = grid(args)
    cfg = resolve_config(point)
    assert cfg["method"]["lr"] == pytest.approx(0.03) and isinstance(cfg["method"]["lr"], float)
    assert cfg["method"]["weight_decay"] == pytest.approx(5e-4) and isinstance(cfg["method"]["weight_decay"], float)
