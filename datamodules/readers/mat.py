"""MATLAB ``.mat`` loading, one interface for both file versions.

* v4/v5/v7 files are read with :func:`scipy.io.loadmat`;
* v7.3 files are HDF5 and are read with :mod:`h5py`. HDF5 stores MATLAB's column-major arrays with the axes
  reversed (a MATLAB ``20015 x 1386`` matrix appears as ``1386 x 20015``; the DCMH/DJSRH image array ``IAll``,
  ``224 x 224 x 3 x 20015`` in MATLAB, appears as ``20015 x 3 x 224 x 224``). :func:`load_mat` undoes this, so a
  variable has the same MATLAB shape whichever version it came from. Cell arrays (object references into
  ``#refs#``), char arrays, logicals, structs and sparse matrices are decoded as well.

Example
-------
>>> from datamodules.readers.mat import load_mat, mat_keys            # doctest: +SKIP
>>> mat_keys("raw_features.mat")                                     # doctest: +SKIP
['I_te', 'I_tr', 'T_te', 'T_tr']
>>> load_mat("raw_features.mat", ["I_tr"])["I_tr"].shape             # doctest: +SKIP
(2173, 128)
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ._common import PathLike, damaged_file, decoding, missing_key, require_file

__all__ = ["is_v73", "mat_keys", "load_mat", "cell_to_list", "cellstr", "to_dense"]

_H5_SKIP = ("#refs#", "#subsystem#")


def is_v73(path: PathLike) -> bool:
    """``True`` when ``path`` is a MATLAB v7.3 (HDF5) file."""
    import h5py

    return bool(h5py.is_hdf5(str(path)))


_MAT = "a MATLAB .mat file"
_MI_COMPRESSED = 15


def _v5_truncation(path: Path) -> Optional[str]:
    """Where a MATLAB v5 file ends early, or ``None`` (also for v4 and non-MATLAB files, left to scipy).

    scipy's ``whosmat`` seeks past each variable without checking that its data are there, so a truncated file
    lists its first variables and silently loses the rest; walking the top-level tags (8 bytes each) finds the
    cut without reading the data.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(128)
        if len(head) < 4 or 0 in head[:4]:          # v4 (or not MATLAB): no v5 header
            return None
        if len(head) < 128:
            return "it ends inside the 128-byte MATLAB header"
        endian = {b"IM": "<", b"MI": ">"}.get(head[126:128])
        if endian is None:
            return None
        pos = 128
        while pos < size:
            fh.seek(pos)
            tag = fh.read(8)
            if len(tag) < 8:
                return f"it ends inside the header of a variable at byte {pos}"
            mtype, nbytes = struct.unpack(endian + "II", tag)
            if mtype >> 16:                          # small data element: its data sit in the tag
                pos += 8
                continue
            end = pos + 8 + nbytes
            if mtype != _MI_COMPRESSED:
                end += (-nbytes) % 8
            if pos + 8 + nbytes > size:
                return (f"a variable at byte {pos} holds {nbytes} bytes but the file ends {pos + 8 + nbytes - size} "
                        "bytes short of them")
            pos = end
    return None


def mat_keys(path: PathLike, layout: str = _MAT) -> List[str]:
    """Names of the variables stored in a ``.mat`` file (either version), without reading their data.

    A truncated or corrupt file raises :class:`~datamodules.readers._common.DamagedFileError` (a ``ValueError``)
    naming it.
    """
    p = require_file(path, layout)
    if is_v73(p):
        import h5py

        with decoding(p, "a MATLAB v7.3 (HDF5) .mat file", layout, errors=(KeyError,)):
            with h5py.File(p, "r") as f:
                return sorted(k for k in f.keys() if k not in _H5_SKIP)
    import scipy.io

    cut = _v5_truncation(p)
    if cut is not None:   # chain the error scipy gives when it reaches the cut (only on this failure path)
        cause: Optional[BaseException] = None
        try:
            scipy.io.loadmat(str(p))
        except Exception as e:  # noqa: BLE001 - any decoder failure is the evidence
            cause = e
        raise damaged_file(p, _MAT, cut, layout) from cause
    with decoding(p, _MAT, layout, errors=(Exception,)):   # scipy raises ValueError & co. on malformed files
        return sorted(name for name, _, _ in scipy.io.whosmat(str(p)))


def load_mat(path: PathLike, keys: Optional[Sequence[str]] = None, *, optional: Sequence[str] = (),
             layout: str = _MAT) -> Dict[str, Any]:
    """Load variables from a ``.mat`` file of any version, in MATLAB's own shapes.

    Parameters
    ----------
    path:
        the ``.mat`` file.
    keys:
        variables that must be present (``KeyError`` listing the keys found otherwise); ``None`` loads all.
    optional:
        variables loaded when present, silently absent otherwise.
    layout:
        description of the expected files and keys, used in error messages.

    Returns
    -------
    dict
        name -> value: numeric arrays (MATLAB shape, 2-d at least as MATLAB stores them), cell arrays as
        ``object`` arrays of MATLAB shape, char arrays as ``str`` (or ``object`` arrays of ``str``), structs as
        ``dict`` (v7.3) / record arrays (v5), sparse matrices as :mod:`scipy.sparse` matrices.

    Raises
    ------
    DamagedFileError
        (a ``ValueError``) for a truncated or corrupt file, or one that is not a MATLAB file, naming it.
    """
    p = require_file(path, layout)
    found = mat_keys(p, layout)
    wanted = list(found) if keys is None else list(keys)
    for k in wanted:
        if k not in found:
            raise missing_key(p, k, found, layout)
    wanted += [k for k in optional if k in found and k not in wanted]
    if is_v73(p):
        import h5py

        with decoding(p, "a MATLAB v7.3 (HDF5) .mat file", layout, errors=(KeyError,)):
            with h5py.File(p, "r") as f:
                return {k: _h5_value(f, f[k]) for k in wanted}
    import scipy.io

    with decoding(p, _MAT, layout, errors=(Exception,)):
        data = scipy.io.loadmat(str(p), variable_names=wanted, squeeze_me=False, chars_as_strings=True)
    return {k: data[k] for k in wanted}


def _h5_value(f, obj) -> Any:
    """Decode one HDF5 object written by MATLAB v7.3 into the value MATLAB would show."""
    import h5py

    mclass = obj.attrs.get("MATLAB_class", b"")
    if isinstance(mclass, bytes):
        mclass = mclass.decode()
    if isinstance(obj, h5py.Group):
        if "MATLAB_sparse" in obj.attrs:
            import scipy.sparse

            nrows = int(obj.attrs["MATLAB_sparse"])
            jc = obj["jc"][()].astype(np.int64)
            ir = obj["ir"][()].astype(np.int64) if "ir" in obj else np.zeros(0, np.int64)
            data = obj["data"][()] if "data" in obj else np.zeros(0)
            if data.dtype.names:  # complex
                data = data["real"] + 1j * data["imag"]
            return scipy.sparse.csc_matrix((data, ir, jc), shape=(nrows, len(jc) - 1))
        return {k: _h5_value(f, obj[k]) for k in obj.keys()}
    # dataset
    if obj.attrs.get("MATLAB_empty", 0):
        shape = tuple(int(s) for s in np.asarray(obj[()]).reshape(-1)[::-1]) or (0, 0)
        return np.zeros(shape, dtype=object if mclass == "cell" else np.float64)
    raw = obj[()]
    if isinstance(raw, np.ndarray) and raw.dtype == h5py.ref_dtype:
        arr = raw.T
        out = np.empty(arr.shape, dtype=object)
        for idx in np.ndindex(arr.shape):
            out[idx] = _h5_value(f, f[arr[idx]])
        return out
    arr = np.asarray(raw)
    if arr.dtype.names and set(arr.dtype.names) >= {"real", "imag"}:
        arr = arr["real"] + 1j * arr["imag"]
    arr = arr.T if arr.ndim > 1 else arr
    if mclass == "char":
        chars = arr.astype(np.uint32)
        if chars.ndim == 2 and chars.shape[0] == 1:
            return "".join(map(chr, chars[0]))
        if chars.ndim == 2:
            return np.array(["".join(map(chr, row)).rstrip("\x00") for row in chars], dtype=object)
        return "".join(map(chr, chars.reshape(-1)))
    if mclass == "logical":
        return arr.astype(bool)
    return arr


def cell_to_list(value: Any, source: str = "<mat>", key: str = "cell") -> List[Any]:
    """The elements of a MATLAB cell array (either version) in MATLAB's linear order (column-major)."""
    arr = np.asarray(value, dtype=object) if not isinstance(value, np.ndarray) else value
    if arr.dtype != object:
        raise ValueError(f"{source}: '{key}' must be a cell array, got a {arr.dtype} array of shape {arr.shape}")
    return list(arr.reshape(-1, order="F"))


def cellstr(value: Any, source: str = "<mat>", key: str = "cellstr") -> List[str]:
    """A MATLAB cell array of strings (e.g. xlsa17's ``allclasses_names``) as a list of ``str``."""
    out = []
    for i, item in enumerate(cell_to_list(value, source, key)):
        s = _as_str(item)
        if s is None:
            raise ValueError(f"{source}: element {i} of '{key}' is not a string (got {type(item).__name__} "
                             f"{getattr(item, 'shape', '')})")
        out.append(s)
    return out


def _as_str(item: Any) -> Optional[str]:
    if isinstance(item, str):
        return item
    if isinstance(item, bytes):
        return item.decode("utf-8")
    if isinstance(item, np.ndarray):
        if item.size == 0 and item.dtype.kind in "USO":
            return ""
        if item.dtype.kind in "US" and item.size == 1:
            v = item.reshape(-1)[0]
            return v.decode("utf-8") if isinstance(v, bytes) else str(v)
        if item.dtype == object and item.size == 1:
            return _as_str(item.reshape(-1)[0])
    return None


def to_dense(value: Any) -> np.ndarray:
    """A dense ndarray from a numeric MATLAB value (sparse matrices are densified)."""
    if hasattr(value, "toarray"):
        return value.toarray()
    return np.asarray(value)
