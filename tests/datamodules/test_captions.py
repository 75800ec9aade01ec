"""Image-sentence data for TVDB: the tokenizer and vocabulary, the COCO and table readers on small files written in
the published layouts, their bad-input errors, the MS-COCO / IAPR protocols, the vocabulary saved with a run,
and a TVDB run on a tiny COCO-layout set (no real COCO / IAPR TC-12 files exist in this environment)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import datamodules
from datamodules.captions import coco_split
from datamodules.readers.captions import read_caption_table, read_coco_captions
from datamodules.text import Vocabulary, tokenize

CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person"},
              {"id": 3, "name": "car", "supercategory": "vehicle"},
              {"id": 18, "name": "dog", "supercategory": "animal"}]
WORDS = {1: "person", 3: "car", 18: "dog"}


def _png(path: Path, seed: int, size=(24, 32)) -> None:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    Image.fromarray(rng.randint(0, 256, size + (3,), dtype=np.uint8)).save(path)


def write_coco(root: Path, n_train: int = 30, n_val: int = 20, unlabelled=(), images: bool = True,
               extra_captions=(), extra_instances=()) -> Path:
    """A COCO 2014 layout: annotations/captions_*.json, instances_*.json, train2014/ and val2014/ images."""
    rng = np.random.RandomState(0)
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    cap_id, ins_id = 1000, 1
    for split, n, first in (("train2014", n_train, 1), ("val2014", n_val, 5001)):
        imgs, caps, inst = [], [], []
        for j in range(n):
            img_id = first + 3 * j
            name = f"COCO_{split}_{img_id:012d}.png"
            imgs.append({"id": img_id, "file_name": name, "height": 24, "width": 32})
            if images:
                _png(root / split / name, img_id)
            cats = [] if img_id in unlabelled else sorted(rng.choice([1, 3, 18], size=rng.randint(1, 3),
                                                                    replace=False).tolist())
            for c in cats:
                inst.append({"id": ins_id, "image_id": img_id, "category_id": c, "bbox": [0, 0, 4, 4],
                             "area": 16.0, "iscrowd": 0})
                ins_id += 1
            words = " and a ".join(WORDS[c] for c in cats) or "something"
            for k in (1, 0):      # written out of id order: the reader sorts by caption id
                caps.append({"id": cap_id + k, "image_id": img_id,
                             "caption": f"A {words} in picture {j} number {k}."})
            cap_id += 2
        if split == "train2014":
            caps += list(extra_captions)
            inst += list(extra_instances)
        (ann / f"captions_{split}.json").write_text(json.dumps({"images": imgs, "annotations": caps}))
        (ann / f"instances_{split}.json").write_text(json.dumps({"images": imgs, "annotations": inst,
                                                                 "categories": CATEGORIES}))
    return root


# ============================================================================================== text
def test_tokenizer_and_vocabulary_rules(tmp_path):
    assert tokenize("A man's T-shirt, red.") == ["a", "man's", "t-shirt", ",", "red"]
    vocab = Vocabulary.build(["a dog runs.", "a dog sits", "a cat"])
    assert vocab.tokens == ["<pad>", "<eos>", "<unk>", "a", "dog", "cat", "runs", "sits"]
    ids = vocab.encode("A dog jumps.")                          # full stop removed, <eos> appended, padded to 12
    assert ids.tolist() == [3, 4, 2, 1] + [0] * 8 and ids.shape == (12,)
    long = vocab.encode_many([" ".join(["dog"] * 20)])
    assert long[0].tolist() == [4] * 11 + [1] and vocab.last_truncated == 1   # truncated, <eos> kept
    assert vocab.decode(ids) == ["a", "dog", "<unk>"]
    with pytest.raises(ValueError, match=r"empty sentence.*'cap-7'"):
        vocab.encode_many(["a dog", " . "], names=["cap-1", "cap-7"])
    path = vocab.save(tmp_path / "v.json")
    assert Vocabulary.load(path) == vocab
    with pytest.raises(ValueError, match="not a lightning-hash vocabulary"):
        (tmp_path / "bad.json").write_text("{}")
        Vocabulary.load(tmp_path / "bad.json")


# ============================================================================================== COCO reader
def test_coco_reader_labels_order_sentences_and_dropped_images(tmp_path):
    root = write_coco(tmp_path / "coco", unlabelled=(4,))
    with pytest.warns(UserWarning, match="without any label"):
        rec = read_coco_captions(root)
    assert rec.class_names == ["person", "car", "dog"]                 # category-id order, ids 1, 3, 18
    assert rec.dropped_unlabelled == ["4"] and len(rec) == 49
    assert rec.image_ids[:3] == ["1", "7", "10"] and rec.subsets[0] == "train2014" and rec.subsets[-1] == "val2014"
    assert rec.sentences[0][0].endswith("number 0.") and len(rec.sentences[0]) == 2     # caption-id order
    ins = json.loads((root / "annotations" / "instances_train2014.json").read_text())
    cats = {a["category_id"] for a in ins["annotations"] if a["image_id"] == 1}
    assert rec.labels[0].tolist() == [float(c in cats) for c in (1, 3, 18)]
    assert all(f is not None and f.is_file() for f in rec.image_files)
    with pytest.raises(ValueError, match="have no label"):
        read_coco_captions(root, unlabelled="error")


@pytest.mark.parametrize("case, message", [
    ("unknown_image", r"refer to images not listed.*\(9999, 424242\)"),
    ("empty", r"empty sentence.*\(caption, image\).*'9998'"),
    ("bad_category", r"unknown images or categories"),
])
def test_coco_reader_bad_input(tmp_path, case, message):
    extra_c, extra_i = [], []
    if case == "unknown_image":
        extra_c = [{"id": 9999, "image_id": 424242, "caption": "a dog"}]
    elif case == "empty":
        extra_c = [{"id": 9998, "image_id": 1, "caption": " . "}]
    else:
        extra_i = [{"id": 7777, "image_id": 1, "category_id": 99}]
    root = write_coco(tmp_path / case, n_train=4, n_val=2, images=False, extra_captions=extra_c,
                      extra_instances=extra_i)
    with pytest.raises(ValueError, match=message):
        read_coco_captions(root)


def test_coco_reader_missing_files_and_keys(tmp_path):
    with pytest.raises(FileNotFoundError, match="captions_train2014.json"):
        read_coco_captions(tmp_path)
    root = write_coco(tmp_path / "c", n_train=3, n_val=2, images=False)
    (root / "annotations" / "captions_val2014.json").write_text(json.dumps({"images": []}))
    with pytest.raises(KeyError, match="annotations"):
        read_coco_captions(root)


# ============================================================================================== table reader
def test_table_reader(tmp_path):
    table = tmp_path / "t.tsv"
    table.write_text("image_id\tsentence\tlabels\n"
                     "a\tA red car.\tcar;street\n"
                     "b\tTwo dogs\tdog\n"
                     "a\tA car parked\tcar;street\n")
    _png(tmp_path / "a.jpg", 0)
    rec = read_caption_table(table)
    assert rec.image_ids == ["a", "b"] and rec.class_names == ["car", "dog", "street"]
    assert rec.sentences[0] == ["A red car.", "A car parked"] and rec.labels.tolist() == [[1, 0, 1], [0, 1, 0]]
    assert rec.image_files[0] == tmp_path / "a.jpg" and rec.image_files[1] is None
    csv_file = tmp_path / "t.csv"
    csv_file.write_text('image_id,sentence,labels\nx,"a dog, running",dog|animal\n')
    assert read_caption_table(csv_file).class_names == ["animal", "dog"]
    cases = [("image_id\tsentence\nq\thi\n", KeyError, "labels"),
             ("image_id\tsentence\tlabels\nq\thi\tcar\nq\tho\tdog\n", ValueError, "must agree"),
             ("image_id\tsentence\tlabels\nq\t...\tcar\n", ValueError, "empty sentence"),
             ("image_id\tsentence\tlabels\nq\thi\t\n", ValueError, "no label")]
    for i, (content, err, msg) in enumerate(cases):
        bad = tmp_path / f"bad{i}.tsv"
        bad.write_text(content)
        with pytest.raises(err, match=msg):
            read_caption_table(bad)
    with pytest.raises(ValueError, match=r"not in the given class_names"):
        read_caption_table(table, class_names=["car", "dog"])


# ============================================================================================== protocols
def test_coco_protocol_gallery_and_sizes():
    fx = {"train2014": np.arange(0, 60), "val2014": np.arange(60, 100)}
    s = coco_split(np.zeros(100, dtype=np.int64), fixed_splits=fx, n_query=10, n_train=30, n_val_images=15, seed=3)
    gallery = np.union1d(s.query, s.database)
    assert len(gallery) == 75 and set(range(60)) <= set(gallery.tolist())        # all train2014 + 15 val2014
    assert len(s.query) == 10 and len(s.train) == 30 and not np.intersect1d(s.query, s.database).size
    assert set(s.train) <= set(s.database) and not np.intersect1d(s.val, s.query).size
    again = coco_split(np.zeros(100, dtype=np.int64), fixed_splits=fx, n_query=10, n_train=30, n_val_images=15,
                       seed=3)
    assert again == s
    with pytest.raises(ValueError, match="n_val_images"):
        coco_split(np.zeros(100, dtype=np.int64), fixed_splits=fx, n_val_images=41)
    with pytest.raises(KeyError, match="val2014"):
        coco_split(np.zeros(10, dtype=np.int64), fixed_splits={"train2014": np.arange(10)})


def test_iapr_top_classes_and_vocabulary_from_training_rows(tmp_path):
    lines = ["image_id\tsentence\tlabels"]
    for i in range(40):
        labels = ["sky"] if i % 2 else (["tree", "rare"] if i == 0 else ["tree"])
        word = "zebra" if i == 39 else "thing"
        lines.append(f"im{i}\ta {word} under the {labels[0]}\t{';'.join(labels)}")
    (tmp_path / "captions.tsv").write_text("\n".join(lines) + "\n")
    dm = datamodules.create("iapr", root=tmp_path, top_classes=2, n_query=5, n_train=20, modalities=["sentence"],
                            split_file=str(tmp_path / "run" / "split.json"))
    dm.setup()
    assert dm.class_names == ["sky", "tree"] and dm.arrays.num_items == 40     # 'rare' column dropped
    vocab = dm.vocabulary
    train_words = {w for i in dm.split.train for w in dm.records.sentences[i][0].lower().split()}
    assert set(vocab.tokens[3:]) == train_words                               # training sentences only
    saved = tmp_path / "run" / "vocabulary.json"
    assert saved.is_file() and Vocabulary.load(saved) == vocab
    assert dm.vocabularies["sentence"] == vocab.tokens and dm.input_dims["sentence"] == 12
    zebra_row = dm.records.image_ids.index("im39")
    if zebra_row not in set(dm.split.train.tolist()):
        assert 2 in dm.arrays.modalities["sentence"][zebra_row].tolist()        # an unseen word is <unk>
    # a second DataModule on the same run folder re-reads the vocabulary (and the split)
    dm2 = datamodules.create("iapr", root=tmp_path, top_classes=2, n_query=5, n_train=20, modalities=["sentence"],
                             split_file=str(tmp_path / "run" / "split.json"), min_count=5)
    dm2.setup()
    assert dm2.vocabulary == vocab and np.array_equal(dm2.arrays.modalities["sentence"], dm.arrays.modalities["sentence"])
    state = dm.state_dict()
    dm3 = datamodules.create("iapr", root=tmp_path, top_classes=2, n_query=5, n_train=20, modalities=["sentence"],
                             min_count=5)
    dm3.load_state_dict(state)                       # the checkpoint's vocabulary wins over a rebuilt one
    dm3.setup()
    assert dm3.vocabulary == vocab


# ============================================================================================== end to end
def test_tvdb_on_a_tiny_coco_layout(tmp_path):
    from lightning_hash.experiment import main as run_main
    root = write_coco(tmp_path / "coco", n_train=24, n_val=12)
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_main(["--method", "tvdb", "--data", "coco", "--data-root", str(root), "--bits", "8",
                        "--max-epochs", "1", "--logger", "none", "--no-progress-bar", "--output", str(out),
                        "--batch-size", "8", "--set", "data.n_query=6", "--set", "data.n_train=14",
                        "--set", "method.eval_map_at=[5]", "--set", "method.eval_precision_at=[5]",
                        "--set", "data.n_val_images=6", "--set", "data.n_val=4", "--set", "data.k=4",
                        "--set", "data.feature=pixels:2", "--set", f"data.region_cache={tmp_path / 'cache'}",
                        "--set", "method.lstm_hidden=8", "--set", "method.fc_hidden=8", "--set", "method.embed_dim=4",
                        "--set", "method.filters=4"])
    assert np.isfinite(res["metrics"]["test/mAP@all/regions->sentence"])
    assert (out / "vocabulary.json").is_file()
    split = json.loads((out / "split.json").read_text())
    assert split["protocol"] == "coco" and split["sizes"]["query"] == 6 and split["sizes"]["train"] == 14
    ck = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ck["hyper_parameters"]["num_regions"] == 5 and ck["hyper_parameters"]["region_dim"] == 3 * 4 + 4
    assert ck["hyper_parameters"]["vocab_size"] == len(json.loads((out / "vocabulary.json").read_text())["tokens"])
    assert ck["CocoDataModule"]["vocabulary"]["tokens"] == json.loads((out / "vocabulary.json").read_text())["tokens"]
    # too few proposals for K: padded, with a warning naming the count
    dm = datamodules.create("coco", root=root, n_query=6, n_train=14, n_val_images=6, n_val=4, k=20,
                            feature="pixels:2", region_cache=False)
    with pytest.warns(UserWarning, match=r"fewer than K=20 region proposals and were padded"):
        dm.setup()
    assert dm.input_dims["regions"] == (21, 16)
    with pytest.raises(ValueError, match="fewer than K=20"):
        datamodules.create("coco", root=root, n_query=6, n_train=14, n_val_images=6, n_val=4, k=20,
                           feature="pixels:2", region_cache=False, pad="error").setup()
