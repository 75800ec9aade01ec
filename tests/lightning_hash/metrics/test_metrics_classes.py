"""Tests of the torchmetrics classes: batching, ordering by indexes, compute groups and two-process DDP (gloo).

The values are checked against the functional API, which test_metrics_functional.py checks against independent
references; the DDP test checks that two processes with contiguous shards give the one-process result.
"""

from __future__ import annotations

import os
import socket
import tempfile
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torchmetrics import MetricCollection

from lightning_hash.metrics import (
    HammingMAP,
    HammingPrecisionAtK,
    HammingPRCurve,
    HammingRadiusPrecisionRecall,
    HammingRecallAtK,
    HammingRetrievalMetrics,
    functional as F,
)


def make_data(seed=0, n_q=23, n_d=157, bits=6, n_labels=5):
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 2, (n_q, bits), generator=g).float() * 2 - 1
    d = torch.randint(0, 2, (n_d, bits), generator=g).bool()
    ql = (torch.rand(n_q, n_labels, generator=g) < 0.3).float()
    dl = (torch.rand(n_d, n_labels, generator=g) < 0.3).float()
    ql[0] = 0  # no relevant item
    return q, d, ql, dl


def make_collection():
    return MetricCollection(
        {
            "mAP@all": HammingMAP(),
            "mAP@all_index": HammingMAP(tie_break="index"),
            "mAP@10": HammingMAP(top_k=10),
            "mAP@10_hits": HammingMAP(top_k=10, top_k_mode="hits", tie_break="index"),
            "P@20": HammingPrecisionAtK(20),
            "r2": HammingRadiusPrecisionRecall(2),
            "r1_micro": HammingRadiusPrecisionRecall(1, average="micro", empty_queries="skip"),
            "pr": HammingPRCurve(),
        },
        compute_groups=True,
    )


def expected_results(q, d, ql, dl):
    p2, r2 = F.hamming_radius_precision_recall(q, d, ql, dl, radius=2)
    p1, r1 = F.hamming_radius_precision_recall(q, d, ql, dl, radius=1, average="micro", empty_queries="skip")
    return {
        "mAP@all": F.mean_average_precision(q, d, ql, dl),
        "mAP@all_index": F.mean_average_precision(q, d, ql, dl, tie_break="index"),
        "mAP@10": F.mean_average_precision(q, d, ql, dl, top_k=10),
        "mAP@10_hits": F.mean_average_precision_first_k_hits(q, d, ql, dl, k=10, tie_break="index"),
        "P@20": F.precision_at_k(q, d, ql, dl, k=20),
        "P@r2": p2, "R@r2": r2, "P@r1": p1, "R@r1": r1,
        "pr": F.precision_recall_curve(q, d, ql, dl),
    }


def feed(collection, q, d, ql, dl, batch=5, q_index=None, d_index=None):
    for s in range(0, q.shape[0], batch):
        idx = None if q_index is None else q_index[s:s + batch]
        collection.update(q[s:s + batch], ql[s:s + batch], role="query", indexes=idx)
    for s in range(0, d.shape[0], batch):
        idx = None if d_index is None else d_index[s:s + batch]
        collection.update(d[s:s + batch], dl[s:s + batch], role="database", indexes=idx)


def assert_results_equal(got, expected, tol=1e-12):
    assert set(got) == set(expected)
    for key, value in expected.items():
        if key == "pr":
            for a, b in zip(got[key], value):
                torch.testing.assert_close(a, b, atol=tol, rtol=0)
        else:
            assert got[key].dtype == torch.float64
            assert abs(float(got[key]) - float(value)) <= tol, key


def test_collection_matches_functional_and_shares_one_state():
    q, d, ql, dl = make_data()
    collection = make_collection()
    feed(collection, q, d, ql, dl)
    assert len(collection.compute_groups) == 1  # one copy of the codes for all eight metrics
    assert_results_equal(collection.compute(), expected_results(q, d, ql, dl))


def test_indexes_make_the_result_independent_of_row_order():
    q, d, ql, dl = make_data(1)
    pq, pd = torch.randperm(q.shape[0]), torch.randperm(d.shape[0])
    collection = make_collection()
    feed(collection, q[pq], d[pd], ql[pq], dl[pd], batch=7, q_index=pq, d_index=pd)
    assert_results_equal(collection.compute(), expected_results(q, d, ql, dl))


def test_class_index_labels_and_single_metric():
    q, d, _, _ = make_data(2)
    ql, dl = torch.randint(0, 3, (q.shape[0],)), torch.randint(0, 3, (d.shape[0],))
    metric = HammingMAP(top_k=15, tie_break="index")
    assert metric(q, ql, role="query") is None  # forward only updates
    metric.update(d, dl, role="database")
    assert float(metric.compute()) == pytest.approx(
        float(F.mean_average_precision(q, d, ql, dl, top_k=15, tie_break="index")), abs=1e-12)
    metric.reset()
    with warnings.catch_warnings(), pytest.raises(ValueError, match="role='query'"):
        warnings.simplefilter("ignore")  # torchmetrics warns about compute() before update()
        metric.compute()


def test_update_and_compute_validate_their_input():
    q, d, ql, dl = make_data(3)
    metric = HammingPrecisionAtK(3)
    with pytest.raises(ValueError, match="role"):
        metric.update(q, ql, role="db")
    with pytest.raises(ValueError, match="codes"):
        metric.update(q * 0.5, ql, role="query")
    with pytest.raises(ValueError, match="rows"):
        metric.update(q, ql[:-1], role="query")
    with pytest.raises(ValueError, match="indexes"):
        metric.update(q, ql, role="query", indexes=torch.arange(3))
    metric.update(q, ql, role="query")
    with pytest.raises(ValueError, match="bits"):
        metric.update(d[:, :3], dl, role="database")
    with pytest.raises(ValueError, match="labels"):
        metric.update(d, dl[:, :2], role="database")
    with pytest.raises(ValueError, match="role='database'"):
        metric.compute()
    metric = HammingMAP()
    metric.update(q, ql, role="query", indexes=torch.zeros(q.shape[0], dtype=torch.long))
    metric.update(d, dl, role="database")
    with pytest.raises(ValueError, match="duplicate query indexes"):
        metric.compute()
    metric = HammingMAP()
    metric.update(q, ql, role="query", indexes=torch.arange(q.shape[0]))
    metric.update(q, ql, role="query")
    metric.update(d, dl, role="database")
    with pytest.raises(ValueError, match="indexes were given"):
        metric.compute()
    for bad in (lambda: HammingMAP(top_k=0), lambda: HammingMAP(tie_break="first"),
                lambda: HammingPrecisionAtK(0), lambda: HammingRadiusPrecisionRecall(-1),
                lambda: HammingPRCurve(average="weighted"), lambda: HammingMAP(empty_queries="nan")):
        with pytest.raises(ValueError):
            bad()


@pytest.mark.parametrize("tie_break", ["average", "index"])
def test_per_task_metric_equals_the_functionals(tie_break):
    """HammingRetrievalMetrics (one state, histograms once) gives each functional's figure; rows shuffled with
    indexes give the same."""
    q, d, ql, dl = make_data(4)
    kw = dict(tie_break=tie_break)
    metric = HammingRetrievalMetrics(map_at=[10, 400], precision_at=[5, 20], recall_at=[5, 200], radius=1,
                                     pr_curve=True, curve_at=[1, 7, 157], **kw)
    pq, pd = torch.randperm(q.shape[0]), torch.randperm(d.shape[0])
    feed(metric, q[pq], d[pd], ql[pq], dl[pd], q_index=pq, d_index=pd)
    got = metric.compute()
    want = {"mAP@all": F.mean_average_precision(q, d, ql, dl, **kw)}
    for k in (10, 400):
        want[f"mAP@{k}"] = F.mean_average_precision(q, d, ql, dl, top_k=k, **kw)
    for k in (5, 20):
        want[f"P@{k}"] = F.precision_at_k(q, d, ql, dl, k=k, **kw)
    for k in (5, 200):
        want[f"R@{k}"] = F.recall_at_k(q, d, ql, dl, k=k, **kw)
    want["P@r1"], want["R@r1"] = F.hamming_radius_precision_recall(q, d, ql, dl, radius=1)
    curve, ranks = got.pop("pr_curve"), got.pop("rank_curve")
    assert_results_equal(got, want)
    for a, b in zip(curve, F.precision_recall_curve(q, d, ql, dl)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    assert ranks[0] == [1, 7, 157]
    for a, b in zip(ranks[1:], F.precision_recall_at_k(q, d, ql, dl, ks=[1, 7, 157], **kw)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    single = HammingRecallAtK(5, **kw)
    feed(single, q, d, ql, dl)
    assert float(single.compute()) == pytest.approx(float(want["R@5"]), abs=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# two processes (gloo)
# ----------------------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shard(n: int, rank: int, world: int) -> slice:
    return slice(rank * n // world, (rank + 1) * n // world)


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        q, d, ql, dl = make_data()
        for use_indexes in (False, True):
            collection = make_collection()
            if use_indexes:  # interleaved (non-contiguous) shards: the indexes restore the order
                qs, ds = torch.arange(rank, q.shape[0], world), torch.arange(rank, d.shape[0], world)
                feed(collection, q[qs], d[ds], ql[qs], dl[ds], batch=4, q_index=qs, d_index=ds)
            else:  # contiguous, unpadded shards of different sizes, as the datamodules serve them
                qs, ds = _shard(q.shape[0], rank, world), _shard(d.shape[0], rank, world)
                feed(collection, q[qs], d[ds], ql[qs], dl[ds], batch=4)
            results = collection.compute()
            torch.save(dict(results), os.path.join(out_dir, f"rank{rank}_indexes{int(use_indexes)}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_equals_one_process():
    """Two gloo processes, each updating with its shard of the query and database rows, give the one-process
    result on every rank: with contiguous shards and no indexes, and with interleaved shards plus indexes."""
    q, d, ql, dl = make_data()
    single = make_collection()
    feed(single, q, d, ql, dl)
    expected = single.compute()
    assert q.shape[0] % 2 == 1 and d.shape[0] % 2 == 1  # uneven shards
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_ddp_worker, args=(2, _free_port(), out_dir), nprocs=2, join=True)
        for rank in range(2):
            for use_indexes in (0, 1):
                got = torch.load(os.path.join(out_dir, f"rank{rank}_indexes{use_indexes}.pt"))
                assert_results_equal(got, expected)
