"""experiments/bench.py: a benchmark is a grid file run through the one runner, and a table over its runs."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))

import bench  # noqa: E402

GRID = """
description: ITQ and LSH on the embedded digits, image->image.
runs:
  method: [itq, lsh]
  bits: [8]
  seed: [0, 1]
  logger: none
  no-progress-bar: true
  set: {method.eval_map_at: [10]}
table:
  metrics: [mAP@all, mAP@10]
"""


def test_grid_runs_through_run_py_and_prints_the_table(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(GRID)
    grid = bench.read_grid(str(path))
    points = bench.grid_points(grid["runs"])
    assert [(p["method"], p["seed"]) for p in points] == [("itq", 0), ("itq", 1), ("lsh", 0), ("lsh", 1)]
    assert bench.point_argv(points[0])[:2] == ["--method", "itq"] and "--no-progress-bar" in bench.point_argv(points[0])
    folders = bench.run_grid(grid, tmp_path / "runs")
    assert [f.relative_to(tmp_path / "runs").as_posix() for f in folders] == [
        "itq/digits/8bits/seed0", "itq/digits/8bits/seed1", "lsh/digits/8bits/seed0", "lsh/digits/8bits/seed1"]
    assert all((f / "results.json").is_file() and (f / "split.json").is_file() for f in folders)
    text = bench.table(grid, folders)
    assert "**digits, test mAP@all**" in text and "**digits, test mAP@10**" in text
    assert "| itq | 8 | 2 |" in text and "| lsh | 8 | 2 |" in text
    # a second run of the grid never overwrites: refused, unless the finished runs are reused
    with pytest.raises(ValueError, match="already holds a run"):
        bench.run_grid(grid, tmp_path / "runs")
    assert bench.run_grid(grid, tmp_path / "runs", reuse=True) == folders


@pytest.mark.parametrize("content, message", [
    ("runs: {method: itq}\n", "'table' must name the 'metrics'"),
    ("table: {metrics: [mAP@all]}\n", "'runs' must be a mapping"),
    ("runs: {method: itq, output: x}\ntable: {metrics: [mAP@all]}\n", "runs.output is set by bench.py"),
    ("runz: {}\n", "unknown keys \\['runz'\\]"),
    ("runs: {method: [itq, lsh]}\nvariants: {lsh: {method: lsh}}\ntable: {metrics: [mAP@all]}\n",
     "not a method's own name"),
    ("runs: {method: [x]}\nvariants: {x: {method: nope}}\ntable: {metrics: [mAP@all]}\n", "must hold 'method'"),
    ("runs: {method: [x]}\nvariants: {x: {method: itq, sett: {}}}\ntable: {metrics: [mAP@all]}\n",
     "must hold 'method'"),
    ("runs: {method: itq}\ntable: {metrics: [mAP@all], split: train}\n", "'split' \\(test, or val"),
    ("runs: {method: [itq]}\nvariants: {x: {method: itq}}\ntable: {metrics: [mAP@all]}\n", "not listed in runs.method"),
    ("runs: {method: itq}\nper_method: {lsh: {set: {}}}\ntable: {metrics: [mAP@all]}\n",
     "per_method.lsh must be one of runs.method"),
    ("runs: {method: itq, data: [digits]}\nper_data: {cub10: {set: {}}}\ntable: {metrics: [mAP@all]}\n",
     "per_data.cub10 must be one of runs.data"),
    ("runs: {method: itq, data: digits}\nper_data: {digits: {sett: {}}}\ntable: {metrics: [mAP@all]}\n",
     "holding 'set' and/or 'per_method'"),
    ("runs: {method: [x, y]}\nvariants: {x: {base: y}, y: {base: x}}\ntable: {metrics: [mAP@all]}\n", "a cycle"),
    ("runs: {method: [x]}\nvariants: {x: {base: z}}\ntable: {metrics: [mAP@all]}\n", "'z' is not a variant"),
    ("runs: {method: [x]}\nvariants: {x: {base: z, method: itq}}\ntable: {metrics: [mAP@all]}\n", "or 'base'"),
    ("runs: {method: [a/b]}\nvariants: {a/b: {method: itq}}\ntable: {metrics: [mAP@all]}\n", "folder name"),
])
def test_bad_grid_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "g.yaml"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        bench.read_grid(str(path))


def test_a_variant_is_its_own_run_folder_and_table_row(tmp_path):
    """``variants``: one method under two labels; each runs as ``--method lsh --name <label>`` with its settings,
    in its own folder, and the table has one row per label (two variants of one method never mix)."""
    path = tmp_path / "grid.yaml"
    path.write_text("""
runs:
  method: [lsh, lsh-k5, lsh-k5-r1]
  bits: [8]
  logger: none
  no-progress-bar: true
  set: {method.eval_map_at: [10]}
variants:
  lsh-k5: {method: lsh, set: {method.eval_map_at: [5]}}
  lsh-k5-r1: {base: lsh-k5, set: {method.eval_radius: 1}}
table:
  metrics: [mAP@all]
""")
    grid = bench.read_grid(str(path))
    folders = bench.run_grid(grid, tmp_path / "runs")
    assert [f.relative_to(tmp_path / "runs").as_posix() for f in folders] == [
        "lsh/digits/8bits/seed0", "lsh-k5/digits/8bits/seed0", "lsh-k5-r1/digits/8bits/seed0"]
    import json
    plain, variant, based = (json.loads((f / "results.json").read_text()) for f in folders)
    # a variant on a base: the base's settings, then its own
    assert "test/mAP@5/image->image" in based["metrics"] and "test/P@r1/image->image" in based["metrics"]
    assert (plain["method"], plain["name"]) == ("lsh", "lsh")
    assert (variant["method"], variant["name"]) == ("lsh", "lsh-k5")
    assert "test/mAP@5/image->image" in variant["metrics"] and "test/mAP@10/image->image" in plain["metrics"]
    assert "test/mAP@10/image->image" not in variant["metrics"]
    # same seed, same split, same closed-form LSH: the shared figure is identical, in two rows
    assert variant["metrics"]["test/mAP@all/image->image"] == plain["metrics"]["test/mAP@all/image->image"]
    text = bench.table(grid, folders)
    assert "| lsh | 8 | 1 |" in text and "| lsh-k5 | 8 | 1 |" in text


def test_a_tuning_grid_prints_the_validation_figures_of_the_chosen_checkpoints(tmp_path):
    path = tmp_path / "tune.yaml"
    path.write_text("""
runs:
  method: [djsrh]
  bits: [16]
  max-epochs: 2
  logger: none
  no-progress-bar: true
table: {metrics: [mAP@all], split: val}
""")
    grid = bench.read_grid(str(path))
    folders = bench.run_grid(grid, tmp_path / "runs")
    import json
    selection = json.loads((folders[0] / "results.json").read_text())["model_selection"]
    text = bench.table(grid, folders)
    assert "val mAP@all" in text and "test mAP@all" not in text
    assert f"{selection['val_metrics']['val/mAP@all/image->text']:.3f}" in text


def test_point_settings_merge_order():
    """The dataset's settings, then the method's, the label's, the dataset's for the method and for the label,
    then the variant's own (each later one wins); a variant runs as its method under its label."""
    grid = {"variants": {"v": {"base": "w", "set": {"k6": "variant"}}, "w": {"method": "itq", "set": {"k7": "base"}}},
            "per_method": {"itq": {"set": {"k1": "method", "k2": "method"}}, "v": {"set": {"k2": "label"}}},
            "per_data": {"digits": {"set": {"k0": "data", "k1": "data"},
                                    "per_method": {"itq": {"set": {"k3": "data-method", "k6": "data-method"}},
                                                   "v": {"set": {"k4": "data-label"}}}}}}
    point = bench.point_settings(grid, {"method": "v", "data": "digits", "bits": 8, "set": {"k9": "runs"}})
    assert (point["method"], point["name"]) == ("itq", "v")
    assert point["set"] == {"k9": "runs", "k0": "data", "k1": "method", "k2": "label", "k3": "data-method",
                            "k6": "variant", "k4": "data-label", "k7": "base"}
    plain = bench.point_settings(grid, {"method": "itq", "data": "cub10"})
    assert plain == {"method": "itq", "data": "cub10", "set": {"k1": "method", "k2": "method"}}


def test_shipped_grids_are_valid(tmp_path):
    """Every point of every shipped grid resolves to a configuration run.py accepts (typed validation of the
    method, data and trainer sections), so no shipped grid fails on a typo after its first runs."""
    grids = sorted((ROOT / "experiments" / "grids").glob("*.yaml"))
    assert grids
    bundle = tmp_path / "features.npz"     # a grid that says 'data: REQUIRED' runs on a bundle the user makes
    bundle.write_bytes(b"")
    for path in grids:
        grid = bench.read_grid(str(path))
        if grid["runs"].get("data") == "REQUIRED":
            grid["runs"]["data"] = str(bundle)
        runs = bench.grid_runs(grid, tmp_path / path.stem)
        assert runs, path
        folders = [folder for _, folder in runs]
        assert len(set(folders)) == len(folders), f"{path}: two points share a run folder"


def test_the_one_file_of_paper_figures():
    from lightning_hash.experiment import paper_figures
    figures = paper_figures()
    assert figures[("djsrh", "wiki", "mAP@50", "text->image", 128)] == 0.658        # DJSRH Table 1
    assert figures[("itq", "cifar10_gist", "mAP@all", "image->image", 16)] == 0.153  # thesis Table 3.2
    assert figures[("dvb", "cifar10_gist", "P@5000", "image->image", 64)] == 0.207
    for script in sorted((ROOT / "experiments").glob("*.py")):   # no copies kept in scripts
        text = script.read_text()
        assert "0.153" not in text and ".611" not in text and "0.165" not in text, script


def test_benchmark_tables_go_through_the_one_runner():
    """A figure table is a grid run by bench.py through run.py; the only scripts that build a Trainer of their own
    are the two timing benchmarks (they time the Trainer itself) and evaluate_checkpoint.py (it re-tests a run's
    checkpoint on the run's recorded split, writing nothing)."""
    own = sorted(p.name for p in (ROOT / "experiments").glob("*.py") if "Trainer(" in p.read_text())
    assert own == ["bench_overhead.py", "bench_tvdb.py", "evaluate_checkpoint.py"]
    import lightning_hash.benchmarking as benchmarking
    assert not hasattr(benchmarking, "fit_and_evaluate")
