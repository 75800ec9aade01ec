"""lightning_hash.index.HammingIndex against a numpy brute force: k-NN (ties by id), range search, save/load."""
import numpy as np
import pytest
import torch

from lightning_hash.index import HammingIndex, pack_codes, popcount, unpack_codes


def brute_knn(q_bits, db_bits, k):
    """Reference: full distance matrix, stable sort by (distance, id)."""
    d = (q_bits[:, None, :] != db_bits[None, :, :]).sum(-1)
    order = np.lexsort((np.broadcast_to(np.arange(d.shape[1]), d.shape), d), axis=1)[:, :k]
    return order, np.take_along_axis(d, order, axis=1)


def random_bits(rng, n, bits, dup_from=None):
    x = rng.integers(0, 2, size=(n, bits)).astype(bool)
    if dup_from is not None:   # many exact duplicates and near-duplicates: lots of ties
        x[::3] = dup_from[rng.integers(0, len(dup_from), size=len(x[::3]))]
    return x


@pytest.mark.parametrize("bits", [8, 13, 64, 100, 128])
@pytest.mark.parametrize("k", [1, 7, 50])
def test_knn_equals_brute_force_with_ties(bits, k):
    rng = np.random.default_rng(bits * 100 + k)
    base = random_bits(rng, 20, bits)
    db = random_bits(rng, 1500, bits, dup_from=base)
    q = random_bits(rng, 37, bits, dup_from=base)
    # small chunks exercise the merge across chunks; two threads must not change the result
    index = HammingIndex(bits, chunk_size=128, query_block=8, threads=2 if k == 7 else 1)
    index.add(db[:700])
    index.add(np.where(db[700:], 1.0, -1.0))                     # {-1, +1} floats, second batch of ids
    ids, dist = index.search(torch.from_numpy(q.astype(np.float32)), k)   # {0, 1} torch floats
    ref_ids, ref_dist = brute_knn(q, db, k)
    np.testing.assert_array_equal(dist, ref_dist)
    np.testing.assert_array_equal(ids, ref_ids)
    assert ids.dtype == np.int64 and ids.shape == (37, k)


def test_small_database_returns_all_items_and_single_chunk_path():
    rng = np.random.default_rng(0)
    db, q = random_bits(rng, 5, 16), random_bits(rng, 3, 16)
    index = HammingIndex(16, chunk_size=2)      # chunk smaller than k
    index.add(db)
    ids, dist = index.search(q, 10)
    ref_ids, ref_dist = brute_knn(q, db, 5)
    assert ids.shape == (3, 5)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(dist, ref_dist)


def test_range_search_equals_brute_force():
    rng = np.random.default_rng(1)
    base = random_bits(rng, 10, 32)
    db, q = random_bits(rng, 900, 32, dup_from=base), random_bits(rng, 20, 32, dup_from=base)
    index = HammingIndex(32, chunk_size=100, query_block=7)
    index.add(db)
    d = (q[:, None] != db[None]).sum(-1)
    for radius in (0, 2, 12, 32):
        out = index.range_search(q, radius)
        assert len(out) == len(q)
        for i, (ids, dist) in enumerate(out):
            ref = np.flatnonzero(d[i] <= radius)
            ref = ref[np.lexsort((ref, d[i, ref]))]
            np.testing.assert_array_equal(ids, ref)
            np.testing.assert_array_equal(dist, d[i, ref])


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    db, q = random_bits(rng, 300, 20), random_bits(rng, 5, 20)
    index = HammingIndex(20)
    index.add(db)
    index.save(tmp_path / "index.npz")
    again = HammingIndex.load(tmp_path / "index.npz")
    assert again.bits == 20 and len(again) == 300
    np.testing.assert_array_equal(again.packed_codes, index.packed_codes)
    np.testing.assert_array_equal(unpack_codes(again.packed_codes, 20), db.astype(np.uint8))
    for a, b in zip(index.search(q, 9), again.search(q, 9)):
        np.testing.assert_array_equal(a, b)


def test_packed_input_and_popcount():
    rng = np.random.default_rng(3)
    db = random_bits(rng, 50, 64)
    a, b = HammingIndex(64), HammingIndex(64)
    a.add(db)
    b.add(pack_codes(db, 64), packed=True)
    np.testing.assert_array_equal(a.packed_codes, b.packed_codes)
    np.testing.assert_array_equal(a.distances(db[:4]), (db[:4, None] != db[None]).sum(-1))
    words = rng.integers(0, 2**63, size=100, dtype=np.uint64)
    assert popcount(words).tolist() == [bin(int(w)).count("1") for w in words]


@pytest.mark.parametrize("call, message", [
    (lambda ix: ix.add(np.zeros((3, 9))), "9 bits per row"),
    (lambda ix: ix.add(np.zeros(8)), "2-d"),
    (lambda ix: ix.add(np.array([[0.3] * 8])), "sign_codes"),
    (lambda ix: ix.add(np.array([[-1, 0, 1, 1, 1, 1, 1, 1]])), "only"),
    (lambda ix: ix.add(np.zeros((2, 2), np.uint8), packed=True), "uint8"),
    (lambda ix: ix.search(np.zeros((1, 8)), 0), "k must be a positive"),
    (lambda ix: ix.range_search(np.zeros((1, 8)), -1), "radius"),
    (lambda ix: HammingIndex(0), "bits must be"),
])
def test_bad_input_is_rejected(call, message):
    index = HammingIndex(8)
    index.add(np.zeros((4, 8)))
    with pytest.raises(ValueError, match=message):
        call(index)


def test_packed_bits_past_code_length_are_rejected():
    index = HammingIndex(12)
    with pytest.raises(ValueError, match="past the code length"):
        index.add(np.array([[0, 0b00000001]], dtype=np.uint8), packed=True)


def test_load_rejects_other_files(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a HammingIndex"):
        HammingIndex.load(tmp_path / "x.npz")


def test_retrieve_script_answers_queries_from_a_run(tmp_path, capsys):
    from lightning_hash.experiment import main as run
    from run_helpers import load_experiment_script
    retrieve = load_experiment_script("retrieve")
    run(["--method", "random", "--data", "digits", "--bits", "16", "--logger", "none", "--no-progress-bar",
         "--output", str(tmp_path / "run")])
    out = retrieve.main([str(tmp_path / "run"), "--n-queries", "3", "--k", "5", "--save-index",
                         str(tmp_path / "ix.npz")])
    assert out["bits"] == 16 and len(out["answers"]) == 3
    for answer in out["answers"]:
        assert len(answer["rows"]) == 5 and answer["distances"] == sorted(answer["distances"])
    assert len(HammingIndex.load(tmp_path / "ix.npz")) == out["database_size"]
    near = retrieve.main([str(tmp_path / "run" / "results.json"), "--queries", "0", "--radius", "4",
                          "--task", "text->image"])
    assert near["task"] == "text->image" and all(d <= 4 for d in near["answers"][0]["distances"])
    assert "row ids" in capsys.readouterr().out


def test_evaluate_checkpoint_retests_a_run_on_its_recorded_split(tmp_path, capsys):
    """The best checkpoint, rebuilt from the run folder alone, gives the run's reported figures exactly; the last
    checkpoint is the end-of-training model; a missing checkpoint is a clear error; the run is never rewritten."""
    import json

    from lightning_hash.experiment import main as run
    from run_helpers import load_experiment_script
    ev = load_experiment_script("evaluate_checkpoint")
    out = tmp_path / "run"
    run(["--method", "agnet_noattr", "--data", "digits", "--bits", "16", "--max-epochs", "3", "--logger", "none",
         "--no-progress-bar", "--output", str(out)])
    before = (out / "results.json").read_text()
    best, last = ev.main([str(out), "--checkpoint", "best"])[0], ev.main([str(out)])[0]
    reported = json.loads(before)["metrics"]
    assert {k: best["tested"][k] for k in reported} == pytest.approx(reported, abs=1e-6)
    assert last["checkpoint"].endswith("last.ckpt") and "test/mAP@all/image->image" in last["tested"]
    assert "| agnet_noattr | 16 | 0 | image->image |" in capsys.readouterr().out
    assert (out / "results.json").read_text() == before
    (out / "checkpoints" / "last.ckpt").unlink()
    with pytest.raises(FileNotFoundError, match="no 'last' checkpoint"):
        ev.main([str(out)])
