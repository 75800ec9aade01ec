"""Image-sentence datasets with category labels, in the two common layouts.

1. **COCO** (:func:`read_coco_captions`): the MS-COCO 2014 annotation files::

       captions_<split>.json    {"images": [{"id", "file_name", ...}], "annotations": [{"id", "image_id", "caption"}]}
       instances_<split>.json   {"images": [...], "annotations": [{"image_id", "category_id", ...}],
                                 "categories": [{"id", "name", ...}]}

   for one or more splits (``train2014``, ``val2014``). Labels: the multi-hot set of the categories annotated
   in the image (80 for COCO, in the order of the ``categories`` list). Images: ``<image_root>/<split>/<file_name>``
   or ``<image_root>/<file_name>`` when present.
2. **Table** (:func:`read_caption_table`): a plain text table, tab- or comma-separated, with a header naming
   the columns ``image_id``, ``sentence`` and ``labels`` (and optionally ``file``); one line per (image,
   sentence) pair; ``labels`` lists the image's label names separated by ``;`` (or ``|``). IAPR TC-12 and any
   other captioned collection converts to it in a few lines. Images: the ``file`` column, else
   ``<image_root>/<image_id>.jpg|.png`` when present.

Both return :class:`CaptionRecords`: one entry per image (its id, image file, every sentence, label row) and the
class names. Rules, as for every reader: a caption naming an image that is not listed is a ``ValueError``
naming the caption and image ids (it is not dropped); an empty sentence (nothing left after removing full stops
and spaces) is a ``ValueError`` naming it; a listed image without any sentence is a ``ValueError``; an image
without any label is dropped only with ``unlabelled="drop"`` (the default for COCO, where about 1% of the images
have no instance annotation: the count is kept in ``dropped_unlabelled`` and a warning is issued), and a
``ValueError`` with ``unlabelled="error"``.
"""
from __future__ import annotations

import csv
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..text import tokenize
from ._common import PathLike, require_file

__all__ = ["CaptionRecords", "read_coco_captions", "read_caption_table", "COCO_LAYOUT", "TABLE_LAYOUT"]

COCO_LAYOUT = ("captions_<split>.json (images: id, file_name; annotations: id, image_id, caption) and "
               "instances_<split>.json (annotations: image_id, category_id; categories: id, name) per split, "
               "e.g. train2014 and val2014")
TABLE_LAYOUT = ("a tab- or comma-separated text file with a header row naming the columns image_id, sentence, "
                "labels (label names separated by ';' or '|') and optionally file; one row per image-sentence pair")


@dataclass
class CaptionRecords:
    """One entry per image: ``image_ids``, ``image_files`` (``None`` where no file was found), ``sentences``
    (all of the image's sentences, in caption-id / file order), ``labels`` (``float32 [n, C]`` multi-hot),
    ``class_names``, ``subsets`` (the published split of each image, e.g. ``"train2014"``; ``""`` when none),
    ``dropped_unlabelled`` (image ids removed for having no label) and ``source``."""

    image_ids: List[str]
    image_files: List[Optional[Path]]
    sentences: List[List[str]]
    labels: np.ndarray
    class_names: List[str]
    subsets: List[str]
    dropped_unlabelled: List[str] = field(default_factory=list)
    source: str = "<memory>"

    def __post_init__(self) -> None:
        n = len(self.image_ids)
        for name in ("image_files", "sentences", "subsets"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{self.source}: {name} has {len(getattr(self, name))} entries for {n} images")
        if self.labels.shape != (n, len(self.class_names)):
            raise ValueError(f"{self.source}: labels have shape {self.labels.shape}, expected ({n}, "
                             f"{len(self.class_names)})")
        if len(set(self.image_ids)) != n:
            raise ValueError(f"{self.source}: image ids repeat")

    def __len__(self) -> int:
        return len(self.image_ids)

    def subset(self, keep: np.ndarray, classes: Optional[np.ndarray] = None) -> "CaptionRecords":
        """The images ``keep`` (row indices), optionally only the label columns ``classes``."""
        keep = np.asarray(keep, dtype=np.int64)
        labels = self.labels[keep]
        names = self.class_names
        if classes is not None:
            labels = labels[:, classes]
            names = [self.class_names[c] for c in classes]
        return CaptionRecords([self.image_ids[i] for i in keep], [self.image_files[i] for i in keep],
                              [self.sentences[i] for i in keep], np.ascontiguousarray(labels), list(names),
                              [self.subsets[i] for i in keep], list(self.dropped_unlabelled), self.source)


def _check_sentences(sentences: Dict[str, List[str]], caption_ids: Dict[str, List[str]], source: str) -> None:
    empty = [(cid, img) for img, sents in sentences.items() for s, cid in zip(sents, caption_ids[img])
             if not tokenize(s)]
    if empty:
        raise ValueError(f"{source}: {len(empty)} empty sentence(s) (nothing left after removing full stops and "
                         f"spaces): (caption, image) {empty[:5]}; remove them or give them text")


def _finish(image_ids: List[str], files: List[Optional[Path]], sentences: Dict[str, List[str]],
            caption_ids: Dict[str, List[str]], labels: np.ndarray, class_names: List[str], subsets: List[str],
            unlabelled: str, source: str) -> CaptionRecords:
    if unlabelled not in ("drop", "error"):
        raise ValueError(f"unlabelled must be 'drop' or 'error', got {unlabelled!r}")
    no_caption = [i for i in image_ids if not sentences.get(i)]
    if no_caption:
        raise ValueError(f"{source}: {len(no_caption)} listed image(s) have no sentence, e.g. {no_caption[:5]}")
    _check_sentences(sentences, caption_ids, source)
    has_label = labels.sum(axis=1) > 0
    dropped = [i for i, ok in zip(image_ids, has_label) if not ok]
    if dropped:
        if unlabelled == "error":
            raise ValueError(f"{source}: {len(dropped)} image(s) have no label, e.g. {dropped[:5]}; pass "
                             "unlabelled='drop' to leave them out")
        warnings.warn(f"{source}: leaving out {len(dropped)} image(s) without any label (e.g. {dropped[:3]}); "
                      "they cannot be relevant to any query", stacklevel=3)
    keep = np.flatnonzero(has_label)
    return CaptionRecords([image_ids[i] for i in keep], [files[i] for i in keep],
                          [sentences[image_ids[i]] for i in keep], np.ascontiguousarray(labels[keep]),
                          class_names, [subsets[i] for i in keep], dropped, source)


def _load_json(path: Path, keys: Sequence[str]) -> dict:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}). Expected layout: {COCO_LAYOUT}") from None
    missing = [k for k in keys if k not in content]
    if missing:
        from ._common import MissingKeyError
        raise MissingKeyError(f"{path}: no key(s) {missing}; keys found: {sorted(content)}. Expected layout: "
                              f"{COCO_LAYOUT}")
    return content


def _find_image(root: Optional[Path], candidates: Sequence[str]) -> Optional[Path]:
    if root is None:
        return None
    for c in candidates:
        p = root / c
        if p.is_file():
            return p
    return None


def read_coco_captions(root: PathLike, splits: Sequence[str] = ("train2014", "val2014"),
                       image_root: Optional[PathLike] = None, unlabelled: str = "drop") -> CaptionRecords:
    """Read COCO captions + instance categories for ``splits`` from the folder ``root``.

    ``root`` holds ``captions_<split>.json`` and ``instances_<split>.json`` (directly or under
    ``annotations/``); ``image_root`` (default ``root``) holds ``<split>/<file_name>`` or ``<file_name>``.
    Images are ordered by split, then by image id; each image's sentences by caption id.

    >>> rec = read_coco_captions("../shared/data/coco")                  # doctest: +SKIP
    >>> len(rec.class_names), rec.sentences[0][:1]                        # doctest: +SKIP
    (80, ['A man with a red helmet on a small moped on a dirt road. '])
    """
    root = Path(root).expanduser()
    ann = root / "annotations" if (root / "annotations").is_dir() else root
    img_root = Path(image_root).expanduser() if image_root is not None else root
    class_names: Optional[List[str]] = None
    cat_index: Dict[int, int] = {}
    image_ids: List[str] = []
    files: List[Optional[Path]] = []
    subsets: List[str] = []
    sentences: Dict[str, List[str]] = {}
    caption_ids: Dict[str, List[str]] = {}
    label_rows: List[np.ndarray] = []
    for split in splits:
        cap_path = require_file(ann / f"captions_{split}.json", COCO_LAYOUT)
        ins_path = require_file(ann / f"instances_{split}.json", COCO_LAYOUT)
        caps = _load_json(cap_path, ["images", "annotations"])
        ins = _load_json(ins_path, ["annotations", "categories"])
        cats = sorted(ins["categories"], key=lambda c: int(c["id"])) if class_names is None else None
        if cats is not None:
            class_names = [str(c["name"]) for c in cats]
            cat_index = {int(c["id"]): i for i, c in enumerate(cats)}
        elif [str(c["name"]) for c in sorted(ins["categories"], key=lambda c: int(c["id"]))] != class_names:
            raise ValueError(f"{ins_path}: its categories differ from those of the first split")
        images = sorted(caps["images"], key=lambda im: int(im["id"]))
        known = {str(im["id"]) for im in images}
        dup = [k for k in known if k in sentences]
        if dup:
            raise ValueError(f"{cap_path}: image ids {sorted(dup)[:5]} also appear in an earlier split")
        per_image: Dict[str, List[tuple]] = {k: [] for k in known}
        unknown = []
        for a in caps["annotations"]:
            img = str(a.get("image_id"))
            if img not in per_image:
                unknown.append((a.get("id"), a.get("image_id")))
                continue
            per_image[img].append((int(a.get("id", 0)), str(a.get("caption", ""))))
        if unknown:
            raise ValueError(f"{cap_path}: {len(unknown)} caption(s) refer to images not listed in its 'images', "
                             f"e.g. (caption id, image id) {unknown[:5]}")
        lab = np.zeros((len(images), len(class_names)), dtype=np.float32)
        row = {str(im["id"]): i for i, im in enumerate(images)}
        bad = []
        for a in ins["annotations"]:
            img, cat = str(a.get("image_id")), a.get("category_id")
            if img not in row:
                bad.append(("image", a.get("id"), img))
            elif int(cat) not in cat_index:
                bad.append(("category", a.get("id"), cat))
            else:
                lab[row[img], cat_index[int(cat)]] = 1.0
        if bad:
            raise ValueError(f"{ins_path}: {len(bad)} instance annotation(s) refer to unknown images or categories, "
                             f"e.g. {bad[:5]}")
        for im in images:
            k = str(im["id"])
            caps_k = sorted(per_image[k])
            image_ids.append(k)
            sentences[k] = [c for _, c in caps_k]
            caption_ids[k] = [str(i) for i, _ in caps_k]
            name = str(im.get("file_name", ""))
            files.append(_find_image(img_root, [f"{split}/{name}", name]) if name else None)
            subsets.append(split)
        label_rows.append(lab)
    if class_names is None:
        raise ValueError("read_coco_captions: no splits given")
    return _finish(image_ids, files, sentences, caption_ids, np.concatenate(label_rows), class_names, subsets,
                   unlabelled, str(root))


def read_caption_table(path: PathLike, image_root: Optional[PathLike] = None, label_separator: Optional[str] = None,
                       class_names: Optional[Sequence[str]] = None, unlabelled: str = "error") -> CaptionRecords:
    """Read the plain table layout (see the module docstring).

    ``class_names``: the label vocabulary in column order (default: every label name found, sorted); a label
    outside a given list is a ``ValueError``. ``label_separator``: ``;`` or ``|`` (default: detected).
    Images keep the order of their first row; sentences the row order.

    >>> rec = read_caption_table("iapr.tsv")                                     # doctest: +SKIP
    """
    path = require_file(path, TABLE_LAYOUT)
    text = path.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"{path}: empty file. Expected layout: {TABLE_LAYOUT}")
    delimiter = "\t" if "\t" in lines[0] else ","
    reader = csv.DictReader(lines, delimiter=delimiter)
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in ("image_id", "sentence", "labels") if c not in header]
    if missing:
        from ._common import MissingKeyError
        raise MissingKeyError(f"{path}: no column(s) {missing}; the header has {header}. Expected layout: "
                              f"{TABLE_LAYOUT}")
    img_root = Path(image_root).expanduser() if image_root is not None else path.parent
    order: List[str] = []
    sentences: Dict[str, List[str]] = {}
    caption_ids: Dict[str, List[str]] = {}
    label_sets: Dict[str, set] = {}
    file_col: Dict[str, Optional[str]] = {}
    for i, row in enumerate(reader, start=2):
        img = (row.get("image_id") or "").strip()
        if not img:
            raise ValueError(f"{path}: line {i} has no image_id")
        if None in row:
            raise ValueError(f"{path}: line {i} has more fields than the header ({len(header)}); quote sentences "
                             "that contain the delimiter")
        raw = (row.get("labels") or "").strip()
        sep = label_separator or ("|" if "|" in raw else ";")
        labels = {s.strip() for s in raw.split(sep) if s.strip()}
        if img not in sentences:
            order.append(img)
            sentences[img], caption_ids[img], label_sets[img] = [], [], labels
            file_col[img] = (row.get("file") or "").strip() or None
        elif labels != label_sets[img]:
            raise ValueError(f"{path}: line {i}: image {img} has labels {sorted(labels)} but an earlier line gave "
                             f"{sorted(label_sets[img])}; an image's labels must agree on every line")
        sentences[img].append(row.get("sentence") or "")
        caption_ids[img].append(f"line {i}")
    found = sorted(set().union(*label_sets.values())) if label_sets else []
    names = list(class_names) if class_names is not None else found
    index = {n: j for j, n in enumerate(names)}
    outside = sorted(set(found) - set(index))
    if outside:
        raise ValueError(f"{path}: labels {outside[:10]} are not in the given class_names")
    lab = np.zeros((len(order), len(names)), dtype=np.float32)
    for r, img in enumerate(order):
        for n in label_sets[img]:
            lab[r, index[n]] = 1.0
    files: List[Optional[Path]] = []
    for img in order:
        given = file_col[img]
        if given is not None:
            p = Path(given).expanduser()
            p = p if p.is_absolute() else img_root / p
            if not p.is_file():
                raise FileNotFoundError(f"{path}: image {img}: file {p} not found")
            files.append(p)
        else:
            files.append(_find_image(img_root, [f"{img}.jpg", f"{img}.png", f"{img}.jpeg"]))
    return _finish(order, files, sentences, caption_ids, lab, names, [""] * len(order), unlabelled, str(path))
