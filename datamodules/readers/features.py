"""Raw images -> feature vectors through a timm backbone, extracted once and cached on disk.

:func:`extract_features` runs a `timm <https://github.com/huggingface/pytorch-image-models>`_ model (created with
``num_classes=0``, i.e. its pooled penultimate features) over ``uint8 [n, H, W, C]`` images or image files and
returns ``float32 [n, d]``. The result is stored under the cache folder (``$LIGHTNING_HASH_CACHE`` or
``~/.cache/lightning_hash``) in ``features/``, keyed by the backbone name, the weights (pretrained flag and
checkpoint file), the input size and a hash of the input (array contents, or the files' paths, sizes and
modification times), so a second call with the same input returns the stored array without the model.

Pretrained weights and no network
---------------------------------
``timm.create_model(name, pretrained=True)`` downloads weights from the Hugging Face Hub. Without a network
and without the weights in the local cache this fails; :func:`create_backbone` then raises
:class:`PretrainedWeightsUnavailable` explaining the three ways out: copy the Hub cache
(``huggingface-cli download timm/<model>`` on a connected machine, then copy ``~/.cache/huggingface``), pass
``checkpoint=<file>`` (timm's ``pretrained_cfg_overlay=dict(file=...)``), or choose ``pretrained=False``
explicitly (random weights: fine for testing a pipeline, meaningless as retrieval features). Setting
``HF_HUB_OFFLINE=1`` makes the failure immediate instead of after the Hub client's retries.

Images are resized (no crop) to the model's input size (or ``image_size``), scaled to [0, 1] and normalised with
the model's mean and std; grey images are repeated to three channels.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from lightning_hash.cache import array_fingerprint, file_fingerprint, resolve_cache_dir

from ..arrays import DatasetArrays
from ._common import MissingKeyError, PathLike

__all__ = ["PretrainedWeightsUnavailable", "create_backbone", "extract_features", "featurize"]


# The one timm factory of the project lives in the library's layers; re-exported here for the readers' users.
from lightning_hash.nn.backbone import PretrainedWeightsUnavailable, create_backbone  # noqa: E402


def _input_key(images) -> str:
    if isinstance(images, np.ndarray):
        return "array:" + array_fingerprint(images)
    return "files:" + file_fingerprint(images)


def _to_batch(chunk, size: int, mean, std, torch, F):
    """A normalised float batch ``[b, 3, size, size]`` from uint8 arrays or image files."""
    if isinstance(chunk, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(chunk))
        if x.ndim == 3:
            x = x[..., None]
        x = x.permute(0, 3, 1, 2).float() / 255.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    else:
        from PIL import Image

        arrs = []
        for p in chunk:
            with Image.open(p) as im:
                arrs.append(np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR)))
        x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float() / 255.0
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


def extract_features(images: Union[np.ndarray, Sequence[PathLike]], backbone: str = "resnet50", *,
                     pretrained: bool = True, checkpoint: Optional[PathLike] = None, image_size: Optional[int] = None,
                     batch_size: int = 128, device: Optional[str] = None,
                     cache: Union[bool, PathLike] = True) -> np.ndarray:
    """Features of ``images`` from a timm backbone, cached on disk.

    Parameters
    ----------
    images:
        ``uint8 [n, H, W, C]`` (``C`` 1 or 3) or ``[n, H, W]`` array, or a sequence of image file paths.
    backbone:
        timm model name.
    pretrained, checkpoint:
        see :func:`create_backbone`; with ``pretrained=False`` a warning reminds that the features are random.
    image_size:
        side of the square network input; default: the model's own input size.
    batch_size, device:
        inference batch size and device (default ``"cuda"`` when available, else ``"cpu"``).
    cache:
        ``True``: the user cache folder; a folder: cache there; ``False``: no cache.

    Returns
    -------
    numpy.ndarray
        ``float32 [n, d]``.

    Example
    -------
    >>> feats = extract_features(cifar.modalities["image"], "resnet50")          # doctest: +SKIP
    >>> feats.shape                                                             # doctest: +SKIP
    (60000, 2048)
    """
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
            raise ValueError(f"images must be uint8 [n, H, W, C] with C in (1, 3) or [n, H, W], got "
                             f"{images.dtype} {images.shape}")
        n = images.shape[0]
    else:
        images = [Path(p).expanduser() for p in images]
        missing = [str(p) for p in images if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"image files not found: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        n = len(images)
    if checkpoint is None and not pretrained:
        warnings.warn(f"extracting features with randomly initialised {backbone!r} (pretrained=False): fine for "
                      "testing a pipeline, not for reporting retrieval results", stacklevel=2)
    cdir = resolve_cache_dir(cache)
    cfile = None
    if cdir is not None:
        wkey = ("checkpoint", file_fingerprint([checkpoint])) if checkpoint is not None else ("pretrained", pretrained)
        key = file_fingerprint([], backbone, wkey, image_size, _input_key(images), "v1")
        cfile = cdir / "features" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', backbone)}-{key}.npy"
        if cfile.is_file():
            try:
                feats = np.load(cfile, allow_pickle=False)
                if feats.ndim == 2 and feats.shape[0] == n:
                    return feats
            except Exception:
                pass
            warnings.warn(f"ignoring unreadable feature cache {cfile}; extracting again")
    import torch
    import torch.nn.functional as F

    model = create_backbone(backbone, pretrained=pretrained, checkpoint=checkpoint)
    cfg = model.pretrained_cfg or {}
    size = int(image_size or cfg.get("input_size", (3, 224, 224))[-1])
    mean = cfg.get("mean", (0.485, 0.456, 0.406))
    std = cfg.get("std", (0.229, 0.224, 0.225))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(dev)
    out = []
    with torch.inference_mode():
        for i in range(0, n, batch_size):
            x = _to_batch(images[i:i + batch_size], size, mean, std, torch, F).to(dev)
            out.append(model(x).float().cpu().numpy())
    feats = np.concatenate(out) if out else np.zeros((0, model.num_features), np.float32)
    if not np.isfinite(feats).all():
        raise ValueError(f"backbone {backbone!r} produced NaN/inf features")
    if cfile is not None:
        try:
            cfile.parent.mkdir(parents=True, exist_ok=True)
            tmp = cfile.with_name(cfile.name + f".tmp{os.getpid()}")
            with open(tmp, "wb") as f:
                np.save(f, feats)
            os.replace(tmp, cfile)
        except OSError as e:
            warnings.warn(f"could not write the feature cache {cfile} ({e})")
    return feats


def featurize(arrays: DatasetArrays, backbone: str = "resnet50", *, modality: str = "image",
              **kwargs) -> DatasetArrays:
    """Return a copy of ``arrays`` whose raw-image ``modality`` is replaced by its backbone features.

    Keyword arguments go to :func:`extract_features`.
    """
    if modality not in arrays.modalities:
        raise MissingKeyError(f"{arrays.source}: no modality {modality!r}; found {sorted(arrays.modalities)}")
    feats = extract_features(arrays.modalities[modality], backbone, **kwargs)
    return replace(arrays, modalities={**arrays.modalities, modality: feats})
