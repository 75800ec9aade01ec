"""DataModules: the embedded digits set, batches, recorded splits, samplers, zero-shot, registry, errors."""
from __future__ import annotations

import socket
import time
import warnings
from collections import deque

import numpy as np
import pytest
import torch

import datamodules
from datamodules import digits as digits_mod
from datamodules.arrays import DatasetArrays
from datamodules.base import ContiguousShardSampler, RetrievalTask, Split
from datamodules.datamodules import ArraysDataModule, DigitsDataModule, data_dir
from datamodules.synthetic import make_synthetic

SHARED = data_dir()


def setup_dm(name="digits", **kwargs):
    dm = datamodules.create(name, **kwargs)
    dm.setup()
    return dm


def rows_of(loader):
    return torch.cat([b["index"] for b in loader]).numpy()


# =============================================================================================== digits
def test_digits_loads_fast_without_network_or_files(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("digits must not touch the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("LIGHTNING_HASH_DATA", str(tmp_path / "no-such-folder"))
    monkeypatch.chdir(tmp_path)
    digits_mod.cached_digits_arrays.cache_clear()
    start = time.perf_counter()
    dm = DigitsDataModule(seed=0)
    dm.setup()
    next(iter(dm.train_dataloader()))
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"digits took {elapsed:.1f} s"
    assert list(tmp_path.iterdir()) == []                        # wrote nothing (no split_file given)
    assert dm.arrays.num_items == 1797 and dm.num_classes == 10


def test_digits_modalities_are_what_the_docs_say():
    from sklearn.datasets import load_digits
    ref = load_digits()
    a = digits_mod.cached_digits_arrays()
    np.testing.assert_allclose(a.modalities["image"], ref.data / 16.0, atol=1e-6)
    np.testing.assert_array_equal(a.labels, ref.target)
    assert a.modalities["text"].shape == (1797, len(digits_mod.TEXT_VOCABULARY))
    assert set(np.unique(a.modalities["text"]).tolist()) == {0.0, 1.0}
    assert a.modalities["sentence"].shape == (1797, 12) and a.modalities["sketch"].shape == (1797, 256)
    assert a.class_semantics["attributes"].shape == (10, 12)
    assert a.class_semantics["word_vectors"].shape == (10, 64)
    np.testing.assert_allclose(np.linalg.norm(a.class_semantics["word_vectors"], axis=1), 1.0, atol=1e-5)


def _holes_by_flood_fill(ink):
    """Independent reference: count background regions not reachable from outside (4-neighbour BFS)."""
    h, w = ink.shape
    seen = np.zeros_like(ink, dtype=bool)
    regions = 0
    for sy in range(h):
        for sx in range(w):
            if ink[sy, sx] or seen[sy, sx]:
                continue
            queue, touches_border = deque([(sy, sx)]), False
            seen[sy, sx] = True
            while queue:
                y, x = queue.popleft()
                touches_border |= y in (0, h - 1) or x in (0, w - 1)
                for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < h and 0 <= nx < w and not ink[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        queue.append((ny, nx))
            regions += not touches_border
    return regions


def test_digits_text_words_come_from_the_pixels_not_the_label():
    a = digits_mod.cached_digits_arrays()
    images = a.modalities["image"].reshape(-1, 8, 8)
    text = a.modalities["text"]
    vocab = digits_mod.TEXT_VOCABULARY
    col = {w: text[:, vocab.index(w)] for w in ("loops_0", "loops_1", "loops_2+")}
    for i in range(0, 1797, 7):
        holes = _holes_by_flood_fill(images[i] >= 0.5)
        expected = "loops_0" if holes == 0 else ("loops_1" if holes == 1 else "loops_2+")
        assert col[expected][i] == 1.0 and sum(c[i] for c in col.values()) == 1.0
        # the zone words follow the 2x2 zone means
        top_left = images[i, 0:2, 0:2].mean()
        assert text[i, vocab.index("zone00_some")] == float(0.15 <= top_left < 0.6)
    for name in digits_mod.CLASS_NAMES:
        assert not any(name in w.split("_") for w in vocab)       # no class name is a word (part)
    onehot = np.eye(10)[a.labels]
    for j in range(text.shape[1]):                 # no word is a copy of a class indicator
        assert not any(np.array_equal(text[:, j], onehot[:, c]) for c in range(10))
    # a real but imperfect pairing: same-class items share more words than different-class items
    t = text[:400]
    overlap = t @ t.T
    same = a.labels[:400, None] == a.labels[None, :400]
    np.fill_diagonal(same, False)
    assert overlap[same].mean() > overlap[~same].mean() + 2


def test_digits_sentences_are_padded_token_sequences_matching_the_image():
    a = digits_mod.cached_digits_arrays()
    vocab = digits_mod.SENTENCE_VOCABULARY
    text, tv = a.modalities["text"], digits_mod.TEXT_VOCABULARY
    for i in range(0, 1797, 11):
        ids = a.modalities["sentence"][i].tolist()
        words = [vocab[t] for t in ids]
        eos = words.index("<eos>")
        assert all(w == "<pad>" for w in words[eos + 1:]) and "<pad>" not in words[:eos]
        loops = words[words.index("with") + 1]
        expected = {"no": "loops_0", "one": "loops_1", "two": "loops_2+"}[loops]
        assert text[i, tv.index(expected)] == 1.0


def test_digits_sketch_is_an_outline_of_another_image_of_the_same_class():
    from scipy import ndimage
    a = digits_mod.cached_digits_arrays()
    images = a.modalities["image"].reshape(-1, 8, 8)
    big = ndimage.zoom(images, (1, 2, 2), order=1) >= 0.4
    padded = np.pad(big, ((0, 0), (1, 1), (1, 1)))
    interior = np.ones_like(big)
    for dy in (-1, 0, 1):                                  # reference erosion with a 3x3 square
        for dx in (-1, 0, 1):
            interior &= padded[:, 1 + dy:17 + dy, 1 + dx:17 + dx]
    outlines = (big & ~interior).reshape(1797, -1).astype(np.float32)
    sketch = a.modalities["sketch"]
    own = np.all(sketch == outlines, axis=1)
    assert own.mean() < 0.05                               # (almost) never the item's own drawing
    for i in range(0, 1797, 13):
        sources = np.flatnonzero(np.all(outlines == sketch[i], axis=1))
        assert sources.size >= 1
        assert np.all(a.labels[sources] == a.labels[i])    # drawn from the same class
        assert np.any(sources != i)


def test_digits_attributes_and_zero_shot_choice():
    attrs = digits_mod.DIGIT_ATTRIBUTES
    names = digits_mod.ATTRIBUTE_NAMES
    assert attrs[8, names.index("two_loops")] == 1 and attrs[1, names.index("closed_loop")] == 0
    assert attrs[0, names.index("closed_loop")] == 1 and attrs[7, names.index("horizontal_top")] == 1
    seen = [c for c in range(10) if digits_mod.CLASS_NAMES[c] not in digits_mod.DEFAULT_UNSEEN]
    assert attrs[seen].max(axis=0).min() == 1 and attrs[seen].min(axis=0).max() == 0   # every attribute varies
    assert len({tuple(r) for r in attrs}) == 10


def test_digits_default_batches_follow_the_contract():
    dm = setup_dm(seed=0, batch_size=32)
    assert dm.name == "digits" and dm.modalities == ("image", "text")
    assert dm.input_dims == {"image": 64, "text": len(digits_mod.TEXT_VOCABULARY)}
    assert [t.name for t in dm.tasks] == ["image->text", "text->image"]
    assert set(dm.class_semantics) == {"attributes", "word_vectors"}
    assert dm.class_semantics["attributes"].dtype == torch.float32
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"image", "text", "label", "index"}
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (32, 64)
    assert batch["label"].dtype == torch.float32 and batch["label"].shape == (32, 10)
    assert batch["index"].dtype == torch.int64
    idx = batch["index"].numpy()
    arrays = digits_mod.cached_digits_arrays()
    np.testing.assert_allclose(batch["image"].numpy(), arrays.modalities["image"][idx])
    np.testing.assert_array_equal(batch["label"].numpy().argmax(1), arrays.labels[idx])
    np.testing.assert_array_equal(batch["label"].sum(1).numpy(), 1.0)
    assert set(idx.tolist()) <= set(dm.split.train.tolist())


def test_digits_modality_selection_and_tasks():
    dm = setup_dm(modalities=("image", "sentence", "sketch"))
    assert [t.name for t in dm.tasks] == ["image->sentence", "sentence->image", "sketch->image"]
    assert dm.vocabularies["sentence"][0] == "<pad>"
    batch = next(iter(dm.test_dataloader()[0]))
    assert batch["sentence"].dtype == torch.float32
    assert torch.equal(batch["sentence"], batch["sentence"].round())          # exact integer token ids
    single = setup_dm(modalities=("image",))
    assert [t.name for t in single.tasks] == ["image->image"]
    custom = setup_dm(tasks=["text->image"])
    assert custom.tasks == [RetrievalTask("text", "image")]
    with pytest.raises(ValueError, match="not available"):
        setup_dm(modalities=("image", "audio"))
    with pytest.raises(ValueError, match="modality 'sketch'"):
        setup_dm(tasks=["sketch->image"])


# =============================================================================================== eval sets
def test_eval_sets_val_apart_from_test_and_loaders_in_order():
    dm = setup_dm(seed=1)
    s = dm.split
    assert dm.eval_set_names("val") == ["query", "database"] == dm.eval_set_names("test")
    val_q, val_db = (rows_of(l) for l in dm.val_dataloader())
    test_q, test_db = (rows_of(l) for l in dm.test_dataloader())
    np.testing.assert_array_equal(val_q, s.val)
    np.testing.assert_array_equal(val_db, s.val_database)
    np.testing.assert_array_equal(test_q, s.query)
    np.testing.assert_array_equal(test_db, s.database)
    assert not set(val_q) & set(test_q)                    # model selection never sees the test queries
    assert not set(val_q) & set(val_db)                    # val queries are not in their own database
    assert not set(test_q) & set(test_db)
    with pytest.raises(ValueError, match="stage"):
        dm.eval_set_names("train")


def test_no_validation_queries_means_no_val_loaders():
    dm = setup_dm(n_val=0)
    assert dm.eval_set_names("val") == [] and dm.val_dataloader() == []


# =============================================================================================== samplers
@pytest.mark.parametrize("n,world", [(10, 3), (7, 4), (3, 5), (1000, 8)])
def test_contiguous_shard_sampler(n, world):
    shards = [list(ContiguousShardSampler(n, r, world)) for r in range(world)]
    assert sum(shards, []) == list(range(n))               # union in order, nothing padded or repeated
    for r, shard in enumerate(shards):
        assert shard == list(range(r * n // world, (r + 1) * n // world))
        assert len(ContiguousShardSampler(n, r, world)) == len(shard)


def test_eval_loaders_shard_contiguously_under_ddp(monkeypatch):
    dm = setup_dm(seed=0)
    world = 3
    pieces = []
    for rank in range(world):
        monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.distributed, "get_rank", lambda r=rank: r)
        monkeypatch.setattr(torch.distributed, "get_world_size", lambda: world)
        pieces.append([rows_of(l) for l in dm.test_dataloader()])
    for k, rows in enumerate((dm.split.query, dm.split.database)):
        parts = [p[k] for p in pieces]
        np.testing.assert_array_equal(np.concatenate(parts), rows)
        n = len(rows)
        assert [len(p) for p in parts] == [(r + 1) * n // world - r * n // world for r in range(world)]


def test_train_order_is_a_function_of_seed_and_epoch(monkeypatch):
    def order(seed, epoch):
        dm = setup_dm(seed=seed, batch_size=50)
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return rows_of(loader)

    a, b = order(0, 3), order(0, 3)
    np.testing.assert_array_equal(a, b)
    assert sorted(a.tolist()) == setup_dm(seed=0).split.train.tolist()
    assert not np.array_equal(a, order(0, 4))
    # same split seed gives the same training rows; another seed another split and order
    assert not np.array_equal(a, order(1, 3))
    # two DDP ranks see disjoint halves covering the training set
    dm = setup_dm(seed=0, batch_size=50)
    halves = []
    for rank in range(2):
        monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.distributed, "get_rank", lambda r=rank: r)
        monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(3)
        halves.append(rows_of(loader))
    assert not set(halves[0]) & set(halves[1])
    assert sorted(np.concatenate(halves).tolist()) == dm.split.train.tolist()   # 1,000 rows: no padding needed


def test_drop_last():
    dm = setup_dm(batch_size=300, drop_last=True)
    sizes = [len(b["index"]) for b in dm.train_dataloader()]
    assert sizes == [300, 300, 300]                         # 1,000 training rows: the last 100 dropped


# =============================================================================================== split files
def test_split_file_same_seed_identical_different_seed_different(tmp_path):
    setup_dm(seed=7, split_file=tmp_path / "a" / "split.json")
    setup_dm(seed=7, split_file=tmp_path / "b" / "split.json")
    setup_dm(seed=8, split_file=tmp_path / "c" / "split.json")
    a, b, c = ((tmp_path / d / "split.json").read_bytes() for d in "abc")
    assert a == b and a != c
    sa, sc = Split.load(tmp_path / "a" / "split.json"), Split.load(tmp_path / "c" / "split.json")
    assert not np.array_equal(sa.query, sc.query)


def test_split_file_is_reused_on_resume(tmp_path):
    path = tmp_path / "split.json"
    first = setup_dm(seed=3, split_file=path)
    stamp = path.stat().st_mtime_ns
    with pytest.warns(UserWarning, match="reusing the recorded split"):
        again = setup_dm(seed=4, split_file=path, n_query=100)   # other arguments: the file still wins
    assert again.split == first.split
    assert path.stat().st_mtime_ns == stamp
    # a hand-edited split file is honoured, not redrawn
    edited = Split.load(path)
    edited.query, edited.database = edited.query[:-1], np.union1d(edited.database, edited.query[-1:])
    edited.save(path)
    third = setup_dm(seed=3, split_file=path)
    np.testing.assert_array_equal(third.split.query, first.split.query[:-1])


def test_split_file_of_other_data_is_refused(tmp_path):
    path = tmp_path / "split.json"
    setup_dm(seed=0, split_file=path)
    with pytest.raises(ValueError, match="drawn for 1797 items"):
        setup_dm("synthetic", split_file=path)
    other = make_synthetic(n_items=1797, n_classes=10, seed=0)
    with pytest.raises(ValueError, match="fingerprint"):
        ArraysDataModule(other, split_file=path).setup()


def test_split_travels_in_checkpoints():
    dm = setup_dm(seed=5)
    state = dm.state_dict()
    fresh = DigitsDataModule(seed=9)
    fresh.load_state_dict(state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh.setup()
    assert fresh.split == dm.split


# =============================================================================================== zero-shot
def test_digits_zero_shot_declares_classes_and_unseen_tasks(tmp_path):
    dm = setup_dm(zero_shot=True, modalities=("image", "sketch"), class_queries="word_vectors",
                  split_file=tmp_path / "zs.json")
    assert dm.zero_shot
    assert dm.unseen_classes == ["three", "six", "nine"]
    assert not set(dm.seen_classes) & set(dm.unseen_classes)
    assert set(dm.seen_classes) | set(dm.unseen_classes) == set(dm.class_names)
    labels = dm.arrays.labels
    unseen = {3, 6, 9}
    assert not set(labels[dm.split.train].tolist()) & unseen
    assert set(labels[rows_of(dm.test_dataloader()[0])].tolist()) <= unseen
    assert set(labels[rows_of(dm.test_dataloader()[1])].tolist()) <= unseen
    assert [t.name for t in dm.tasks] == ["sketch->image", "word_vectors->image"]
    assert dm.eval_set_names("test") == ["query", "database", "classes"]
    classes = next(iter(dm.test_dataloader()[2]))
    assert classes["index"].tolist() == [3, 6, 9] and classes["word_vectors"].shape == (3, 64)
    saved = Split.load(tmp_path / "zs.json")
    assert saved.unseen_classes.tolist() == [3, 6, 9]


def test_zero_shot_options_and_errors():
    drawn = setup_dm(n_unseen=2, seed=4, n_query=50)
    assert len(drawn.unseen_classes) == 2
    named = setup_dm(unseen_classes=["zero", "one"], n_query=50)
    assert named.unseen_classes == ["zero", "one"]
    with pytest.raises(ValueError, match="unknown class 'ten'"):
        setup_dm(unseen_classes=["ten"])
    with pytest.raises(ValueError, match="empty in the database"):
        setup_dm(unseen_classes=["one"], n_query=182)       # all 182 ones become queries
    with pytest.raises(ValueError, match="more than once"):
        setup_dm(zero_shot=True, unseen_classes=["one", "one"])


# =============================================================================================== bad input
def test_bad_protocol_sizes_through_the_datamodule():
    with pytest.raises(ValueError, match="n_query = 5000 but only 1797"):
        setup_dm(n_query=5000)
    with pytest.raises(ValueError, match="takes no argument"):
        datamodules.create("digits", n_querry=10)
    with pytest.raises(ValueError, match="batch_size"):
        datamodules.create("digits", batch_size=0)


def test_rows_mismatch_and_nan_features_are_errors():
    good = make_synthetic(n_items=50, n_classes=3, seed=0)
    with pytest.raises(ValueError, match="'text' has 49 rows but labels have 50"):
        DatasetArrays(modalities={"image": good.modalities["image"], "text": good.modalities["text"][:49]},
                      labels=good.labels, class_names=good.class_names)
    broken = make_synthetic(n_items=50, n_classes=3, seed=0)
    broken.modalities["image"][4, 2] = np.nan              # corrupted after construction: caught at setup
    with pytest.raises(ValueError, match="NaN/inf"):
        ArraysDataModule(broken, n_query=5).setup()
    broken.modalities["image"][4, 2] = np.inf
    with pytest.raises(ValueError, match="NaN/inf"):
        ArraysDataModule(broken, n_query=5).setup()


# =============================================================================================== others
def test_synthetic_has_the_documented_structure():
    arrays, truth = make_synthetic(n_items=300, n_classes=5, noise=0.0, seed=2, return_truth=True)
    np.testing.assert_allclose(arrays.modalities["image"], truth.latents @ truth.maps["image"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(truth.latents, truth.prototypes[arrays.labels], atol=1e-12)   # noise 0
    # the known cross-modal relation: text = image A^+ B
    mapped = arrays.modalities["image"] @ np.linalg.pinv(truth.maps["image"]) @ truth.maps["text"]
    np.testing.assert_allclose(mapped, arrays.modalities["text"], atol=1e-3)
    again = make_synthetic(n_items=300, n_classes=5, noise=0.0, seed=2)
    np.testing.assert_array_equal(again.modalities["text"], arrays.modalities["text"])
    multi = setup_dm("synthetic", multi_label=True, n_items=200)
    batch = next(iter(multi.train_dataloader()))
    assert batch["label"].sum(1).max() > 1
    zs = setup_dm("synthetic", zero_shot=True)
    assert len(zs.unseen_classes) == 2


def test_registry():
    names = datamodules.available()
    for required in ("digits", "synthetic", "wiki", "cifar10", "mnist", "cub10", "handwritten", "mirflickr",
                     "nuswide", "xlsa17", "bundle"):
        assert required in names
    with pytest.raises(ValueError, match="valid names: .*digits"):
        datamodules.create("imagenet-1k")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        datamodules.create("missing.npz")
    with pytest.raises(ValueError, match="reads no files"):
        datamodules.create("digits", root="/tmp")


def test_bundle_path_goes_to_the_bundle_datamodule(tmp_path):
    readers = pytest.importorskip("datamodules.readers")
    arrays = make_synthetic(n_items=80, n_classes=4, seed=0)
    path = tmp_path / "mine.npz"
    np.savez(path, image=arrays.modalities["image"], text=arrays.modalities["text"], labels=arrays.labels,
             class_names=np.array(arrays.class_names), split_train=np.arange(60), split_query=np.arange(60, 80))
    assert hasattr(readers, "read_bundle")
    dm = datamodules.create(str(path), seed=0)
    dm.setup()
    assert type(dm).__name__ == "BundleDataModule"
    np.testing.assert_array_equal(dm.split.query, np.arange(60, 80))         # the bundle's own split
    np.testing.assert_array_equal(dm.split.database, np.arange(60))
    with pytest.raises(ValueError, match="holds its own split"):
        datamodules.create(str(path), n_query=10).setup()
    with pytest.raises(ValueError, match="holds its own split.*ignore_published_split=True"):
        datamodules.create(str(path), protocol="random", n_query=8).setup()   # never dropped silently
    drawn = datamodules.create(str(path), protocol="random", n_query=8, ignore_published_split=True)
    drawn.setup()
    assert len(drawn.split.query) == 8


def test_missing_data_folder_names_the_path_and_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no-wiki.*raw_features\.mat"):
        setup_dm("wiki", root=tmp_path / "no-wiki")


@pytest.mark.skipif(not (SHARED / "wiki" / "raw_features.mat").is_file(),
                    reason="real Wiki files not found in ../shared/data/wiki (set LIGHTNING_HASH_DATA)")
def test_wiki_real_files():
    dm = setup_dm("wiki")
    assert dm.num_classes == 10 and dm.input_dims == {"image": 128, "text": 10}
    assert len(dm.split.train) == len(dm.split.database) == 2173 and len(dm.split.query) == 693
    np.testing.assert_array_equal(dm.split.train, dm.split.database)
    assert [t.name for t in dm.tasks] == ["image->text", "text->image"]


def test_lightning_trainer_runs_with_the_datamodule(tmp_path):
    pl = pytest.importorskip("pytorch_lightning")

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(64, 4)
            self.train_rows, self.val_rows = [], {}

        def training_step(self, batch, batch_idx):
            self.train_rows.append((self.current_epoch, batch["index"].tolist()))
            return self.layer(batch["image"]).pow(2).mean()

        def validation_step(self, batch, batch_idx, dataloader_idx=0):
            self.val_rows.setdefault(dataloader_idx, []).extend(batch["index"].tolist())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    dm = datamodules.create("digits", seed=0, batch_size=100)
    model = Probe()
    trainer = pl.Trainer(max_epochs=2, limit_train_batches=2, num_sanity_val_steps=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         use_distributed_sampler=False, accelerator="cpu", devices=1,
                         default_root_dir=str(tmp_path))
    trainer.fit(model, datamodule=dm)
    epochs = {e: rows for e, rows in model.train_rows if rows}
    assert epochs[0] != epochs[1]                            # Lightning advanced the sampler's epoch
    half = len(model.val_rows[0]) // 2                       # validation ran twice over both sets
    assert sorted(set(model.val_rows[0])) == dm.split.val.tolist() and half == len(dm.split.val)
    assert sorted(set(model.val_rows[1])) == dm.split.val_database.tolist()


# =============================================================================================== file wiring
def test_mirflickr_datamodule_on_small_files_in_the_dcmh_layout(tmp_path):
    from scipy.io import savemat
    rng = np.random.RandomState(0)
    n, c = 3000, 24
    labels = (rng.rand(n, c) < 0.1).astype(np.float64)
    labels[np.arange(n), rng.randint(0, c, n)] = 1
    savemat(tmp_path / "mirflickr25k-lall.mat", {"LAll": labels})
    savemat(tmp_path / "mirflickr25k-yall.mat", {"YAll": (rng.rand(n, 50) < 0.1).astype(np.float64)})
    savemat(tmp_path / "mirflickr25k-xall.mat", {"XAll": rng.rand(n, 16)})
    dm = setup_dm("mirflickr", root=tmp_path, n_query=480, n_train=1200, per_class_query=20, per_class_train=50,
                  check_content=False)
    assert dm.modalities == ("image", "text") and dm.input_dims == {"image": 16, "text": 50}
    assert len(dm.split.query) == 480 and len(dm.split.train) == 1200 and len(dm.split.database) == n - 480
    assert not set(dm.split.train.tolist()) & set(dm.split.query.tolist())
    batch = next(iter(dm.train_dataloader()))
    np.testing.assert_array_equal(batch["label"].numpy(), labels[batch["index"].numpy()])
    dcmh = setup_dm("mirflickr", root=tmp_path, protocol="dcmh", n_query=300, n_train=1000, check_content=False)
    assert dcmh.split.protocol == "dcmh" and len(dcmh.split.train) == 1000


def test_xlsa17_datamodule_on_small_files_in_the_published_layout(tmp_path):
    from scipy.io import savemat
    rng = np.random.RandomState(1)
    classes = 6
    labels = np.repeat(np.arange(1, classes + 1), 40)                       # 1-based, as published
    unseen = np.flatnonzero(labels >= 5) + 1                                 # 1-based row numbers
    seen = rng.permutation(np.flatnonzero(labels < 5)) + 1                  # every seen class in trainval
    savemat(tmp_path / "res101.mat", {"features": rng.rand(32, len(labels)), "labels": labels[:, None]})
    names = np.array([[np.array([f"cls{i}"])] for i in range(classes)], dtype=object)
    att = rng.rand(5, classes)
    savemat(tmp_path / "att_splits.mat", {
        "allclasses_names": names, "att": att, "original_att": att * 100,
        "trainval_loc": seen[:120, None], "train_loc": seen[:80, None], "val_loc": seen[80:120, None],
        "test_seen_loc": seen[120:, None], "test_unseen_loc": unseen[:, None]})
    dm = setup_dm("xlsa17", root=tmp_path, n_query=20, class_queries="attributes", check_content=False)
    assert dm.unseen_classes == ["cls4", "cls5"]
    assert dm.input_dims["image"] == 32
    np.testing.assert_array_equal(dm.split.train, np.sort(seen[:120] - 1))
    assert set(dm.arrays.labels[dm.split.query].tolist()) <= {4, 5}
    assert set(dm.split.val.tolist()) <= set((seen[120:] - 1).tolist())
    assert [t.name for t in dm.tasks] == ["image->image", "attributes->image"]


def test_cub10_and_handwritten_views(tmp_path):
    from scipy.io import savemat
    rng = np.random.RandomState(2)
    x = np.empty((1, 2), dtype=object)
    x[0, 0], x[0, 1] = rng.rand(100, 12), rng.rand(100, 7)
    savemat(tmp_path / "cub_googlenet_doc2vec_c10.mat", {"X": x, "Y": (np.arange(100) % 10 + 1)[:, None]})
    cub = setup_dm("cub10", root=tmp_path, n_query=20, check_content=False)
    assert cub.input_dims == {"image": 12, "text": 7} and len(cub.split.query) == 20
    views = np.empty((1, 3), dtype=object)
    views[0, 0], views[0, 1], views[0, 2] = rng.rand(200, 240), rng.rand(200, 76), rng.rand(200, 6)
    savemat(tmp_path / "handwritten.mat", {"X": views, "Y": (np.arange(200) % 10)[:, None]})
    with pytest.raises(ValueError, match="nothing is left for the database"):
        setup_dm("handwritten", root=tmp_path, check_content=False)   # the default 200 queries take all 200
    with pytest.raises(ValueError, match="handwritten: read 200 items x 10 classes .* is 2,000 items x 10 classes"):
        setup_dm("handwritten", root=tmp_path, n_query=50)        # not the published 2,000 digits
    hw = setup_dm("handwritten", root=tmp_path, n_query=50, check_content=False)
    assert hw.modalities == ("pixel", "fourier")
    assert [t.name for t in hw.tasks] == ["pixel->fourier", "fourier->pixel"]
    other = setup_dm("handwritten", root=tmp_path, views=("fourier", "morphological"), n_query=50,
                     check_content=False)
    assert other.input_dims == {"fourier": 76, "morphological": 6}


@pytest.mark.skipif(not (SHARED / "cifar10").is_dir(),
                    reason="real CIFAR-10 not found in ../shared/data/cifar10 (set LIGHTNING_HASH_DATA)")
def test_cifar10_real_files_hashing_protocol():
    dm = setup_dm("cifar10")                       # decoded once, then read from the reader's cache
    labels = dm.arrays.labels
    test_rows = dm.arrays.fixed_splits["test"]
    assert dm.arrays.num_items == 60000 and dm.input_dims == {"image": 3072}
    assert len(dm.split.query) == 1000 and set(dm.split.query.tolist()) <= set(test_rows.tolist())
    np.testing.assert_array_equal(np.bincount(labels[dm.split.query], minlength=10), [100] * 10)
    assert len(dm.split.database) == 59000 and np.array_equal(dm.split.train, dm.split.database)
    batch = next(iter(dm.test_dataloader()[0]))
    raw = dm.arrays.modalities["image"][batch["index"].numpy()]               # uint8 [B, H, W, C]
    expected = raw.transpose(0, 3, 1, 2).reshape(len(raw), -1) / 255.0        # flattened in [C, H, W] order
    np.testing.assert_allclose(batch["image"].numpy(), expected, atol=1e-6)
    images = setup_dm("cifar10", features="images")
    assert images.input_dims == {"image": (3, 32, 32)}


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(),
                    reason="real MNIST not found in ../shared/data/mnist (set LIGHTNING_HASH_DATA)")
def test_mnist_real_files():
    dm = setup_dm("mnist")
    assert dm.arrays.num_items == 10000 and dm.input_dims == {"image": 784}
    np.testing.assert_array_equal(np.bincount(dm.arrays.labels[dm.split.query], minlength=10), [100] * 10)
    zs = setup_dm("mnist", unseen_classes=["7", "8", "9"], n_query=500)
    assert zs.unseen_classes == ["7", "8", "9"]
    assert not {7, 8, 9} & set(zs.arrays.labels[zs.split.train].tolist())
