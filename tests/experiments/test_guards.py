"""Guards against degenerate data: figures the evaluation sets cannot support, classes without items."""
import numpy as np
import pytest

from datamodules.protocols import zero_shot_split
from lightning_hash.experiment import main

RUN = ["--logger", "none", "--no-progress-bar"]


def _bundle(tmp_path, n=40):
    rng = np.random.default_rng(0)
    path = tmp_path / "small.npz"
    np.savez(path, image=rng.standard_normal((n, 6)), labels=np.arange(n) % 4,
             split_query=np.arange(8), split_database=np.arange(8, n))
    return path


def test_rank_cut_off_beyond_the_database_is_refused_before_training(tmp_path):
    path = _bundle(tmp_path)
    with pytest.raises(ValueError, match=r"(val|test) database of task image->image holds \d+ items, fewer than the "
                                         r"rank cut-off \d+ of method.eval_(map|precision)_at=\[\d+\].*--set "
                                         r"method.eval_(map|precision)_at=\[\d+\]"):
        main(["--method", "random", "--data", str(path), "--output", str(tmp_path / "a"), *RUN])
    assert not (tmp_path / "a" / "checkpoints").exists()
    res = main(["--method", "random", "--data", str(path), "--output", str(tmp_path / "b"), *RUN,
                "--set", "method.eval_precision_at=[16]", "--set", "method.eval_map_at=[16]"])
    assert "test/P@16/image->image" in res["metrics"]


def test_allow_degenerate_runs_and_records_the_warning(tmp_path):
    import json

    path = _bundle(tmp_path)
    with pytest.warns(UserWarning, match="fewer than the rank cut-off"):
        res = main(["--method", "random", "--data", str(path), "--output", str(tmp_path / "f"), *RUN,
                    "--allow-degenerate"])
    on_disk = json.loads((tmp_path / "f" / "results.json").read_text())
    assert on_disk["warnings"] and all("fewer than the rank cut-off" in w for w in on_disk["warnings"])
    assert "test/P@100/image->image" in res["metrics"]
    ok = main(["--method", "random", "--data", str(path), "--output", str(tmp_path / "g"), *RUN,
               "--set", "method.eval_precision_at=[16]", "--set", "method.eval_map_at=[16]"])
    assert ok["warnings"] == []


def test_the_ranking_curves_stop_at_the_database_size(tmp_path):
    path = _bundle(tmp_path)
    res = main(["--method", "random", "--data", str(path), "--output", str(tmp_path / "c"), *RUN,
                "--set", "method.eval_precision_at=[16]", "--set", "method.eval_map_at=[16]"])
    curve = res["curves"]["image->image"]
    assert curve["k"] == [1, 5, 10, 20] and len(curve["precision_at_k"]) == len(curve["recall_at_k"]) == 4


def test_zero_shot_classes_without_items_are_refused_and_draws_are_unchanged():
    from datamodules import protocols

    labels = np.repeat(np.arange(4), 10)             # 4 populated classes, 10 names (e.g. wrong default names)
    names = [f"c{i}" for i in range(10)]
    with pytest.raises(ValueError, match="only 4 of the 10 classes have items"):
        zero_shot_split(labels, class_names=names, n_unseen=4, n_query=4)
    with pytest.raises(ValueError, match=r"leaves seen class\(es\) \['c4', .*\] empty"):
        zero_shot_split(labels, class_names=names, n_unseen=2, n_query=4)
    # with every class populated the draw is a permutation of all classes, as before (figures unchanged)
    full = np.repeat(np.arange(5), 8)
    for seed in range(5):
        want = np.sort(protocols._rng(seed, protocols.STREAM_CLASSES).permutation(5)[:2])
        split = zero_shot_split(full, class_names=list("abcde"), n_unseen=2, n_query=4, seed=seed)
        assert split.unseen_classes.tolist() == want.tolist()


def test_a_wrong_dataset_name_is_an_error_and_check_content_false_accepts_a_variant(tmp_path):
    """--data nuswide on a MIRFlickr folder (the readers share the DCMH layout) stops, naming what was read."""
    from scipy.io import savemat

    import datamodules

    rng = np.random.RandomState(0)
    n = 300
    labels = (rng.rand(n, 24) < 0.2).astype(np.float64)
    labels[np.arange(n), rng.randint(0, 24, n)] = 1
    savemat(tmp_path / "mirflickr25k-lall.mat", {"LAll": labels})
    savemat(tmp_path / "mirflickr25k-yall.mat", {"YAll": (rng.rand(n, 30) < 0.2).astype(np.float64)})
    savemat(tmp_path / "mirflickr25k-xall.mat", {"XAll": rng.rand(n, 8)})
    for name in ("nuswide", "mirflickr"):
        try:
            dm = datamodules.create(name, root=tmp_path, n_query=30, n_train=100, per_class_query=1, per_class_train=4)
        except FileNotFoundError:   # the NUS-WIDE reader may look for its own file names only
            continue
        with pytest.raises(ValueError, match=rf"{name}: read 300 items x 24 classes from .* but {name} is .*"
                                             r"--set data.check_content=false"):
            dm.setup()
    dm = datamodules.create("mirflickr", root=tmp_path, n_query=30, n_train=100, per_class_query=1,
                            per_class_train=4, check_content=False)
    dm.setup()
    assert dm.num_classes == 24


@pytest.mark.parametrize("name, items, classes, ok", [
    ("wiki", 2866, 10, True), ("wiki", 2173, 10, False), ("mirflickr", 20015, 24, True),
    ("mirflickr", 20015, 10, False), ("nuswide", 186577, 10, True), ("nuswide", 20015, 24, False),
    ("cifar10", 60000, 10, True), ("handwritten", 2000, 10, True), ("bundle", 7, 3, True),
    ("xlsa17/AWA1", 30475, 50, True), ("xlsa17/CUB", 30475, 50, False),
])
def test_known_content_table(name, items, classes, ok):
    from datamodules.arrays import DatasetArrays
    from datamodules.content import check_content

    arrays = DatasetArrays({"x": np.zeros((items, 1), dtype=np.float32)}, np.arange(items) % classes,
                           [str(c) for c in range(classes)])
    if ok:
        check_content(name, arrays)
    else:
        with pytest.raises(ValueError, match=f"{name}: read"):
            check_content(name, arrays)
