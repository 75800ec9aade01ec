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
