"""Helpers shared by the readers: file checks, error types, label conversion, row orientation, cache folder.

Private to :mod:`datamodules.readers`; every function raises with a message that names the file, the key and
what was expected, so that a reader built from them fails loudly and readably. A file that exists but cannot be
decoded (truncated, corrupted, or another format under the expected name) raises :class:`DamagedFileError`
through :func:`decoding`, the one place that turns the decoders' low-level exceptions (``zipfile.BadZipFile``,
h5py's ``OSError``, scipy's ``OSError`` / ``ValueError``, ``EOFError``, ...) into one readable error.
"""
from __future__ import annotations

import os
import struct
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterable, Iterator, Mapping, Optional, Sequence, Tuple, Type, Union

import numpy as np

PathLike = Union[str, os.PathLike]


class MissingKeyError(KeyError):
    """A ``KeyError`` whose message prints as plain text (``KeyError`` quotes its argument by default)."""

    def __str__(self) -> str:  # pragma: no cover - trivial
        return str(self.args[0]) if self.args else ""


class DamagedFileError(ValueError):
    """A file that exists but cannot be decoded: truncated, corrupted, or not in the format its name promises.

    A ``ValueError``; the decoder's own exception is chained as ``__cause__``.
    """


#: what the decoders raise on a truncated or corrupt file: h5py ``OSError`` ("truncated file", "file signature
#: not found"), ``zipfile.BadZipFile`` (``.npz``), scipy ``OSError`` ("could not read bytes"), ``EOFError``,
#: ``zlib.error`` (compressed members), ``struct.error``, and HDF5's ``RuntimeError`` on damaged object headers
DECODE_ERRORS: Tuple[Type[BaseException], ...] = (OSError, EOFError, zipfile.BadZipFile, zlib.error, struct.error,
                                                  RuntimeError)
#: raised inside a decoder but not about the file's content: passed through unchanged
_NOT_DAMAGE = (DamagedFileError, FileNotFoundError, IsADirectoryError, PermissionError, MemoryError)


def damaged_file(path: PathLike, what: str, cause: Union[BaseException, str], layout: str = "") -> DamagedFileError:
    """The :class:`DamagedFileError` for ``path``, which could not be decoded as ``what`` (e.g. ``"a .npz archive"``).

    ``cause``: the decoder's exception (its type and text are quoted) or a short reason.
    """
    p = Path(path)
    try:
        size = f"{p.stat().st_size} bytes"
    except OSError:
        size = "size unknown"
    reason = f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException) else str(cause)
    msg = (f"{p}: cannot be read as {what}; the file is damaged or truncated (an interrupted download or copy?), "
           f"or is not {what} ({size}; {reason})")
    if layout:
        msg += f". Expected layout: {layout}"
    return DamagedFileError(msg)


@contextmanager
def decoding(path: PathLike, what: str, layout: str = "",
             errors: Tuple[Type[BaseException], ...] = ()) -> Iterator[None]:
    """Run a decoder on ``path``; its low-level exceptions become a :class:`DamagedFileError` naming the file.

    Catches :data:`DECODE_ERRORS` plus ``errors`` (e.g. ``(Exception,)`` around scipy's MATLAB parser, which
    raises plain ``ValueError`` on malformed files), chaining the original. A missing file, a permission
    problem, ``MemoryError`` and an error already raised as ``DamagedFileError`` pass through unchanged, so wrap
    only the decoding calls, not the reader's own checks.

    >>> with decoding("x.npz", "a .npz archive"):                       # doctest: +SKIP
    ...     np.load("x.npz")
    """
    try:
        yield
    except _NOT_DAMAGE:
        raise
    except DECODE_ERRORS + tuple(errors) as e:
        raise damaged_file(path, what, e, layout) from e


def require_file(path: PathLike, layout: str) -> Path:
    """Return ``path`` as a :class:`Path`, or raise ``FileNotFoundError`` naming it and the expected layout.

    Parameters
    ----------
    path:
        the file that must exist.
    layout:
        a short description of the files and keys the reader expects, appended to the message.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        where = "is a folder, not a file" if p.is_dir() else "not found"
        raise FileNotFoundError(f"{p}: {where}. Expected layout: {layout}")
    return p


def require_dir(path: PathLike, layout: str) -> Path:
    """Return ``path`` as a :class:`Path`, or raise ``FileNotFoundError`` naming it and the expected layout."""
    p = Path(path).expanduser()
    if not p.is_dir():
        where = "is a file, not a folder" if p.is_file() else "not found"
        raise FileNotFoundError(f"{p}: {where}. Expected layout: {layout}")
    return p


def missing_key(source: PathLike, key: Union[str, Sequence[str]], found: Iterable[str], layout: str = "") -> MissingKeyError:
    """Build the ``KeyError`` raised when ``key`` is absent from ``source``: it lists the keys found."""
    want = key if isinstance(key, str) else " or ".join(repr(k) for k in key)
    if isinstance(key, str):
        want = repr(key)
    found = sorted(found)
    msg = f"{source}: no variable {want}; keys found: {found}"
    if layout:
        msg += f". Expected layout: {layout}"
    return MissingKeyError(msg)


def as_features(arr: np.ndarray, source: str, key: str) -> np.ndarray:
    """A numeric feature matrix as C-contiguous ``float32`` (raises on non-numeric input)."""
    arr = np.asarray(arr)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{source}: '{key}' must be numeric, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def orient_rows(arr: np.ndarray, n: int, source: str, key: str) -> np.ndarray:
    """Return a 2-d matrix with one row per item.

    MATLAB files store feature matrices either ``n x d`` or ``d x n`` (xlsa17's ``features`` is ``2048 x N``);
    the orientation is decided by which axis has ``n`` entries (rows win when both do). Anything else raises.
    """
    arr = np.asarray(arr)
    if arr.ndim == 1 and arr.shape[0] == n:
        return arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{source}: '{key}' must be a 2-d matrix with {n} rows, got shape {arr.shape}")
    if arr.shape[0] == n:
        return arr
    if arr.shape[1] == n:
        return arr.T
    raise ValueError(f"{source}: '{key}' has shape {arr.shape} but {n} items were expected (rows of the labels); "
                     "neither axis matches")


_LAYOUTS = {"NHWC": (0, 1, 2, 3), "NCHW": (0, 2, 3, 1), "HWCN": (3, 0, 1, 2), "CHWN": (3, 1, 2, 0),
            "NCWH": (0, 3, 2, 1), "WHCN": (3, 1, 0, 2)}


def images_to_nhwc(arr: np.ndarray, n: int, source: str, key: str, layout: str = "auto") -> np.ndarray:
    """Bring a 4-d image array into ``[n, H, W, C]``.

    ``layout`` names the axis order of ``arr`` as MATLAB sees it (after undoing the HDF5 transposition):
    ``"HWCN"`` (MATLAB's natural ``224x224x3xN``, the DCMH/DJSRH ``IAll``), ``"NHWC"``, ``"NCHW"``, ...
    ``"auto"`` picks the only one consistent with ``n`` items and a 1- or 3-channel axis, and raises when
    none or several differ in result.
    """
    arr = np.asarray(arr)
    if arr.ndim != 4:
        raise ValueError(f"{source}: '{key}' must be a 4-d image array, got shape {arr.shape}")
    if layout != "auto":
        if layout not in _LAYOUTS:
            raise ValueError(f"image_layout must be 'auto' or one of {sorted(_LAYOUTS)}, got {layout!r}")
        out = np.transpose(arr, _LAYOUTS[layout])
        if out.shape[0] != n:
            raise ValueError(f"{source}: '{key}' with layout {layout} has {out.shape[0]} images, expected {n}")
        return np.ascontiguousarray(out)
    # candidates consistent with n items and a channel axis of size 1 or 3
    candidates = []
    for name in ("HWCN", "NHWC", "NCHW", "NCWH", "CHWN", "WHCN"):
        perm = _LAYOUTS[name]
        shape = tuple(arr.shape[p] for p in perm)
        if shape[0] == n and shape[3] in (1, 3):
            candidates.append(name)
    if not candidates:
        raise ValueError(f"{source}: '{key}' has shape {arr.shape}; cannot find an image axis of length {n} and a "
                         "channel axis of length 1 or 3. Pass image_layout= explicitly")
    # layouts that only swap H and W are indistinguishable from the shape; prefer the conventional ones
    # (HWCN for MATLAB, then NHWC, then NCHW) as listed above, but refuse if the leading choices disagree on
    # which axis is the item axis.
    first = candidates[0]
    item_axes = {_LAYOUTS[c][0] for c in candidates}
    chan_axes = {_LAYOUTS[c][3] for c in candidates}
    if len(item_axes) > 1 or len(chan_axes) > 1:
        raise ValueError(f"{source}: '{key}' has shape {arr.shape}, which fits several image layouts {candidates}; "
                         "pass image_layout= explicitly")
    return np.ascontiguousarray(np.transpose(arr, _LAYOUTS[first]))


def as_modality(arr: np.ndarray, n: int, source: str, key: str, image_layout: str = "auto") -> np.ndarray:
    """A modality array with ``n`` rows: 4-d arrays are images (``[n, H, W, C]``, uint8 kept as uint8), 1-/2-d are
    feature matrices (``float32 [n, d]``, oriented by :func:`orient_rows`)."""
    arr = np.asarray(arr)
    if arr.ndim == 4:
        out = images_to_nhwc(arr, n, source, key, image_layout)
        return out if out.dtype == np.uint8 else as_features(out, source, key)
    return as_features(orient_rows(arr, n, source, key), source, key)


def class_indices(y: np.ndarray, num_classes: Optional[int], source: str, key: str,
                  base: Union[int, str] = "auto") -> np.ndarray:
    """Convert a column of integer class labels to ``int64`` class indices starting at 0.

    Parameters
    ----------
    y:
        ``[n]``, ``[n, 1]`` or ``[1, n]`` integer-valued labels.
    num_classes:
        when given, the indices must lie in ``[0, num_classes)``.
    base:
        the value of the first class in the file: ``0``, ``1`` (MATLAB), or ``"auto"``: 0 when the value 0
        occurs, else 1.
    """
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise ValueError(f"{source}: '{key}' must be a column of class labels, got shape {y.shape}")
    if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise ValueError(f"{source}: '{key}' must hold integer class labels, got dtype {y.dtype}")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or not np.array_equal(y, np.round(y)):
            raise ValueError(f"{source}: '{key}' must hold integer class labels, found non-integer or NaN values")
    y = y.astype(np.int64)
    if base == "auto":
        base = 0 if (y.size == 0 or (y == 0).any()) else 1
    if base not in (0, 1):
        raise ValueError(f"label base must be 0, 1 or 'auto', got {base!r}")
    y = y - base
    if y.size and y.min() < 0:
        raise ValueError(f"{source}: '{key}' has label {y.min() + base} below the first class {base}")
    if num_classes is not None and y.size and y.max() >= num_classes:
        raise ValueError(f"{source}: '{key}' has label {y.max() + base} but only {num_classes} classes "
                         f"(numbered from {base}) exist")
    return y


def multi_hot(L: np.ndarray, source: str, key: str) -> np.ndarray:
    """A ``[n, C]`` 0/1 label matrix as ``float32`` multi-hot; raises on any other value (NaN included)."""
    L = np.asarray(L)
    if L.ndim != 2:
        raise ValueError(f"{source}: '{key}' must be an [n, C] multi-hot label matrix, got shape {L.shape}")
    out = np.ascontiguousarray(L, dtype=np.float32)
    bad = ~((out == 0) | (out == 1))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{source}: '{key}' must be a 0/1 multi-hot matrix; found {L[r, c]!r} at row {r}, column "
                         f"{c} ({int(bad.any(axis=1).sum())} rows affected)")
    return out


def labels_auto(L: np.ndarray, n: int, source: str, key: str, base: Union[int, str] = "auto") -> np.ndarray:
    """Labels in either published form: a single column of class numbers -> ``int64 [n]`` indices from 0; a
    ``[n, C]`` (or ``[C, n]``) 0/1 matrix with ``C > 1`` -> ``float32`` multi-hot."""
    L = np.asarray(L)
    if L.ndim == 1 or (L.ndim == 2 and 1 in L.shape):
        return class_indices(L, None, source, key, base)
    return multi_hot(orient_rows(L, n, source, key), source, key)


def check_rows(source: str, **counts: int) -> None:
    """Raise ``ValueError`` when the named row counts differ (e.g. ``I_tr=2173, T_tr=2172``)."""
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"{k}: {v}" for k, v in counts.items())
        raise ValueError(f"{source}: row counts do not match ({listing}); every modality and the labels must have "
                         "one row per item")


def read_lines(path: Path) -> list:
    """Non-empty, right-stripped lines of a text file (UTF-8, tolerant of a missing final newline)."""
    with open(path, "r", encoding="utf-8") as f:
        return [ln.rstrip("\r\n") for ln in f if ln.strip()]


def numbered_names(path: Path, layout: str) -> list:
    """Read an AwA-style list ``"   1\\tantelope"`` (1-based number, then the name) or a plain list of names."""
    names = []
    for i, line in enumerate(read_lines(require_file(path, layout)), start=1):
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            if int(parts[0]) != i:
                raise ValueError(f"{path}: line {i} is numbered {parts[0]}; expected {i} (numbers must run 1, 2, ...)")
            names.append(" ".join(parts[1:]))
        else:
            names.append(line.strip())
    return names


def subset_dict(d: Mapping[str, np.ndarray], keys: Sequence[str]) -> Dict[str, np.ndarray]:
    return {k: d[k] for k in keys if k in d}
