"""MIRFlickr-25K and NUS-WIDE in the layouts the DCMH and DJSRH authors distribute.

Two published layouts are read, each in MATLAB v5 or v7.3 (HDF5, transposed) form:

* **separate files** (DJSRH's "Cleared-Set", DCMH's per-variable files), in ``root`` or in sub-folders of it
  (the Cleared-Set ships them as ``LAll/``, ``YAll/``, ``IAll/``)::

      <prefix>-lall.mat       LAll  n x C   0/1 labels (MIRFlickr: 20,015 x 24; NUS-WIDE TC-10: n x 10)
      <prefix>-yall.mat       YAll  n x V   bag-of-words tags (MIRFlickr: 1,386 words)
      <prefix>-iall.mat       IAll  224 x 224 x 3 x n uint8 images (v7.3: HDF5 shape n x 3 x 224 x 224)
      <prefix>-iall-<net>.mat XAll  n x d   pre-extracted image features, e.g. mirflickr25k-iall-vgg.mat
                                            (n x 4096 VGG fc7, the DCMH line's feature release)
      <prefix>-xall*.mat      XAll  n x d   pre-extracted image features, e.g. nus-wide-tc10-xall-vgg.mat
      <prefix>-fall.mat       FAll  image file names (optional; not read)

  with ``<prefix>`` ``mirflickr25k`` or ``nus-wide-tc10`` (``nus-wide-tc21``, ...). The same files also come as
  a **-rand set**, the rows shuffled once in the same order for every file: ``<prefix>-lall-rand.mat``,
  ``<prefix>-yall-rand.mat``, ``<prefix>-iall-vgg-rand.mat`` (``file_set="rand"``; chosen automatically when
  only that set is there, or when ``features_file`` names a ``*-rand.mat``). Files of the two sets are never
  mixed: their rows are in different orders;
* **one file** (DCMH's ``FLICKR-25K.mat``): ``images`` (or ``IAll`` / ``XAll``), ``YAll``, ``LAll``.

``features_file`` / ``labels_file`` / ``text_file`` name the files explicitly (a bare name is looked up in
``root`` and its sub-folders, then taken as given); the variable inside a features file is found among
:data:`FEATURE_FILE_KEYS` (``XAll``, ``IAll``, ...) unless ``features_key`` names it.

The readers return ``image`` (uint8 ``[n, H, W, 3]`` for raw images, float32 ``[n, d]`` for features) and
``text`` (float32 ``[n, V]``) modalities and float32 multi-hot labels. The files carry no class names, so
classes are named ``class_00``, ``class_01``, ... unless ``class_names=`` is given. No split is published with
these files (``fixed_splits`` is empty): the DJSRH / DCMH protocols draw one.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..arrays import DatasetArrays
from ._common import PathLike, as_features, as_modality, labels_auto, missing_key, orient_rows
from .mat import load_mat, mat_keys, to_dense

__all__ = ["read_dcmh", "read_mirflickr", "read_nuswide", "FEATURE_FILE_KEYS", "FILE_SETS"]

IMAGE_KEYS = ("IAll", "images", "I_all")
FEATURE_KEYS = ("XAll",)
#: variables looked for, in this order, in a features file (``features_file=``, ``*-iall-<net>.mat``, ``*-xall*.mat``)
FEATURE_FILE_KEYS = FEATURE_KEYS + IMAGE_KEYS
#: the published file sets and the suffix of their file names
FILE_SETS = {"plain": "", "rand": "-rand"}


def _layout(prefix: str, single: Sequence[str]) -> str:
    return (f"either the separate files {prefix}-lall.mat (LAll, n x C labels), {prefix}-yall.mat (YAll, n x V "
            f"tags) and {prefix}-iall.mat (IAll images) or {prefix}-iall-<net>.mat / {prefix}-xall*.mat (XAll "
            f"features), in the folder or its sub-folders (or the same names ending in -rand.mat: the shuffled "
            f"-rand set); or one file {' / '.join(single) or '<name>.mat'} holding images (or IAll / XAll), "
            "YAll and LAll; MATLAB v5 or v7.3")


def _find(root: Path, pattern: str) -> List[Path]:
    hits = sorted(root.glob(pattern)) + sorted(root.glob(f"*/{pattern}"))
    return [h for h in hits if h.is_file()]


def _is_rand(path: Path) -> bool:
    return path.name.lower().endswith("-rand.mat")


def _pick_n(L: np.ndarray, other: np.ndarray) -> int:
    """Number of items: the axis of the label matrix that also occurs in the other (text) matrix."""
    L = np.asarray(L)
    if L.ndim == 1:
        return L.shape[0]
    for ax in (0, 1):
        if L.shape[ax] in getattr(other, "shape", ()):
            return L.shape[ax]
    return L.shape[0]


def _resolve_file(folder: Path, given: PathLike, what: str, layout: str) -> Path:
    """A file named by the user: absolute, or a name looked up in ``folder`` and its sub-folders, else as given."""
    p = Path(given).expanduser()
    if p.is_absolute():
        if p.is_file():
            return p
        raise FileNotFoundError(f"{what}={str(given)!r}: {p} not found. Expected layout: {layout}")
    hits: List[Path] = []
    if folder.is_dir():
        hits = _find(folder, str(p)) if len(p.parts) == 1 else [folder / p] if (folder / p).is_file() else []
    if len(hits) > 1:
        raise ValueError(f"{what}={str(given)!r} matches several files ({[str(h) for h in hits]}); give its path")
    if hits:
        return hits[0]
    if p.is_file():
        return p
    raise FileNotFoundError(f"{what}={str(given)!r}: not found in {folder} (nor in its sub-folders) nor at {p}. "
                            f"Expected layout: {layout}")


def _image_key(path: Path, keys: Sequence[str], given_key: Optional[str], layout: str) -> str:
    found = mat_keys(path, layout)
    if given_key is not None:
        if given_key not in found:
            raise missing_key(path, given_key, found, layout)
        return given_key
    key = next((k for k in keys if k in found), None)
    if key is None:
        raise missing_key(path, keys[0] if len(keys) == 1 else list(keys), found,
                          layout + "; name the variable with features_key=")
    return key


def _assemble(name: str, labels_raw, text_raw, image_raw, srcs: Dict[str, Path], image_layout: str,
              class_names: Optional[Sequence[str]]) -> DatasetArrays:
    text_raw = to_dense(text_raw)
    n = _pick_n(labels_raw, text_raw)
    labels = labels_auto(labels_raw, n, str(srcs["labels"]), "LAll")
    text = as_features(orient_rows(text_raw, n, str(srcs["text"]), "YAll"), str(srcs["text"]), "YAll")
    image = as_modality(to_dense(image_raw), n, str(srcs["image"]), srcs["image_key"], image_layout)
    num_classes = labels.shape[1] if labels.ndim == 2 else int(labels.max()) + 1
    if class_names is None:
        class_names = [f"class_{i:02d}" for i in range(num_classes)]
    elif len(class_names) != num_classes:
        raise ValueError(f"{name}: class_names has {len(class_names)} names but the labels have {num_classes} classes")
    source = "; ".join(sorted({str(v) for k, v in srcs.items() if k != "image_key"}))
    return DatasetArrays(modalities={"image": image, "text": text}, labels=labels, class_names=list(class_names),
                         source=source)


_PUBLISHED = re.compile(r".*-(lall|yall|iall|xall|fall)(-[^.]*)?\.mat$", re.IGNORECASE)


def _set_of(path: Path) -> Optional[str]:
    """``"rand"`` / ``"plain"`` for a file named as in a published set, ``None`` for a name of the user's own."""
    if _is_rand(path):
        return "rand"
    return "plain" if _PUBLISHED.match(path.name) else None


def _suffixes(file_set: str, given: Dict[str, Path]) -> Tuple[List[str], bool]:
    """The file-set suffixes to try, in order, and whether the set was decided by the user's files or option."""
    if file_set != "auto":
        return [FILE_SETS[file_set]], True
    sets = {_set_of(p) for p in given.values()} - {None}
    if len(sets) == 1:
        return [FILE_SETS[sets.pop()]], True
    return [FILE_SETS["plain"], FILE_SETS["rand"]], False   # none given (or a mix, refused by _check_one_set)


def _check_one_set(files: Dict[str, Path], suffix: str) -> None:
    """Refuse to mix files of the plain and the -rand set (same row count, rows in different orders)."""
    chosen = "rand" if suffix == FILE_SETS["rand"] else "plain"
    odd = {k: v for k, v in files.items() if _set_of(v) not in (None, chosen)}
    if odd:
        listing = ", ".join(f"{k} = {v.name}" for k, v in files.items())
        raise ValueError(f"the files mix the plain and the -rand file sets ({listing}); their rows are in different "
                         f"orders, so items would be paired wrongly (the {chosen} set was chosen). Give every file "
                         "of one set (labels_file=, text_file=, features_file=) or choose the set with "
                         "file_set='plain' / 'rand'")


def read_dcmh(root: PathLike, *, prefix: Optional[str] = None, single_files: Sequence[str] = (),
              image: str = "auto", features_file: Optional[PathLike] = None, features_key: Optional[str] = None,
              labels_file: Optional[PathLike] = None, text_file: Optional[PathLike] = None,
              file_set: str = "auto", image_layout: str = "auto", class_names: Optional[Sequence[str]] = None,
              name: str = "dataset") -> DatasetArrays:
    """Read a tagged-image set in the DCMH/DJSRH ``.mat`` layout (see the module docstring).

    Parameters
    ----------
    root:
        the folder holding the files, or the single ``.mat`` file itself.
    prefix:
        file-name prefix of the separate files (``"mirflickr25k"``, ``"nus-wide-tc10"``); ``None``: the only
        ``*-lall.mat`` found.
    single_files:
        names of the one-file variant tried in ``root`` when the separate files are absent.
    image:
        ``"raw"`` (``IAll`` / ``images``), ``"features"`` (``XAll``) or ``"auto"`` (raw when present, else features;
        always the ``features_file`` when one is given).
    features_file:
        the ``.mat`` holding the image modality (e.g. ``mirflickr25k-iall-vgg.mat``); needed when several
        feature files exist. A bare name is looked up in ``root`` and its sub-folders.
    features_key:
        the variable of the features file (default: the first of :data:`FEATURE_FILE_KEYS` it holds).
    labels_file, text_file:
        the ``LAll`` / ``YAll`` files, when they are not ``<prefix>-lall.mat`` / ``<prefix>-yall.mat``.
    file_set:
        ``"plain"``, ``"rand"`` (the ``*-rand.mat`` files) or ``"auto"``: the set the given files belong to by
        their names (``*-rand.mat``: the -rand set, a published plain name: the plain set), else the plain set
        when its label file is there, else the -rand set. Files of both sets together raise ``ValueError``.
    image_layout:
        axis order of the raw image array as MATLAB sees it, ``"auto"`` (detected, e.g. ``HWCN``) or explicit.
    class_names:
        names of the label columns (the files carry none).

    Returns
    -------
    DatasetArrays
        modalities ``image`` and ``text``; float32 multi-hot labels ``[n, C]``; no fixed splits.
    """
    if image not in ("auto", "raw", "features"):
        raise ValueError(f"image must be 'auto', 'raw' or 'features', got {image!r}")
    if file_set not in ("auto",) + tuple(FILE_SETS):
        raise ValueError(f"file_set must be 'auto', 'plain' or 'rand', got {file_set!r}")
    if image == "raw" and features_file is not None:
        raise ValueError("image='raw' reads the raw IAll images, but features_file= names a features file; "
                         "give one of them")
    root = Path(root).expanduser()
    layout = _layout(prefix or "<prefix>", single_files)
    folder = root if root.is_dir() else root.parent
    given = {k: _resolve_file(folder, v, k, layout) for k, v in
             (("labels_file", labels_file), ("text_file", text_file), ("features_file", features_file))
             if v is not None}
    if root.is_file():
        return _read_single(root, image, given, features_key, image_layout, class_names, name, layout)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not found. Expected layout: {layout}")
    suffixes, decided = _suffixes(file_set, given)
    lall: List[Path] = []
    suffix = suffixes[0]
    for suffix in suffixes:
        if "labels_file" in given:
            lall = [given["labels_file"]]
        else:
            lall = _find(root, f"{prefix}-lall{suffix}.mat" if prefix else f"*-lall{suffix}.mat")
        if lall:
            break
    if not lall:
        for s in single_files:
            if (root / s).is_file():
                return _read_single(root / s, image, given, features_key, image_layout, class_names, name, layout)
        want = (prefix or "<prefix>") + f"-lall{suffix}.mat"
        if not decided:
            want = f"{(prefix or '<prefix>')}-lall.mat (nor -lall-rand.mat)"
        hint = ""
        if decided and suffix == "" and _find(root, f"{prefix or '*'}-lall-rand.mat"):
            hint = (" (the folder holds the -rand set: pass file_set='rand' if the given files follow its row "
                    "order, with labels_file= / text_file= if needed)")
        raise FileNotFoundError(f"{root}: no {want} file"
                                f"{' and no ' + ' / '.join(single_files) if single_files else ''} "
                                f"found{hint}. Expected layout: {layout}")
    if len(lall) > 1:
        raise ValueError(f"{root}: several label files found ({[str(p) for p in lall]}); pass prefix= to choose one")
    tail = f"-lall{suffix}.mat"
    if prefix is None and lall[0].name.endswith(tail):
        prefix = lall[0].name[: -len(tail)]
    layout = _layout(prefix or "<prefix>", single_files)
    srcs: Dict[str, Path] = {"labels": lall[0]}
    if "text_file" in given:
        srcs["text"] = given["text_file"]
    else:
        if prefix is None:
            raise FileNotFoundError(f"{root}: labels_file={lall[0].name} does not tell the file-name prefix; pass "
                                    f"text_file= (the YAll tags) or prefix=. Expected layout: {layout}")
        yall = _find(root, f"{prefix}-yall{suffix}.mat")
        if not yall:
            raise FileNotFoundError(f"{root / (prefix + f'-yall{suffix}.mat')}: not found. Expected layout: {layout}")
        srcs["text"] = yall[0]
    img_keys: Sequence[str] = FEATURE_FILE_KEYS
    if "features_file" in given:
        srcs["image"] = given["features_file"]
    else:
        if prefix is None:
            raise FileNotFoundError(f"{root}: labels_file={lall[0].name} does not tell the file-name prefix; pass "
                                    f"features_file= or prefix=. Expected layout: {layout}")
        iall = _find(root, f"{prefix}-iall{suffix}.mat")
        if image == "raw" or (image == "auto" and iall and features_key is None):
            if not iall:
                raise FileNotFoundError(f"{root / (prefix + f'-iall{suffix}.mat')}: not found (image='raw'). "
                                        f"Expected layout: {layout}")
            srcs["image"], img_keys = iall[0], IMAGE_KEYS
        else:
            xall = sorted(set(_find(root, f"{prefix}-xall*{suffix}.mat") + _find(root, f"{prefix}-iall-*{suffix}.mat")))
            if suffix == "":
                xall = [p for p in xall if not _is_rand(p)]
            if not xall:
                raise FileNotFoundError(f"{root}: neither {prefix}-iall{suffix}.mat (IAll) nor {prefix}-iall-<net>"
                                        f"{suffix}.mat / {prefix}-xall*{suffix}.mat (XAll) found. Expected layout: "
                                        f"{layout}")
            if len(xall) > 1:
                raise ValueError(f"{root}: several feature files found ({[str(p) for p in xall]}); pass "
                                 "features_file=")
            srcs["image"] = xall[0]
    _check_one_set({k: v for k, v in srcs.items()}, suffix)
    labels_raw = load_mat(srcs["labels"], ["LAll"], layout=layout)["LAll"]
    text_raw = load_mat(srcs["text"], ["YAll"], layout=layout)["YAll"]
    key = _image_key(srcs["image"], img_keys, features_key, layout)
    srcs["image_key"] = key  # type: ignore[assignment]
    image_raw = load_mat(srcs["image"], [key], layout=layout)[key]
    return _assemble(name, labels_raw, text_raw, image_raw, srcs, image_layout, class_names)


def _read_single(path: Path, image: str, given: Dict[str, Path], features_key: Optional[str], image_layout: str,
                 class_names, name: str, layout: str) -> DatasetArrays:
    found = mat_keys(path, layout)
    srcs: Dict[str, object] = {"labels": given.get("labels_file", path), "text": given.get("text_file", path),
                               "image": path}
    for k, what in (("LAll", "labels"), ("YAll", "text")):
        if srcs[what] == path and k not in found:
            raise missing_key(path, k, found, layout)
    raw_key = next((k for k in IMAGE_KEYS if k in found), None)
    feat_key = next((k for k in FEATURE_KEYS if k in found), None)
    if "features_file" in given:
        srcs["image"] = given["features_file"]
        key = _image_key(given["features_file"], FEATURE_FILE_KEYS, features_key, layout)
    elif features_key is not None and image != "raw":
        key = _image_key(path, FEATURE_FILE_KEYS, features_key, layout)
    elif image == "raw" or (image == "auto" and raw_key):
        if raw_key is None:
            raise missing_key(path, list(IMAGE_KEYS), found, layout)
        key = raw_key
    else:
        if feat_key is None:
            raise missing_key(path, list(IMAGE_KEYS + FEATURE_KEYS), found, layout)
        key = feat_key
    srcs["image_key"] = key
    labels_raw = load_mat(srcs["labels"], ["LAll"], layout=layout)["LAll"]  # type: ignore[arg-type]
    text_raw = load_mat(srcs["text"], ["YAll"], layout=layout)["YAll"]  # type: ignore[arg-type]
    image_raw = load_mat(srcs["image"], [key], layout=layout)[key]  # type: ignore[arg-type]
    return _assemble(name, labels_raw, text_raw, image_raw, srcs, image_layout, class_names)  # type: ignore[arg-type]


def read_mirflickr(root: PathLike, *, image: str = "auto", prefix: str = "mirflickr25k",
                   features_file: Optional[PathLike] = None, features_key: Optional[str] = None,
                   labels_file: Optional[PathLike] = None, text_file: Optional[PathLike] = None,
                   file_set: str = "auto", image_layout: str = "auto",
                   class_names: Optional[Sequence[str]] = None) -> DatasetArrays:
    """MIRFlickr-25K (DCMH/DJSRH cleaned set, 20,015 pairs, 24 labels, 1,386 tags).

    Reads ``mirflickr25k-{lall,yall,iall}.mat``, the VGG features ``mirflickr25k-iall-vgg.mat`` (``XAll``,
    n x 4096) or ``mirflickr25k-xall*.mat`` instead of the raw images, the ``-rand`` set
    (``mirflickr25k-{lall,yall,iall-vgg}-rand.mat``), or the single ``FLICKR-25K.mat``; see :func:`read_dcmh` for
    the arguments.

    Example
    -------
    >>> arrays = read_mirflickr("data/mirflickr")                   # doctest: +SKIP
    >>> arrays.modalities["image"].shape, arrays.labels.shape       # doctest: +SKIP
    ((20015, 224, 224, 3), (20015, 24))
    >>> read_mirflickr("data/mirflickr", features_file="mirflickr25k-iall-vgg.mat").modalities["image"].shape
    ... # doctest: +SKIP
    (20015, 4096)
    """
    return read_dcmh(root, prefix=prefix, single_files=("FLICKR-25K.mat", "mirflickr25k.mat"), image=image,
                     features_file=features_file, features_key=features_key, labels_file=labels_file,
                     text_file=text_file, file_set=file_set, image_layout=image_layout, class_names=class_names,
                     name="MIRFlickr-25K")


def read_nuswide(root: PathLike, *, image: str = "auto", prefix: Optional[str] = None,
                 features_file: Optional[PathLike] = None, features_key: Optional[str] = None,
                 labels_file: Optional[PathLike] = None, text_file: Optional[PathLike] = None,
                 file_set: str = "auto", image_layout: str = "auto",
                 class_names: Optional[Sequence[str]] = None) -> DatasetArrays:
    """NUS-WIDE (DJSRH/DCMH TC-10 or TC-21 subsets) in the same layout as :func:`read_mirflickr`.

    Files ``nus-wide-tc10-{lall,yall,iall}.mat`` (any ``<prefix>-lall.mat``; pass ``prefix=`` when several
    exist), the features ``nus-wide-tc10-xall-vgg.mat`` instead of the images, or a single ``NUS-WIDE.mat`` /
    ``nus-wide-tc10.mat`` with ``images``/``IAll``/``XAll``, ``YAll``, ``LAll``.
    """
    return read_dcmh(root, prefix=prefix, single_files=("NUS-WIDE.mat", "nus-wide-tc10.mat", "nus-wide.mat"),
                     image=image, features_file=features_file, features_key=features_key, labels_file=labels_file,
                     text_file=text_file, file_set=file_set, image_layout=image_layout, class_names=class_names,
                     name="NUS-WIDE")
