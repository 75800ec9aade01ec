"""Small file helpers of the data layer: where the shared data lives, and the records written beside a run
(split, vocabulary)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Union


def data_dir() -> Path:
    """The shared data folder: ``$LIGHTNING_HASH_DATA``, else ``../shared/data`` relative to the repository."""
    env = os.environ.get("LIGHTNING_HASH_DATA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def default_root(*parts: str) -> Path:
    """``data_dir() / parts`` (resolved)."""
    return (data_dir().joinpath(*parts)).resolve()


def write_text_atomic(path: Union[str, os.PathLike], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def read_json(path: Union[str, os.PathLike], what: str) -> Any:
    """The JSON content of ``path``; ``FileNotFoundError`` / ``ValueError`` naming ``what`` (e.g. "split file")."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a lightning-hash {what} (invalid JSON: {err})") from None
