"""TVDB's image input: K salient regions + the whole image, each a feature vector with 4 box numbers.

Thesis of Y. Shen, chapter 4, section 4.3.1: region proposals of an RPN; the ``K`` proposals with the highest
attraction score ``a_k = (c_k + d_k) / 2`` (eq. 4.2; ``c_k`` the proposal's confidence in (0, 1), ``d_k`` its
normalised area share of the image) are kept, sorted by decreasing score; each region goes through a CNN
(AlexNet fc7, 4096-d) and gets four numbers appended: normalised height, width, centre x, centre y of its box;
the whole image's feature (box ``(1, 1, 0.5, 0.5)``) is appended last, giving ``K + 1`` vectors per image.

Pipeline (each step a small function, all of them tested)
---------------------------------------------------------
1. **Proposals** ``(boxes, confidence)`` per image, two sources:

   * ``proposals="rpn"`` (:func:`rpn_proposals`): the region proposal network of torchvision's Faster R-CNN
     (``fasterrcnn_resnet50_fpn``); ``confidence`` = the RPN's objectness probability after its NMS.
     Needs the detector's weights: ``rpn_weights="DEFAULT"`` (torchvision's COCO weights from its cache; no
     network here, so this raises :class:`RegionWeightsUnavailable` with the ways out), a local state-dict file,
     or ``None`` for random weights (runs the code path; the proposals mean nothing).
   * ``proposals="grid"`` (:func:`grid_boxes` + :func:`box_saliency`), the **weight-free fallback**: a fixed
     multi-scale grid of windows (default sides 1/2 and 3/4 of the image, each sliding with half-window steps:
     9 + 4 = 13 candidates), each scored by its mean saliency divided by the image's largest window mean
     (so ``c_k`` lies in [0, 1]). Saliency: ``"spectral_residual"`` (Hou & Zhang, CVPR 2007: the log amplitude
     spectrum minus its 3x3 local mean, back with the original phase, squared, Gaussian-blurred; on a 64x64 grey
     copy, resized back) for photographs, or ``"intensity"`` (the grey value itself: the ink of a digit).
2. **Selection** (:func:`select_regions`): attraction ``a_k = (c_k + d_k) / 2``, top ``K`` in decreasing order
   (ties keep the proposal order).
3. **Features**: ``feature="pixels:S"`` (the region resized to ``S x S`` by area averaging, grey or colour,
   flattened: a weight-free stand-in for a CNN, used by the digits default and the tests) or a timm backbone
   name (the region crop resized to the model input, its pooled features; pretrained weights as in
   :func:`lightning_hash.nn.backbone.create_backbone`).
4. **Sequence** (:func:`assemble_sequences`): ``[K + 1, D + 4]`` per image, regions in attraction order, whole
   image last.

**Fewer than K proposals** (an RPN may return fewer boxes after NMS; a grid with fewer than K windows):
``pad="whole"`` (default) fills the missing steps with copies of the whole-image vector, placed before the final
whole-image step, so the sequence keeps its length and holds only real content; ``pad="zeros"`` fills them
with zero vectors; ``pad="error"`` raises ``ValueError`` naming the images. The number of padded images is
returned in the info dict (and stored in the cache).

**Cache**: :func:`extract_regions` stores its result under ``<cache>/regions/`` (``$LIGHTNING_HASH_CACHE`` or
``~/.cache/lightning_hash``), keyed by a fingerprint of the input (array contents, or the image files' paths,
sizes and modification times) and every setting; a second call returns the stored array.

>>> import numpy as np
>>> imgs = np.random.RandomState(0).randint(0, 256, (2, 32, 32, 3), dtype=np.uint8)
>>> seq, info = extract_regions(imgs, k=5, feature="pixels:4", cache=False)
>>> seq.shape, info["padded_images"]
((2, 6, 52), 0)
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

PathLike = Union[str, os.PathLike]
#: the 4 numbers appended to every region feature (thesis section 4.3.1.2)
BOX_NUMBERS = ("height", "width", "centre_x", "centre_y")
PAD_MODES = ("whole", "zeros", "error")
CACHE_VERSION = "regions-v1"


class RegionWeightsUnavailable(RuntimeError):
    """The detector weights for RPN proposals could not be loaded (no network, empty torchvision cache)."""


# ============================================================================================== proposals
def grid_boxes(height: int, width: int, scales: Sequence[float] = (0.5, 0.75), step: float = 0.5) -> np.ndarray:
    """A fixed multi-scale grid of windows ``[P, 4]`` as ``(x0, y0, x1, y1)`` pixel boxes (x1, y1 exclusive).

    For every scale ``s`` the window is ``round(s * height) x round(s * width)`` pixels; windows slide by
    ``step`` times their size, the last one flush with the border; duplicates are removed, order kept.

    >>> grid_boxes(8, 8).astype(int).tolist()[:3]
    [[0, 0, 4, 4], [2, 0, 6, 4], [4, 0, 8, 4]]
    >>> len(grid_boxes(8, 8))
    13
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if not scales or any(not 0 < float(s) <= 1 for s in scales):
        raise ValueError(f"scales must be fractions in (0, 1], got {list(scales)}")
    if not 0 < float(step) <= 1:
        raise ValueError(f"step must lie in (0, 1], got {step}")
    boxes: List[Tuple[int, int, int, int]] = []
    for s in scales:
        bh, bw = max(1, int(round(s * height))), max(1, int(round(s * width)))

        def starts(size: int, box: int) -> List[int]:
            stride = max(1, int(round(step * box)))
            out = list(range(0, size - box + 1, stride))
            if out[-1] != size - box:
                out.append(size - box)
            return out
        for y in starts(height, bh):
            for x in starts(width, bw):
                b = (x, y, x + bw, y + bh)
                if b not in boxes:
                    boxes.append(b)
    return np.asarray(boxes, dtype=np.float32)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = F.pad(x[:, None], (radius, radius, 0, 0), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(x, k.view(1, 1, -1, 1))[:, 0]


def saliency_map(grey: torch.Tensor, method: str = "spectral_residual", size: int = 64) -> torch.Tensor:
    """Saliency ``[n, H, W]`` in [0, 1] of grey images ``[n, H, W]`` (see the module docstring).

    ``"intensity"``: the grey values scaled by each image's maximum; ``"spectral_residual"``: Hou & Zhang's
    spectral residual on a ``size x size`` copy, resized back. A constant image gives an all-zero map.
    """
    if grey.ndim != 3:
        raise ValueError(f"grey images must be [n, H, W], got shape {tuple(grey.shape)}")
    g = grey.double()
    if method == "intensity":
        sal = g - g.amin(dim=(1, 2), keepdim=True)
    elif method == "spectral_residual":
        h, w = g.shape[1:]
        small = F.interpolate(g[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
        spec = torch.fft.fft2(small)
        log_amp = torch.log(spec.abs() + 1e-12)
        residual = log_amp - F.avg_pool2d(F.pad(log_amp[:, None], (1, 1, 1, 1), mode="replicate"), 3, 1)[:, 0]
        sal = torch.fft.ifft2(torch.exp(residual + 1j * torch.angle(spec))).abs() ** 2
        sal = _gaussian_blur(sal, sigma=2.5)
        sal = F.interpolate(sal[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        sal = sal - sal.amin(dim=(1, 2), keepdim=True)
        constant = (g.amax(dim=(1, 2)) - g.amin(dim=(1, 2))) <= 1e-12
        sal[constant] = 0.0
    else:
        raise ValueError(f"saliency must be 'spectral_residual' or 'intensity', got {method!r}")
    top = sal.amax(dim=(1, 2), keepdim=True)
    return torch.where(top > 0, sal / top.clamp_min(1e-300), torch.zeros_like(sal)).float()


def box_saliency(saliency: torch.Tensor, boxes: np.ndarray) -> np.ndarray:
    """Confidence ``c_k`` ``[n, P]``: each box's mean saliency over the image's largest box mean (0 when all 0).

    ``saliency`` ``[n, H, W]``; ``boxes`` ``[P, 4]`` integer pixel boxes shared by every image.
    """
    s = saliency.double()
    integral = F.pad(s.cumsum(1).cumsum(2), (1, 0, 1, 0))
    b = np.asarray(boxes).astype(np.int64)
    x0, y0, x1, y1 = (torch.from_numpy(b[:, i]) for i in range(4))
    sums = integral[:, y1, x1] - integral[:, y0, x1] - integral[:, y1, x0] + integral[:, y0, x0]
    means = sums / ((x1 - x0) * (y1 - y0)).double()
    top = means.amax(dim=1, keepdim=True)
    conf = torch.where(top > 0, means / top.clamp_min(1e-300), torch.zeros_like(means))
    return conf.float().numpy()


# ============================================================================================== selection
def attraction_scores(confidence: np.ndarray, boxes: np.ndarray, height: Union[int, np.ndarray],
                      width: Union[int, np.ndarray]) -> np.ndarray:
    """Eq. (4.2): ``a_k = (c_k + d_k) / 2`` with ``d_k`` the box's area over the image's area.

    ``confidence`` ``[..., P]``, ``boxes`` ``[..., P, 4]`` (x0, y0, x1, y1); ``height``/``width`` scalars or
    per-image arrays broadcastable to ``[..., 1]``.

    >>> attraction_scores(np.array([0.8]), np.array([[0, 0, 4, 2]]), 4, 4).tolist()   # (0.8 + 8/16) / 2
    [0.65]
    """
    b = np.asarray(boxes, dtype=np.float64)
    area = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    d = area / (np.asarray(height, dtype=np.float64) * np.asarray(width, dtype=np.float64))
    return (np.asarray(confidence, dtype=np.float64) + d) / 2.0


def select_regions(scores: np.ndarray, valid: Optional[np.ndarray], k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Positions of the top-``k`` valid proposals per image, by decreasing score (stable for ties).

    Returns ``(index [n, k], present [n, k] bool)``; where an image has fewer than ``k`` valid proposals the
    tail of its row is ``present = False`` (index 0, to be padded by :func:`assemble_sequences`).

    >>> idx, ok = select_regions(np.array([[0.2, 0.9, 0.5]]), np.array([[True, True, False]]), 3)
    >>> idx.tolist(), ok.tolist()
    ([[1, 0, 0]], [[True, True, False]])
    """
    scores = np.asarray(scores, dtype=np.float64)
    if int(k) < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    valid = np.ones(scores.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    masked = np.where(valid, scores, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    present = np.take_along_axis(valid, order, axis=1) if order.size else np.zeros((scores.shape[0], k), bool)
    if order.shape[1] < k:             # fewer candidates than k at all
        pad = k - order.shape[1]
        order = np.concatenate([order, np.zeros((scores.shape[0], pad), np.int64)], axis=1)
        present = np.concatenate([present, np.zeros((scores.shape[0], pad), bool)], axis=1)
    return np.where(present, order, 0).astype(np.int64), present


def box_numbers(boxes: np.ndarray, height: Union[int, np.ndarray], width: Union[int, np.ndarray]) -> np.ndarray:
    """The 4 numbers of each box: normalised height, width, centre x, centre y (all in [0, 1]).

    >>> box_numbers(np.array([[0, 0, 4, 2]]), 4, 8).tolist()
    [[0.5, 0.5, 0.25, 0.25]]
    """
    b = np.asarray(boxes, dtype=np.float64)
    h = np.asarray(height, dtype=np.float64)
    w = np.asarray(width, dtype=np.float64)
    out = np.stack([(b[..., 3] - b[..., 1]) / h, (b[..., 2] - b[..., 0]) / w,
                    (b[..., 0] + b[..., 2]) / 2 / w, (b[..., 1] + b[..., 3]) / 2 / h], axis=-1)
    return out.astype(np.float32)


def assemble_sequences(region_features: np.ndarray, region_boxes: np.ndarray, present: np.ndarray,
                       whole_features: np.ndarray, height: Union[int, np.ndarray], width: Union[int, np.ndarray],
                       pad: str = "whole", names: Optional[Sequence[object]] = None) -> Tuple[np.ndarray, int]:
    """``[n, K + 1, D + 4]`` sequences: the K regions (feature + box numbers), then the whole image.

    ``region_features`` ``[n, K, D]``, ``region_boxes`` ``[n, K, 4]``, ``present`` ``[n, K]`` (False = no
    proposal: padded as ``pad`` says, see the module docstring), ``whole_features`` ``[n, D]``. Returns the
    sequences and the number of padded images.
    """
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
    feats = np.asarray(region_features, dtype=np.float32)
    n, k, d = feats.shape
    present = np.asarray(present, dtype=bool)
    h = np.asarray(height, dtype=np.float64).reshape(-1, 1) if np.ndim(height) else height
    w = np.asarray(width, dtype=np.float64).reshape(-1, 1) if np.ndim(width) else width
    whole_box = np.array([1.0, 1.0, 0.5, 0.5], dtype=np.float32)
    seq = np.zeros((n, k + 1, d + 4), dtype=np.float32)
    seq[:, :k, :d] = feats
    seq[:, :k, d:] = box_numbers(region_boxes, h, w)
    seq[:, k, :d] = whole_features
    seq[:, k, d:] = whole_box
    short = ~present.all(axis=1)
    if short.any():
        if pad == "error":
            bad = np.flatnonzero(short)
            label = [names[i] if names is not None else int(i) for i in bad[:5]]
            raise ValueError(f"{len(bad)} image(s) have fewer than K={k} region proposals (e.g. {label}, with "
                             f"{present[bad[0]].sum()} proposals); pass pad='whole' or pad='zeros' to pad them, "
                             "or lower K")
        missing = ~present
        seq[:, :k][missing] = seq[:, k][np.nonzero(missing)[0]] if pad == "whole" else 0.0
    return seq, int(short.sum())


# ============================================================================================== features
def _float_images(images: np.ndarray) -> torch.Tensor:
    """``uint8 [n, H, W(, C)]`` or float ``[n, H, W(, C)]`` in [0, 1] -> float ``[n, C, H, W]``."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        x = x.permute(0, 3, 1, 2)
    else:
        raise ValueError(f"images must be [n, H, W] or [n, H, W, C], got shape {tuple(images.shape)}")
    return x


def pixel_features(images: torch.Tensor, boxes: np.ndarray, size: int) -> np.ndarray:
    """Each box of each image resized to ``size x size`` by area averaging, flattened: ``[n, P, C*size*size]``.

    ``images`` float ``[n, C, H, W]``; ``boxes`` ``[n, P, 4]`` pixel boxes (or ``[P, 4]`` shared).
    """
    n = images.shape[0]
    b = np.asarray(boxes)
    if b.ndim == 2:
        b = np.broadcast_to(b, (n,) + b.shape)
    b = np.round(b).astype(np.int64)
    out = np.zeros((n, b.shape[1], images.shape[1] * size * size), dtype=np.float32)
    shared = b.shape[1] and bool((b == b[:1]).all())
    for p in range(b.shape[1]):
        if shared:
            x0, y0, x1, y1 = b[0, p]
            crop = images[:, :, y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
            out[:, p] = F.adaptive_avg_pool2d(crop, size).reshape(n, -1).numpy()
        else:
            for i in range(n):
                x0, y0, x1, y1 = b[i, p]
                crop = images[i:i + 1, :, y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
                out[i, p] = F.adaptive_avg_pool2d(crop, size).reshape(-1).numpy()
    return out


def _backbone_features(images: torch.Tensor, boxes: np.ndarray, backbone: str, pretrained: bool,
                       checkpoint: Optional[PathLike], batch_size: int = 64) -> Tuple[np.ndarray, np.ndarray]:
    """timm backbone features of every box crop ``[n, P, D]`` and of every whole image ``[n, D]``."""
    from lightning_hash.nn.backbone import create_backbone
    model = create_backbone(backbone, pretrained=pretrained, checkpoint=checkpoint)
    cfg = model.pretrained_cfg or {}
    side = int(cfg.get("input_size", (3, 224, 224))[-1])
    mean = torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1)
    std = torch.tensor(cfg.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1)
    n, _, H, W = images.shape
    b = np.round(np.asarray(boxes)).astype(np.int64)
    crops = []
    for i in range(n):
        img = images[i:i + 1].expand(-1, 3, -1, -1) if images.shape[1] == 1 else images[i:i + 1]
        for x0, y0, x1, y1 in list(b[i]) + [(0, 0, W, H)]:
            crop = img[:, :, y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
            crops.append(F.interpolate(crop, size=(side, side), mode="bilinear", align_corners=False))
    feats = []
    with torch.inference_mode():
        for j in range(0, len(crops), batch_size):
            x = (torch.cat(crops[j:j + batch_size]) - mean) / std
            feats.append(model(x).float().numpy())
    f = np.concatenate(feats).reshape(n, b.shape[1] + 1, -1)
    return f[:, :-1], f[:, -1]


# ============================================================================================== RPN
def rpn_proposals(images: torch.Tensor, weights: Union[str, PathLike, None] = "DEFAULT", max_proposals: int = 300,
                  min_size: int = 800, max_size: int = 1333) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Faster R-CNN RPN proposals of float images ``[n, C, H, W]`` in [0, 1]: per image ``(boxes [p, 4],
    objectness probability [p])`` in original pixel coordinates, sorted by decreasing objectness.

    ``weights``: ``"DEFAULT"`` (torchvision's COCO weights, from its cache; :class:`RegionWeightsUnavailable`
    when absent), a local state-dict file of ``fasterrcnn_resnet50_fpn``, or ``None`` (random weights: the code
    path runs, the proposals are meaningless).
    """
    from torchvision.models.detection import fasterrcnn_resnet50_fpn
    if weights is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, rpn_post_nms_top_n_test=max_proposals,
                                            min_size=min_size, max_size=max_size)
    elif isinstance(weights, str) and weights == "DEFAULT":
        try:
            model = fasterrcnn_resnet50_fpn(weights="DEFAULT", rpn_post_nms_top_n_test=max_proposals,
                                            min_size=min_size, max_size=max_size)
        except Exception as e:
            raise RegionWeightsUnavailable(
                f"Faster R-CNN weights for RPN proposals are not available ({type(e).__name__}: {e}). Ways out: "
                "(1) on a connected machine run torchvision.models.detection.fasterrcnn_resnet50_fpn(weights="
                "'DEFAULT') and copy ~/.cache/torch/hub/checkpoints (or set TORCH_HOME); (2) pass rpn_weights="
                "'/path/to/fasterrcnn_resnet50_fpn.pth' (a state dict); (3) use proposals='grid', the weight-free "
                "fallback") from e
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"rpn_weights: {path} not found (expected a fasterrcnn_resnet50_fpn state dict)")
        model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, rpn_post_nms_top_n_test=max_proposals,
                                        min_size=min_size, max_size=max_size)
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as e:
            raise RegionWeightsUnavailable(f"{path}: not a fasterrcnn_resnet50_fpn state dict ({e})") from e
    model.eval()
    x = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    out: List[Tuple[np.ndarray, np.ndarray]] = []
    with torch.inference_mode():
        for i in range(x.shape[0]):
            image_list, _ = model.transform([x[i]])
            features = model.backbone(image_list.tensors)
            rpn = model.rpn
            feats = list(features.values())
            objectness, deltas = rpn.head(feats)
            anchors = rpn.anchor_generator(image_list, feats)
            num_per_level = [o[0].shape[0] * o[0].shape[1] * o[0].shape[2] for o in objectness]
            from torchvision.models.detection.rpn import concat_box_prediction_layers
            objectness, deltas = concat_box_prediction_layers(objectness, deltas)
            proposals = rpn.box_coder.decode(deltas.detach(), anchors).view(1, -1, 4)
            boxes, scores = rpn.filter_proposals(proposals, objectness, image_list.image_sizes, num_per_level)
            (h, w), (H, W) = image_list.image_sizes[0], x.shape[-2:]
            scale = torch.tensor([W / w, H / h, W / w, H / h])
            order = torch.argsort(scores[0], descending=True, stable=True)
            out.append(((boxes[0][order] * scale).numpy().astype(np.float32), scores[0][order].numpy()))
    return out


# ============================================================================================== the pipeline
def _cache_key(images: Union[np.ndarray, Sequence[PathLike]], settings: Dict[str, Any]) -> str:
    from lightning_hash.cache import array_fingerprint, file_fingerprint
    if isinstance(images, np.ndarray):
        return array_fingerprint(images, sorted(settings.items()), CACHE_VERSION)
    return file_fingerprint(images, sorted(settings.items()), CACHE_VERSION)


def _load_images(paths: Sequence[PathLike]) -> List[np.ndarray]:
    from PIL import Image
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("RGB")))
    return out


def extract_regions(images: Union[np.ndarray, Sequence[PathLike]], k: int = 20, *, proposals: str = "grid",
                    feature: str = "pixels:4", saliency: str = "spectral_residual",
                    scales: Sequence[float] = (0.5, 0.75), step: float = 0.5, pad: str = "whole",
                    rpn_weights: Union[str, PathLike, None] = "DEFAULT", rpn_max_proposals: int = 300,
                    rpn_min_size: int = 800, rpn_max_size: int = 1333, pretrained: bool = True,
                    checkpoint: Optional[PathLike] = None, cache: Union[bool, PathLike] = True,
                    names: Optional[Sequence[object]] = None) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Region sequences ``float32 [n, K + 1, D + 4]`` of images (see the module docstring), cached on disk.

    Parameters
    ----------
    images: an ``[n, H, W(, C)]`` array (uint8, or float in [0, 1]) or a sequence of image files (any sizes).
    k: number of regions K (the thesis: 20).
    proposals: ``"grid"`` (weight-free fallback) or ``"rpn"`` (Faster R-CNN RPN, needs ``rpn_weights``).
    feature: ``"pixels:S"`` (area-averaged ``S x S`` crop) or a timm backbone name (``pretrained``/``checkpoint``
        as in :func:`lightning_hash.nn.backbone.create_backbone`).
    saliency, scales, step: the grid fallback's saliency map and windows.
    rpn_weights, rpn_max_proposals, rpn_min_size, rpn_max_size: the RPN's weights, proposals kept after its NMS
        and its input resizing (torchvision's defaults 800 / 1333).
    pad: what to do for an image with fewer than K proposals (``"whole"``, ``"zeros"``, ``"error"``).
    cache: ``True`` (the user cache folder), a folder, or ``False``.
    names: item names for error messages (e.g. image ids).

    Returns
    -------
    (sequences, info) with ``info`` = ``{"k", "feature_dim", "padded_images", "proposals", "cache_file"}``.
    """
    if proposals not in ("grid", "rpn"):
        raise ValueError(f"proposals must be 'grid' or 'rpn', got {proposals!r}")
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
    if int(k) < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    m = re.fullmatch(r"pixels:(\d+)", feature)
    is_array = isinstance(images, np.ndarray)
    if not is_array:
        images = [Path(p).expanduser() for p in images]
        missing = [str(p) for p in images if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"image files not found: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    settings = dict(k=int(k), proposals=proposals, feature=feature, saliency=saliency, scales=tuple(scales),
                    step=float(step), pad=pad, rpn_weights=str(rpn_weights), rpn=(rpn_max_proposals, rpn_min_size,
                                                                                  rpn_max_size),
                    pretrained=bool(pretrained),
                    checkpoint=str(checkpoint))
    from lightning_hash.cache import resolve_cache_dir
    cdir = resolve_cache_dir(cache)
    cfile = None
    if cdir is not None:
        cfile = cdir / "regions" / f"{_cache_key(images, settings)}.npz"
        if cfile.is_file():
            try:
                with np.load(cfile, allow_pickle=False) as z:
                    seq, padded = z["sequences"], int(z["padded_images"])
                if seq.ndim == 3 and seq.shape[:2] == (len(images), int(k) + 1):
                    return seq, dict(k=int(k), feature_dim=seq.shape[2], padded_images=padded, proposals=proposals,
                                     cache_file=str(cfile))
            except Exception:
                pass
    groups: List[Tuple[List[int], torch.Tensor]] = []
    if is_array:
        groups.append((list(range(len(images))), _float_images(images)))
    else:                         # files may differ in size: one group per distinct size
        loaded = _load_images(images)
        by_size: Dict[Tuple[int, ...], List[int]] = {}
        for i, a in enumerate(loaded):
            by_size.setdefault(a.shape, []).append(i)
        for rows in by_size.values():
            groups.append((rows, _float_images(np.stack([loaded[i] for i in rows]))))
    n = len(images)
    out: Optional[np.ndarray] = None
    padded_total = 0
    for rows, x in groups:
        H, W = x.shape[-2:]
        grey = x.mean(dim=1)
        if proposals == "grid":
            cand = grid_boxes(H, W, scales, step)
            conf = box_saliency(saliency_map(grey, saliency), cand)
            cand_b = np.broadcast_to(cand, (len(rows),) + cand.shape)
            valid = np.ones(conf.shape, dtype=bool)
        else:
            props = rpn_proposals(x, weights=rpn_weights, max_proposals=rpn_max_proposals, min_size=rpn_min_size,
                                  max_size=rpn_max_size)
            p_max = max([len(b) for b, _ in props] + [1])
            cand_b = np.zeros((len(rows), p_max, 4), np.float32)
            conf = np.zeros((len(rows), p_max), np.float32)
            valid = np.zeros((len(rows), p_max), bool)
            for i, (b, s) in enumerate(props):
                cand_b[i, :len(b)], conf[i, :len(b)], valid[i, :len(b)] = b, s, True
        scores = attraction_scores(conf, cand_b, H, W)
        idx, present = select_regions(scores, valid, int(k))
        sel = np.take_along_axis(cand_b, idx[..., None], axis=1)
        if m and proposals == "grid":          # shared windows: pool every candidate once, then pick
            size = int(m.group(1))
            feats = np.take_along_axis(pixel_features(x, cand, size), idx[..., None], axis=1)
            whole = pixel_features(x, np.array([[0, 0, W, H]], np.float32), size)[:, 0]
        elif m:
            size = int(m.group(1))
            feats = pixel_features(x, sel, size)
            whole = pixel_features(x, np.array([[0, 0, W, H]], np.float32), size)[:, 0]
        else:
            feats, whole = _backbone_features(x, sel, feature, pretrained, checkpoint)
        seq, padded = assemble_sequences(feats, sel, present, whole, H, W, pad,
                                         names=[names[i] for i in rows] if names is not None else rows)
        padded_total += padded
        if out is None:
            out = np.zeros((n,) + seq.shape[1:], dtype=np.float32)
        elif seq.shape[1:] != out.shape[1:]:
            raise ValueError(f"region features differ in size between images ({seq.shape[1:]} vs {out.shape[1:]})")
        out[rows] = seq
    if out is None:
        out = np.zeros((0, int(k) + 1, 4), np.float32)
    if cfile is not None:
        try:
            cfile.parent.mkdir(parents=True, exist_ok=True)
            tmp = cfile.with_name(cfile.name + f".tmp{os.getpid()}.npz")
            np.savez(tmp, sequences=out, padded_images=np.int64(padded_total))
            os.replace(tmp, cfile)
        except OSError:
            cfile = None
    return out, dict(k=int(k), feature_dim=out.shape[2], padded_images=padded_total, proposals=proposals,
                     cache_file=None if cfile is None else str(cfile))


def digit_regions(images: np.ndarray, k: int = 8, size: int = 2) -> np.ndarray:
    """The digits default's ``regions`` modality: ``[n, k + 1, size*size + 4]`` from 8x8 images in [0, 1].

    The weight-free pipeline with ``saliency="intensity"`` (a digit's ink is its salient content), the default
    13-window grid (4x4 and 6x6 windows), K = 8 kept, each region area-averaged to ``size x size`` by the same
    "backbone" as the whole image, so a small window is seen in more detail than the whole image, as a CNN with
    a fixed input size sees a small region. ``size=2`` (default): at 4x4 the whole 8x8 digit is already fully
    legible (an MLP on the whole-image vector: 93% test accuracy, on all 9 region vectors 92%), so regions could
    add nothing; at 2x2 the whole image keeps 61% and the regions 79% (measured with sklearn's MLPClassifier on
    the default split). No cache (it takes milliseconds).
    """
    seq, _ = extract_regions(np.asarray(images, dtype=np.float32), k=k, proposals="grid", feature=f"pixels:{size}",
                             saliency="intensity", cache=False)
    return seq
