"""The on-disk cache of derived arrays (extracted features, decoded images): where it lives and its keys.

Shared by ``lightning_hash`` (region features) and ``datamodules`` (readers that cache decoded or extracted
arrays); a key changes whenever its inputs (files, array contents, settings) change.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np

PathLike = Union[str, os.PathLike]

__all__ = ["default_cache_dir", "resolve_cache_dir", "file_fingerprint", "array_fingerprint", "file_sha256"]


def default_cache_dir() -> Path:
    """Cache folder: ``$LIGHTNING_HASH_CACHE``, else ``$XDG_CACHE_HOME/lightning_hash``, else ``~/.cache/lightning_hash``."""
    env = os.environ.get("LIGHTNING_HASH_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "lightning_hash"


def resolve_cache_dir(cache: Union[bool, PathLike, None]) -> Optional[Path]:
    """``True`` -> :func:`default_cache_dir`; ``False``/``None`` -> no cache; a path -> that folder."""
    if cache is True:
        return default_cache_dir()
    if cache is False or cache is None:
        return None
    return Path(cache).expanduser()


def file_fingerprint(paths: Iterable[PathLike], *extra: object) -> str:
    """A hex key from the resolved paths, sizes and modification times of ``paths`` plus ``extra`` values."""
    h = hashlib.blake2b(digest_size=10)
    for p in paths:
        p = Path(p).expanduser().resolve()
        st = p.stat()
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    for e in extra:
        h.update(f"{e!r}\n".encode())
    return h.hexdigest()


def array_fingerprint(arr: np.ndarray, *extra: object) -> str:
    """A hex key from the contents, shape and dtype of ``arr`` plus ``extra`` values."""
    arr = np.ascontiguousarray(arr)
    h = hashlib.blake2b(digest_size=10)
    h.update(f"{arr.shape}|{arr.dtype.str}\n".encode())
    flat = arr.reshape(-1).view(np.uint8)
    step = 1 << 24
    for i in range(0, flat.size, step):
        h.update(flat[i:i + step].data)
    for e in extra:
        h.update(f"{e!r}\n".encode())
    return h.hexdigest()


def file_sha256(path: PathLike) -> str:
    """The SHA-256 of a file's content, hex (provenance records: weights files, data bundles)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
