"""Small file helpers shared by the records the data layer writes beside a run (split, vocabulary)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Union


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
