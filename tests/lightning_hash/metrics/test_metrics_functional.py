"""Tests of lightning_hash.metrics.functional against independent references (``tests/metric_references.py``).

References:
* per-query numpy code that follows the definitions of thesis Appendix A (A.1 Precision@K, A.2/A.3 AP and mAP,
  A.4 HD2 precision and recall) on an explicit ranking (``np.lexsort`` by (distance, index));
* the tie-aware expectation by brute force: the mean over *all* orderings of every tied group (tiny cases), and
  on larger cases a plain loop over order statistics of the relevant items inside each tied group (a derivation
  different from the closed forms used by the library);
* ``sklearn.metrics.average_precision_score`` and ``torchmetrics.retrieval`` on tie-free scores.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from lightning_hash.metrics import _index_order, _products, _tie_aware, histograms
from lightning_hash.metrics import functional as F
from metric_references import ref_distance, ref_mean, ref_per_query, ref_radius, ref_relevance

TOL = 1e-6


# ----------------------------------------------------------------------------------------------------------------
# random problems
# ----------------------------------------------------------------------------------------------------------------


def encode(bits01: np.ndarray, encoding: str) -> torch.Tensor:
    t = torch.from_numpy(bits01.astype(np.int64))
    if encoding == "bool":
        return t.bool()
    if encoding == "01float":
        return t.float()
    if encoding == "01int":
        return t.to(torch.int32)
    if encoding == "pm1float":
        return t.float() * 2 - 1
    return (t * 2 - 1).to(torch.int8)


ENCODINGS = ["bool", "01float", "01int", "pm1float", "pm1int8"]


def make_problem(rng, n_q, n_d, bits, multilabel, n_classes=4):
    qb = rng.integers(0, 2, (n_q, bits))
    db = rng.integers(0, 2, (n_d, bits))
    if multilabel:
        ql = (rng.random((n_q, n_classes)) < 0.3).astype(np.int64)
        dl = (rng.random((n_d, n_classes)) < 0.3).astype(np.int64)
        ql[0] = 0  # a query without any label: no relevant item
    else:
        ql = rng.integers(0, n_classes, n_q)
        dl = rng.integers(0, n_classes - 1, n_d)  # class n_classes - 1 has no database item
        ql[0] = n_classes - 1
    return qb, db, ql, dl


def torch_problem(qb, db, ql, dl, rng):
    enc_q, enc_d = rng.choice(ENCODINGS), rng.choice(ENCODINGS)
    lab = (lambda x: torch.from_numpy(x).float()) if ql.ndim == 2 else torch.from_numpy
    return encode(qb, enc_q), encode(db, enc_d), lab(ql), lab(dl)


def call(what, args, k, tie_break, empty_queries="zero"):
    if what == "ap":
        return F.mean_average_precision(*args, tie_break=tie_break, empty_queries=empty_queries)
    if what == "ap_ranks":
        return F.mean_average_precision(*args, top_k=k, tie_break=tie_break, empty_queries=empty_queries)
    if what == "ap_hits":
        return F.mean_average_precision_first_k_hits(*args, k=k, tie_break=tie_break, empty_queries=empty_queries)
    if what == "r_at_k":
        return F.recall_at_k(*args, k=k, tie_break=tie_break, empty_queries=empty_queries)
    return F.precision_at_k(*args, k=k, tie_break=tie_break, empty_queries=empty_queries)


METRICS = ["ap", "ap_ranks", "ap_hits", "p_at_k", "r_at_k"]


# ----------------------------------------------------------------------------------------------------------------
# Hamming distance
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [1, 7, 8, 64, 127, 128, 300, 1024])
def test_hamming_distance_matches_numpy(bits):
    rng = np.random.default_rng(bits)
    qb, db = rng.integers(0, 2, (5, bits)), rng.integers(0, 2, (9, bits))
    db[0] = 1 - qb[0]  # distance = bits exactly
    db[1] = qb[1]
    for enc_q, enc_d in [("bool", "pm1float"), ("01float", "01int"), ("pm1int8", "bool")]:
        got = F.hamming_distance(encode(qb, enc_q), encode(db, enc_d))
        assert got.dtype == torch.int64
        np.testing.assert_array_equal(got.numpy(), ref_distance(qb, db))
    assert int(F.hamming_distance(encode(qb, "bool"), encode(db, "bool"))[0, 0]) == bits


# ----------------------------------------------------------------------------------------------------------------
# the smallest shapes: 1-3 bits, one label column, one class (torch._int_mm left these uninitialised on CPU)
# ----------------------------------------------------------------------------------------------------------------


def _small_shape_labels(rng, kind, n):
    if kind == "one_column":  # multi-hot [n, 1]: relevant iff both carry the one label
        lab = rng.integers(0, 2, (n, 1))
        lab[0] = 1
        return lab
    if kind == "one_class":  # class indices, all the same class: every item is relevant
        return np.zeros(n, dtype=np.int64)
    return (rng.random((n, 3)) < 0.4).astype(np.int64)


@pytest.mark.parametrize("labels", ["one_column", "one_class", "three_columns"])
@pytest.mark.parametrize("bits", [1, 2, 3])
def test_smallest_shapes_match_brute_force(bits, labels):
    """Every metric at 1, 2 and 3 bits with one-column / one-class labels, against the numpy references."""
    rng = np.random.default_rng(100 * bits + len(labels))
    n_q, n_d = 7, 40
    qb, db = rng.integers(0, 2, (n_q, bits)), rng.integers(0, 2, (n_d, bits))
    ql, dl = _small_shape_labels(rng, labels, n_q), _small_shape_labels(rng, labels, n_d)
    dist, rel = ref_distance(qb, db), ref_relevance(ql, dl)
    has_rel = rel.sum(1) > 0
    lab = (lambda x: torch.from_numpy(x).float()) if ql.ndim == 2 else torch.from_numpy
    args = (encode(qb, "pm1float"), encode(db, "bool"), lab(ql), lab(dl))
    np.testing.assert_array_equal(F.hamming_distance(args[0], args[1]).numpy(), dist)
    for what in METRICS:
        for k in (1, 5, n_d, n_d + 3):
            for tie_break, reference in (("index", "index"), ("average", "order_statistics")):
                ref = ref_mean(ref_per_query(dist, rel, what, k, reference), has_rel, "zero")
                got = call(what, args, k, tie_break)
                assert abs(float(got) - ref) < TOL, (what, k, tie_break)
    curve_p, curve_r = F.precision_recall_curve(*args)
    for radius in range(bits + 1):
        ref_p, ref_r = ref_radius(dist, rel, radius, "macro")
        p, r = F.hamming_radius_precision_recall(*args, radius=radius)
        assert abs(float(p) - ref_p) < TOL and abs(float(r) - ref_r) < TOL
        assert abs(float(curve_p[radius]) - ref_p) < TOL and abs(float(curve_r[radius]) - ref_r) < TOL


def test_metrics_do_not_use_the_private_int8_matmul(monkeypatch):
    """torch._int_mm is silently wrong on some shapes of supported releases: the metrics must never call it."""
    def refuse(*args, **kwargs):
        raise AssertionError("torch._int_mm was called")

    monkeypatch.setattr(torch, "_int_mm", refuse, raising=False)
    rng = np.random.default_rng(5)
    qb, db, ql, dl = make_problem(rng, 4, 30, 16, multilabel=True)
    args = torch_problem(qb, db, ql, dl, rng)
    F.hamming_distance(args[0], args[1])
    for tie_break in ("average", "index"):
        F.mean_average_precision(*args, tie_break=tie_break)
    F.precision_recall_curve(*args)


# ----------------------------------------------------------------------------------------------------------------
# ranking metrics against the references
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("what", METRICS)
def test_tie_aware_equals_mean_over_all_permutations(what):
    """Tie-aware metrics vs the explicit mean over all orderings of the tied groups (tiny, heavy ties)."""
    rng = np.random.default_rng(1)
    for case in range(40):
        bits = int(rng.integers(1, 4))
        n_d = int(rng.integers(1, 8))
        qb, db, ql, dl = make_problem(rng, 3, n_d, bits, multilabel=bool(case % 2), n_classes=3)
        dist, rel = ref_distance(qb, db), ref_relevance(ql, dl)
        k = int(rng.integers(1, n_d + 3))
        ref = ref_per_query(dist, rel, what, k, "exhaustive").mean()
        got = call(what, torch_problem(qb, db, ql, dl, rng), k, "average")
        assert abs(float(got) - ref) < 1e-12, (case, what, k)


@pytest.mark.parametrize("multilabel", [True, False])
@pytest.mark.parametrize("what", METRICS)
def test_tie_aware_matches_order_statistics_reference(what, multilabel):
    """Larger groups (up to ~40 tied items) than exhaustive enumeration allows."""
    rng = np.random.default_rng(2 + multilabel)
    for case in range(12):
        bits = int(rng.integers(2, 7))
        n_d = int(rng.integers(5, 80))
        qb, db, ql, dl = make_problem(rng, 4, n_d, bits, multilabel)
        dist, rel = ref_distance(qb, db), ref_relevance(ql, dl)
        k = int(rng.choice([1, 2, 5, n_d // 2 + 1, n_d, n_d + 7]))
        ref_values = ref_per_query(dist, rel, what, k, "order_statistics")
        has_rel = rel.sum(1) > 0
        args = torch_problem(qb, db, ql, dl, rng)
        for empty in ("zero", "skip") if has_rel.any() else ("zero",):
            got = call(what, args, k, "average", empty)
            assert abs(float(got) - ref_mean(ref_values, has_rel, empty)) < TOL, (case, what, k, empty)


@pytest.mark.parametrize("multilabel", [True, False])
@pytest.mark.parametrize("what", METRICS)
def test_index_tie_break_matches_reference(what, multilabel):
    rng = np.random.default_rng(10 + multilabel)
    for case in range(15):
        bits = int(rng.choice([1, 3, 4, 6, 8, 16, 64, 130]))
        n_d = int(rng.integers(1, 120))
        qb, db, ql, dl = make_problem(rng, 6, n_d, bits, multilabel)
        dist, rel = ref_distance(qb, db), ref_relevance(ql, dl)
        k = int(rng.choice([1, 3, max(1, n_d // 3), n_d, n_d + 5]))
        ref_values = ref_per_query(dist, rel, what, k, "index")
        has_rel = rel.sum(1) > 0
        args = torch_problem(qb, db, ql, dl, rng)
        for empty in ("zero", "skip") if has_rel.any() else ("zero",):
            got = call(what, args, k, "index", empty)
            assert abs(float(got) - ref_mean(ref_values, has_rel, empty)) < TOL, (case, what, k, bits, empty)


def test_index_tie_break_batched_sort_path(monkeypatch):
    """The 2-D sort path (used on GPUs) gives the same values as the per-row CPU path and the reference."""
    monkeypatch.setattr(_index_order, "_FORCE_BATCHED_SORT", True)
    rng = np.random.default_rng(20)
    for case in range(8):
        qb, db, ql, dl = make_problem(rng, 5, 90, int(rng.choice([3, 8, 200])), multilabel=bool(case % 2))
        dist, rel = ref_distance(qb, db), ref_relevance(ql, dl)
        for what in METRICS:
            ref = ref_per_query(dist, rel, what, 17, "index").mean()
            assert abs(float(call(what, torch_problem(qb, db, ql, dl, rng), 17, "index")) - ref) < TOL


def test_small_tiles_and_chunks_give_the_same_result(monkeypatch):
    """Force many query chunks, database tiles, sub-chunks and the unfused relevance key."""
    rng = np.random.default_rng(30)
    qb, db, ql, dl = make_problem(rng, 40, 3000, 5, multilabel=True, n_classes=6)
    args = torch_problem(qb, db, ql, dl, rng)
    dist, rel = ref_distance(qb, db), ref_relevance(ql, dl)
    expected = {(what, tb): call(what, args, 250, tb) for what in METRICS for tb in ("index", "average")}
    for what in METRICS:  # index results also against the reference
        assert abs(float(expected[what, "index"]) - ref_per_query(dist, rel, what, 250, "index").mean()) < TOL
    monkeypatch.setattr(_products, "_CPU_TILE", 1 << 10)
    monkeypatch.setattr(_products, "_TILE_COLS", 1000)
    monkeypatch.setattr(_index_order, "_SORT_BUDGET_CPU", 1 << 12)
    monkeypatch.setattr(_tie_aware, "_BOUNDARY_BUDGET", 64)
    monkeypatch.setattr(histograms, "_MAX_FUSED_BINS", 1)
    for key, value in expected.items():
        assert abs(float(call(key[0], args, 250, key[1])) - float(value)) < 1e-12, key


def test_many_classes_use_the_equality_path():
    """More than 128 distinct class indices: relevance by index equality instead of one-hot products."""
    rng = np.random.default_rng(31)
    qb, db = rng.integers(0, 2, (7, 6)), rng.integers(0, 2, (400, 6))
    ql, dl = rng.integers(0, 300, 7), rng.integers(0, 300, 400)
    ql[1:4] = dl[:3]  # some queries with relevant items
    dist, rel = ref_distance(qb, db), ref_relevance(ql, dl)
    args = (encode(qb, "bool"), encode(db, "bool"), torch.from_numpy(ql), torch.from_numpy(dl))
    for what in METRICS:
        assert abs(float(call(what, args, 9, "index")) - ref_per_query(dist, rel, what, 9, "index").mean()) < TOL
        ref = ref_per_query(dist, rel, what, 9, "order_statistics").mean()
        assert abs(float(call(what, args, 9, "average")) - ref) < TOL


def test_tie_aware_does_not_depend_on_database_order():
    rng = np.random.default_rng(40)
    qb, db, ql, dl = make_problem(rng, 10, 500, 4, multilabel=True)
    perm = rng.permutation(500)
    a = torch_problem(qb, db, ql, dl, rng)
    b = torch_problem(qb, db[perm], ql, dl[perm], rng)
    for what in METRICS:
        assert abs(float(call(what, a, 37, "average")) - float(call(what, b, 37, "average"))) < 1e-12
    # while the index tie-break does (with heavy ties)
    assert abs(float(call("ap", a, 1, "index")) - float(call("ap", b, 1, "index"))) > 1e-6


def test_hits_and_ranks_conventions_differ_and_coincide_where_they_should():
    rng = np.random.default_rng(41)
    qb, db, ql, dl = make_problem(rng, 8, 300, 6, multilabel=True)
    args = torch_problem(qb, db, ql, dl, rng)
    for tb in ("index", "average"):
        full = float(F.mean_average_precision(*args, tie_break=tb))
        assert abs(float(F.mean_average_precision(*args, top_k=300, tie_break=tb)) - full) < 1e-12
        assert abs(float(F.mean_average_precision(*args, top_k=10_000, tie_break=tb)) - full) < 1e-12
        assert abs(float(F.mean_average_precision_first_k_hits(*args, k=10_000, tie_break=tb)) - full) < 1e-12
        ranks = float(F.mean_average_precision(*args, top_k=5, tie_break=tb))
        hits = float(F.mean_average_precision(*args, top_k=5, tie_break=tb, top_k_mode="hits"))
        assert abs(ranks - hits) > 1e-6


def test_relevant_items_outside_top_k_score_zero():
    q = torch.tensor([[1, 1, 1]])
    db = torch.tensor([[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    labels_q, labels_d = torch.tensor([0]), torch.tensor([1, 1, 0])  # the only relevant item ranks last
    for tb in ("index", "average"):
        assert float(F.mean_average_precision(q, db, labels_q, labels_d, top_k=2, tie_break=tb)) == 0.0
        assert float(F.mean_average_precision(q, db, labels_q, labels_d, tie_break=tb)) == pytest.approx(1 / 3)


def test_empty_queries_conventions():
    q = torch.tensor([[1, 1], [0, 0]])
    db = torch.tensor([[1, 1], [0, 1], [0, 0]])
    ql, dl = torch.tensor([0, 5]), torch.tensor([1, 0, 0])  # query 1 (class 5) has no relevant item
    dist = ref_distance(q.numpy(), db.numpy())
    rel = ref_relevance(ql.numpy(), dl.numpy())
    ap0 = ref_per_query(dist[:1], rel[:1], "ap", None, "index")[0]
    for tb in ("index",):
        assert float(F.mean_average_precision(q, db, ql, dl, tie_break=tb)) == pytest.approx(ap0 / 2)
        assert float(F.mean_average_precision(q, db, ql, dl, tie_break=tb, empty_queries="skip")) == pytest.approx(ap0)
        with pytest.raises(ValueError, match="empty_queries"):
            F.mean_average_precision(q, db, ql, dl, tie_break=tb, empty_queries="error")
    with pytest.raises(ValueError, match="empty_queries='skip'"):
        F.mean_average_precision(q[1:], db, ql[1:], dl, empty_queries="skip")
    assert float(F.mean_average_precision(q[1:], db, ql[1:], dl)) == 0.0


# ----------------------------------------------------------------------------------------------------------------
# sklearn and torchmetrics
# ----------------------------------------------------------------------------------------------------------------


def test_no_ties_all_conventions_agree_with_sklearn():
    """Codes with pairwise distinct distances to the query: no ties, so both tie-breaks equal sklearn's AP."""
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(50)
    for case in range(20):
        bits = int(rng.integers(4, 40))
        q = rng.integers(0, 2, (1, bits))
        n_d = bits + 1
        db = np.repeat(q, n_d, 0)
        for i in range(n_d):  # item i differs from the query in exactly i bits
            db[i, rng.permutation(bits)[:i]] ^= 1
        db = db[rng.permutation(n_d)]
        dl = rng.integers(0, 2, n_d)
        dl[0] = 1
        dist = ref_distance(q, db)[0]
        sk = average_precision_score(dl == 1, -dist)
        args = (encode(q, "pm1float"), encode(db, "01float"), torch.tensor([1]), torch.from_numpy(dl))
        for tb in ("index", "average"):
            assert abs(float(F.mean_average_precision(*args, tie_break=tb)) - sk) < TOL


def test_index_tie_break_matches_sklearn_on_explicitly_broken_ties():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(51)
    for case in range(10):
        qb, db, ql, dl = make_problem(rng, 6, 200, int(rng.integers(3, 9)), multilabel=bool(case % 2))
        dist, rel = ref_distance(qb, db), ref_relevance(ql, dl)
        n_d = db.shape[0]
        scores = -(dist * n_d + np.arange(n_d)[None, :])  # higher = better, ties broken by index
        has_rel = rel.sum(1) > 0
        sk = np.array([average_precision_score(rel[i], scores[i]) if has_rel[i] else 0.0 for i in range(len(rel))])
        args = torch_problem(qb, db, ql, dl, rng)
        assert abs(float(F.mean_average_precision(*args, tie_break="index")) - sk.mean()) < TOL
        got = F.mean_average_precision(*args, tie_break="index", empty_queries="skip")
        assert abs(float(got) - sk[has_rel].mean()) < TOL


def test_index_tie_break_matches_torchmetrics_retrieval():
    """torchmetrics.retrieval on the strictly positive, tie-free score (bits + 1 - d) * (N + 1) - index.

    RetrievalMAP orders by ``topk`` of the score with no defined tie order, and since 1.8 treats scores <= 0 as
    not relevant; this score is > 0 and unique and orders exactly like (distance, index).
    """
    from torchmetrics.retrieval import RetrievalMAP, RetrievalPrecision

    rng = np.random.default_rng(60)
    for case in range(6):
        bits = int(rng.choice([4, 8, 32]))
        qb, db, ql, dl = make_problem(rng, 12, 150, bits, multilabel=bool(case % 2))
        dist, rel = ref_distance(qb, db), ref_relevance(ql, dl)
        n_q, n_d = dist.shape
        score = torch.from_numpy((bits + 1 - dist) * (n_d + 1) - np.arange(n_d)[None, :]).double()
        target = torch.from_numpy(rel).bool()
        indexes = torch.arange(n_q)[:, None].expand(n_q, n_d)
        args = torch_problem(qb, db, ql, dl, rng)
        for top_k in (None, 10, 149, 400):
            for empty, action in (("zero", "neg"), ("skip", "skip")):
                tm = RetrievalMAP(top_k=top_k, empty_target_action=action)(score, target, indexes=indexes)
                got = F.mean_average_precision(*args, top_k=top_k, tie_break="index", empty_queries=empty)
                assert abs(float(got) - float(tm)) < TOL, (case, top_k, empty)
        for k in (1, 10, 200):
            tm = RetrievalPrecision(top_k=k, empty_target_action="neg")(score, target, indexes=indexes)
            assert abs(float(F.precision_at_k(*args, k=k, tie_break="index")) - float(tm)) < TOL


# ----------------------------------------------------------------------------------------------------------------
# Hamming radius and P-R curve
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("average", ["macro", "micro"])
def test_radius_precision_recall_and_curve(average):
    rng = np.random.default_rng(70)
    for case in range(10):
        bits = int(rng.choice([2, 4, 6, 8, 16]))
        qb, db, ql, dl = make_problem(rng, 7, int(rng.integers(1, 200)), bits, multilabel=bool(case % 2))
        dist, rel = ref_distance(qb, db), ref_relevance(ql, dl)
        has_rel = rel.sum(1) > 0
        args = torch_problem(qb, db, ql, dl, rng)
        curve_p, curve_r = F.precision_recall_curve(*args, average=average)
        assert curve_p.shape == (bits + 1,) and curve_r.shape == (bits + 1,)
        for radius in range(bits + 3):
            ref_p, ref_r = ref_radius(dist, rel, radius, average)
            p, r = F.hamming_radius_precision_recall(*args, radius=radius, average=average)
            assert abs(float(p) - ref_p) < TOL and abs(float(r) - ref_r) < TOL, (case, radius)
            if radius <= bits:
                assert abs(float(curve_p[radius]) - ref_p) < TOL and abs(float(curve_r[radius]) - ref_r) < TOL
            if has_rel.any():
                sp, sr = ref_radius(dist[has_rel], rel[has_rel], radius, average)
                p, r = F.hamming_radius_precision_recall(*args, radius=radius, average=average,
                                                         empty_queries="skip")
                assert abs(float(p) - sp) < TOL and abs(float(r) - sr) < TOL
        assert abs(float(curve_r[-1]) - (has_rel.mean() if average == "macro" else 1.0)) < TOL


def test_radius_precision_is_zero_when_nothing_is_retrieved():
    q, db = torch.tensor([[1, 1, 1, 1]]), torch.tensor([[0, 0, 0, 0], [0, 0, 0, 1]])
    p, r = F.hamming_radius_precision_recall(q, db, torch.tensor([0]), torch.tensor([0, 0]), radius=2)
    assert float(p) == 0.0 and float(r) == 0.0
    p, r = F.hamming_radius_precision_recall(q, db, torch.tensor([0]), torch.tensor([0, 0]), radius=3)
    assert float(p) == 1.0 and float(r) == 0.5


# ----------------------------------------------------------------------------------------------------------------
# distance histograms and the metrics computed from them; the ranking P-R curve
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("multilabel", [True, False])
def test_distance_histograms_count_like_numpy_and_serve_every_metric(multilabel):
    rng = np.random.default_rng(80 + multilabel)
    qb, db, ql, dl = make_problem(rng, 9, 70, 6, multilabel)
    dist, rel = ref_distance(qb, db), ref_relevance(ql, dl)
    args = torch_problem(qb, db, ql, dl, rng)
    h = F.distance_histograms(*args)
    want_all = np.stack([np.bincount(row, minlength=7) for row in dist])
    want_rel = np.stack([np.bincount(row[r > 0], minlength=7) for row, r in zip(dist, rel)])
    np.testing.assert_array_equal(h.all.numpy(), want_all)
    np.testing.assert_array_equal(h.relevant.numpy(), want_rel)
    assert h.bits == 6 and h.n_db == 70
    has_rel = rel.sum(1) > 0
    for empty in ("zero", "skip"):
        for k in (1, 7, 70, 90):
            ref = lambda what: ref_mean(ref_per_query(dist, rel, what, k, "order_statistics"), has_rel, empty)  # noqa
            assert float(F.map_from_histograms(h, top_k=k, empty_queries=empty)) == pytest.approx(ref("ap_ranks"))
            assert float(F.map_from_histograms(h, top_k=k, top_k_mode="hits", empty_queries=empty)) == \
                pytest.approx(ref("ap_hits"))
            assert float(F.precision_at_k_from_histograms(h, k, empty)) == pytest.approx(ref("p_at_k"))
            assert float(F.recall_at_k_from_histograms(h, k, empty)) == pytest.approx(ref("r_at_k"))
        for radius in range(8):
            p, r = F.radius_precision_recall_from_histograms(h, radius, empty_queries=empty)
            rp, rr = ref_radius(dist[has_rel] if empty == "skip" else dist, rel[has_rel] if empty == "skip" else rel,
                                radius, "macro")
            assert (float(p), float(r)) == pytest.approx((rp, rr))


@pytest.mark.parametrize("tie_break", ["average", "index"])
def test_ranking_precision_recall_curve_matches_brute_force(tie_break):
    rng = np.random.default_rng(90)
    qb, db, ql, dl = make_problem(rng, 8, 60, 5, multilabel=True)
    dist, rel = ref_distance(qb, db), ref_relevance(ql, dl)
    has_rel = rel.sum(1) > 0
    reference = "index" if tie_break == "index" else "order_statistics"
    ks = [1, 2, 10, 59, 60, 100]
    p, r = F.precision_recall_at_k(*torch_problem(qb, db, ql, dl, rng), ks=ks, tie_break=tie_break)
    assert p.shape == r.shape == (len(ks),) and p.dtype == torch.float64
    for i, k in enumerate(ks):
        assert float(p[i]) == pytest.approx(ref_mean(ref_per_query(dist, rel, "p_at_k", k, reference), has_rel, "zero"))
        assert float(r[i]) == pytest.approx(ref_mean(ref_per_query(dist, rel, "r_at_k", k, reference), has_rel, "zero"))
    assert float(r[-1]) == pytest.approx(has_rel.mean())   # every relevant item is within the first N ranks
    with pytest.raises(ValueError, match="ks is empty"):
        F.precision_recall_at_k(*torch_problem(qb, db, ql, dl, rng), ks=[])
    with pytest.raises(ValueError, match="ks entry"):
        F.precision_recall_at_k(*torch_problem(qb, db, ql, dl, rng), ks=[0])
    with pytest.raises(ValueError, match="DistanceHistograms"):
        F.map_from_histograms(torch.zeros(2, 3))


# ----------------------------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------------------------


def _good():
    return torch.tensor([[1, 0, 1]]), torch.tensor([[1, 1, 1], [0, 0, 0]]), torch.tensor([0]), torch.tensor([0, 1])


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda a: (a[0], torch.ones(2, 4), a[2], a[3]), "bits"),
        (lambda a: (torch.tensor([[2, 0, 1]]), a[1], a[2], a[3]), "query_codes"),
        (lambda a: (a[0], torch.tensor([[1.0, 0.5, 1.0], [0.0, 0.0, 0.0]]), a[2], a[3]), "db_codes"),
        (lambda a: (a[0], torch.tensor([[1.0, -1.0, 0.0], [1.0, 1.0, 1.0]]), a[2], a[3]), "db_codes"),
        (lambda a: (torch.tensor([[float("nan"), 1.0, 1.0]]), a[1], a[2], a[3]), "query_codes.*NaN"),
        (lambda a: (a[0], torch.zeros(0, 3), a[2], torch.zeros(0, dtype=torch.long)), "db_codes.*empty"),
        (lambda a: (a[0], a[1], a[2], torch.tensor([0, 1, 1])), "db_labels"),
        (lambda a: (a[0], a[1], torch.tensor([0, 1]), a[3]), "query_labels"),
        (lambda a: (a[0], a[1], torch.tensor([[1, 0]]), a[3]), "query_labels"),
        (lambda a: (a[0], a[1], torch.tensor([[1, 0]]), torch.tensor([[1, 0, 0], [0, 1, 0]])), "label columns"),
        (lambda a: (a[0], a[1], torch.tensor([[0.5, 1.0]]), torch.tensor([[1, 0], [0, 1]])), "query_labels"),
        (lambda a: (a[0], a[1], torch.tensor([0.0]), torch.tensor([0.0, 1.0])), "query_labels"),
        (lambda a: (a[0].flatten(), a[1], a[2], a[3]), "query_codes"),
        (lambda a: (a[0].numpy(), a[1], a[2], a[3]), "query_codes"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(mutate, match):
    args = mutate(_good())
    with pytest.raises(ValueError, match=match):
        F.mean_average_precision(*args)


def test_bad_parameters_raise_value_error():
    args = _good()
    for kwargs, match in [
        ({"top_k": 0}, "top_k"), ({"top_k": -3}, "top_k"), ({"top_k": 2.5}, "top_k"),
        ({"tie_break": "random"}, "tie_break"), ({"empty_queries": "drop"}, "empty_queries"),
        ({"top_k_mode": "first"}, "top_k_mode"),
    ]:
        with pytest.raises(ValueError, match=match):
            F.mean_average_precision(*args, **kwargs)
    for k in (0, -1, True):
        with pytest.raises(ValueError, match="k"):
            F.precision_at_k(*args, k=k)
        with pytest.raises(ValueError, match="k"):
            F.mean_average_precision_first_k_hits(*args, k=k)
    with pytest.raises(ValueError, match="radius"):
        F.hamming_radius_precision_recall(*args, radius=-1)
    with pytest.raises(ValueError, match="average"):
        F.precision_recall_curve(*args, average="weighted")
    with pytest.raises(ValueError, match="db_codes"):
        F.hamming_distance(torch.ones(2, 3), torch.zeros(0, 3))


def test_results_are_float_and_on_the_input_device():
    args = _good()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for value in (F.mean_average_precision(*args), F.precision_at_k(*args, k=1),
                      *F.hamming_radius_precision_recall(*args), *F.precision_recall_curve(*args)):
            assert value.dtype == torch.float64 and value.device == args[0].device
