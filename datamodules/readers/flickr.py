"""MIRFlickr-25K and NUS-WIDE in the layouts the DCMH and DJSRH authors distribute.

Two published layouts are read, each in MATLAB v5 or v7.3 (HDF5, transposed) form:

* **separate files** (DJSRH's "Cleared-Set", DCMH's per-variable files), in ``root`` or in sub-folders of it
  (the Cleared-Set ships them as ``LAll/``, ``YAll/``, ``IAll/``)::

      <prefix>-lall.mat   LAll  n x C   0/1 labels (MIRFlickr: 20,015 x 24; NUS-WIDE TC-10: n x 10)
      <prefix>-yall.mat   YAll  n x V   bag-of-words tags (MIRFlickr: 1,386 words)
      <prefix>-iall.mat   IAll  224 x 224 x 3 x n uint8 images (v7.3: HDF5 shape n x 3 x 224 x 224)
      <prefix>-xall*.mat  XAll  n x d   pre-extracted image features (optional alternative to IAll)
      <prefix>-fall.mat   FAll  image file names (optional; not read)

  with ``<prefix>`` ``mirflickr25k`` or ``nus-wide-tc10`` (``nus-wide-tc21``, ...);
* **one file** (DCMH's ``FLICKR-25K.mat``): ``images`` (or ``IAll`` / ``XAll``), ``YAll``, ``LAll``.

The readers return ``image`` (uint8 ``[n, H, W, 3]`` for raw images, float32 ``[n, d]`` for features) and
``text`` (float32 ``[n, V]``) modalities and float32 multi-hot labels. The files carry no class names, so
classes are named ``class_00``, ``class_01``, ... unless ``class_names=`` is given. No split is published with
these files (``fixed_splits`` is empty): the DJSRH / DCMH protocols draw one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..arrays import DatasetArrays
from ._common import PathLike, as_features, as_modality, labels_auto, missing_key, orient_rows
from .mat import load_mat, mat_keys, to_dense

__all__ = ["read_dcmh", "read_mirflickr", "read_nuswide"]

IMAGE_KEYS = ("IAll", "images", "I_all")
FEATURE_KEYS = ("XAll",)


def _layout(prefix: str, single: Sequence[str]) -> str:
    return (f"either the separate files {prefix}-lall.mat (LAll, n x C labels), {prefix}-yall.mat (YAll, n x V "
            f"tags) and {prefix}-iall.mat (IAll images) or {prefix}-xall*.mat (XAll features), in the folder or "
            f"its sub-folders; or one file {' / '.join(single) or '<name>.mat'} holding images (or IAll / XAll), "
            "YAll and LAll; MATLAB v5 or v7.3")


def _find(root: Path, pattern: str) -> List[Path]:
    hits = sorted(root.glob(pattern)) + sorted(root.glob(f"*/{pattern}"))
    return [h for h in hits if h.is_file()]


def _pick_n(L: np.ndarray, other: np.ndarray) -> int:
    """Number of items: the axis of the label matrix that also occurs in the other (text) matrix."""
    L = np.asarray(L)
    if L.ndim == 1:
        return L.shape[0]
    for ax in (0, 1):
        if L.shape[ax] in getattr(other, "shape", ()):
            return L.shape[ax]
    return L.shape[0]


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


def read_dcmh(root: PathLike, *, prefix: Optional[str] = None, single_files: Sequence[str] = (),
              image: str = "auto", features_file: Optional[PathLike] = None, image_layout: str = "auto",
              class_names: Optional[Sequence[str]] = None, name: str = "dataset") -> DatasetArrays:
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
        ``"raw"`` (``IAll`` / ``images``), ``"features"`` (``XAll``) or ``"auto"`` (raw when present, else features).
    features_file:
        the ``.mat`` holding ``XAll`` when several ``<prefix>-xall*.mat`` exist.
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
    root = Path(root).expanduser()
    layout = _layout(prefix or "<prefix>", single_files)
    if root.is_file():
        return _read_single(root, image, features_file, image_layout, class_names, name, layout)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not found. Expected layout: {layout}")
    lall = _find(root, f"{prefix}-lall.mat" if prefix else "*-lall.mat")
    if not lall:
        for s in single_files:
            if (root / s).is_file():
                return _read_single(root / s, image, features_file, image_layout, class_names, name, layout)
        raise FileNotFoundError(f"{root}: no {(prefix or '<prefix>') + '-lall.mat'} file"
                                f"{' and no ' + ' / '.join(single_files) if single_files else ''} found. "
                                f"Expected layout: {layout}")
    if len(lall) > 1:
        raise ValueError(f"{root}: several label files found ({[str(p) for p in lall]}); pass prefix= to choose one")
    prefix = prefix or lall[0].name[: -len("-lall.mat")]
    layout = _layout(prefix, single_files)
    srcs: Dict[str, Path] = {"labels": lall[0]}
    yall = _find(root, f"{prefix}-yall.mat")
    if not yall:
        raise FileNotFoundError(f"{root / (prefix + '-yall.mat')}: not found. Expected layout: {layout}")
    srcs["text"] = yall[0]
    iall = _find(root, f"{prefix}-iall.mat")
    if features_file is not None:
        xall = [Path(features_file).expanduser()]
    else:
        xall = _find(root, f"{prefix}-xall*.mat")
    if image == "raw" or (image == "auto" and iall):
        if not iall:
            raise FileNotFoundError(f"{root / (prefix + '-iall.mat')}: not found (image='raw'). Expected layout: {layout}")
        srcs["image"], img_keys = iall[0], IMAGE_KEYS
    else:
        if not xall:
            raise FileNotFoundError(f"{root}: neither {prefix}-iall.mat (IAll) nor {prefix}-xall*.mat (XAll) found. "
                                    f"Expected layout: {layout}")
        if len(xall) > 1:
            raise ValueError(f"{root}: several feature files found ({[str(p) for p in xall]}); pass features_file=")
        srcs["image"], img_keys = xall[0], FEATURE_KEYS
    labels_raw = load_mat(srcs["labels"], ["LAll"], layout=layout)["LAll"]
    text_raw = load_mat(srcs["text"], ["YAll"], layout=layout)["YAll"]
    found = mat_keys(srcs["image"], layout)
    key = next((k for k in img_keys if k in found), None)
    if key is None:
        raise missing_key(srcs["image"], img_keys[0] if len(img_keys) == 1 else list(img_keys), found, layout)
    srcs["image_key"] = key  # type: ignore[assignment]
    image_raw = load_mat(srcs["image"], [key], layout=layout)[key]
    return _assemble(name, labels_raw, text_raw, image_raw, srcs, image_layout, class_names)


def _read_single(path: Path, image: str, features_file, image_layout: str, class_names, name: str,
                 layout: str) -> DatasetArrays:
    found = mat_keys(path, layout)
    for k in ("LAll", "YAll"):
        if k not in found:
            raise missing_key(path, k, found, layout)
    raw_key = next((k for k in IMAGE_KEYS if k in found), None)
    feat_key = next((k for k in FEATURE_KEYS if k in found), None)
    srcs: Dict[str, object] = {"labels": path, "text": path, "image": path}
    if features_file is not None and image != "raw":
        srcs["image"] = Path(features_file).expanduser()
        ffound = mat_keys(srcs["image"], layout)
        if "XAll" not in ffound:
            raise missing_key(srcs["image"], "XAll", ffound, layout)
        key = "XAll"
    elif image == "raw" or (image == "auto" and raw_key):
        if raw_key is None:
            raise missing_key(path, list(IMAGE_KEYS), found, layout)
        key = raw_key
    else:
        if feat_key is None:
            raise missing_key(path, list(IMAGE_KEYS + FEATURE_KEYS), found, layout)
        key = feat_key
    srcs["image_key"] = key
    data = load_mat(path, ["LAll", "YAll"], layout=layout)
    image_raw = load_mat(srcs["image"], [key], layout=layout)[key]
    return _assemble(name, data["LAll"], data["YAll"], image_raw, srcs, image_layout, class_names)  # type: ignore[arg-type]


def read_mirflickr(root: PathLike, *, image: str = "auto", prefix: str = "mirflickr25k",
                   features_file: Optional[PathLike] = None, image_layout: str = "auto",
                   class_names: Optional[Sequence[str]] = None) -> DatasetArrays:
    """MIRFlickr-25K (DCMH/DJSRH cleaned set, 20,015 pairs, 24 labels, 1,386 tags).

    Reads ``mirflickr25k-{lall,yall,iall}.mat`` (or ``mirflickr25k-xall*.mat`` features) or the single
    ``FLICKR-25K.mat``; see :func:`read_dcmh` for the arguments.

    Example
    -------
    >>> arrays = read_mirflickr("data/mirflickr")                   # doctest: +SKIP
    >>> arrays.modalities["image"].shape, arrays.labels.shape       # doctest: +SKIP
    ((20015, 224, 224, 3), (20015, 24))
    """
    return read_dcmh(root, prefix=prefix, single_files=("FLICKR-25K.mat", "mirflickr25k.mat"), image=image,
                     features_file=features_file, image_layout=image_layout, class_names=class_names,
                     name="MIRFlickr-25K")


def read_nuswide(root: PathLike, *, image: str = "auto", prefix: Optional[str] = None,
                 features_file: Optional[PathLike] = None, image_layout: str = "auto",
                 class_names: Optional[Sequence[str]] = None) -> DatasetArrays:
    """NUS-WIDE (DJSRH/DCMH TC-10 or TC-21 subsets) in the same layout as :func:`read_mirflickr`.

    Files ``nus-wide-tc10-{lall,yall,iall}.mat`` (any ``<prefix>-lall.mat``; pass ``prefix=`` when several
    exist) or a single ``NUS-WIDE.mat`` / ``nus-wide-tc10.mat`` with ``images``/``IAll``/``XAll``, ``YAll``,
    ``LAll``.
    """
    return read_dcmh(root, prefix=prefix, single_files=("NUS-WIDE.mat", "nus-wide-tc10.mat", "nus-wide.mat"),
                     image=image, features_file=features_file, image_layout=image_layout,
                     class_names=class_names, name="NUS-WIDE")
